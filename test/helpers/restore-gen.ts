// Restore input of any size, and a table whose services count every read of theirs (to catch a search per
// line without timing anything: see test/ipvsadm-parse.test.ts and test/proxy-control.test.ts).
import type { DesiredState, RealServer } from "../../src/model/types.ts";

/** n services (10.200.x.y:80) that count every property read. */
export function countingState(n: number): { state: DesiredState; reads: () => number } {
  let reads = 0;
  const services = Array.from(
    { length: n },
    (_, i) =>
      new Proxy(
        {
          protocol: "tcp" as const,
          addr: `10.200.${i >> 8}.${i & 255}`,
          port: 80,
          scheduler: "rr",
          flags: [] as string[],
          realServers: [] as RealServer[],
        },
        {
          get: (t, k, r) => {
            reads++;
            return Reflect.get(t, k, r);
          },
        },
      ),
  );
  return { state: { services }, reads: () => reads };
}
/** n lines: services 10.a.b.c:80, each followed by up to four real servers. */
export function restoreLines(n: number, from = 0): string {
  const out: string[] = [];
  for (let i = from; out.length < n; i++) {
    const vip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    out.push(`-A -t ${vip}:80 -s rr`);
    for (let j = 1; j <= 4 && out.length < n; j++) out.push(`-a -t ${vip}:80 -r 172.16.${j}.${(i % 250) + 1}:8080 -m`);
  }
  return out.join("\n");
}
