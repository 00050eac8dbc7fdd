// Memory per connection: what one build's table of n connections adds to the process's resident memory (RSS
// after a full GC, before the instance and after the fill), divided by the n live connections and by the
// table's capacity. IPv4 connections only, IPv6 only (--v6), or every Nth IPv6 and the rest IPv4
// (--v6-every=N). RSS, not the WASM memory's size: asc's allocator doubles the memory when it grows, so
// that size says little, while pages never written are not resident. One build and one mix per process (a
// dropped instance's memory does not leave the RSS at once). The table's layout study: docs/conn-table.md.
//   node --expose-gc --import tsx bench/conn-memory.ts [BUILD.wasm] [--v6 | --v6-every=N] [--live=1000000]
//        [--capacity=1100000]
import { readFileSync } from "node:fs";
import { Core, TCP_FLAGS } from "../src/core/index.ts";

const USAGE =
  "usage: node --expose-gc --import tsx bench/conn-memory.ts [BUILD.wasm] [--v6 | --v6-every=N] " +
  "[--live=1000000] [--capacity=1100000]";
function usageError(why: string): never {
  console.error(`conn-memory.ts: ${why}\n${USAGE}`);
  process.exit(2);
}
const args = process.argv.slice(2);
if (args.includes("--help")) {
  console.log(USAGE);
  process.exit(0);
}
for (const x of args.filter((y) => y.startsWith("--")))
  if (x !== "--v6" && !/^--(live|capacity|v6-every)=/.test(x))
    usageError(`unknown option ${JSON.stringify(x.slice(0, 40))}`);
const opt = (k: string, d: number) => {
  const a = args.find((x) => x.startsWith(`--${k}=`));
  const v = a ? a.slice(k.length + 3) : String(d);
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 4_000_000)
    usageError(`--${k}: ${JSON.stringify(v.slice(0, 20))} is not a whole number from 1 to 4,000,000`);
  return n;
};
const live = opt("live", 1_000_000);
const capacity = opt("capacity", 1_100_000);
if (live > capacity) usageError("--live is more than --capacity");
const builds = args.filter((x) => !x.startsWith("--"));
if (builds.length === 0) builds.push("build/core.wasm");
if (builds.length > 1) usageError("one build per process");
if (args.includes("--v6") && args.some((x) => x.startsWith("--v6-every="))) usageError("--v6 or --v6-every, not both");
const every = args.some((x) => x.startsWith("--v6-every=")) ? opt("v6-every", 1) : 0;
const families = [args.includes("--v6")];

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const rss = () => {
  gc();
  gc();
  return process.memoryUsage().rss;
};
const MiB = 1024 * 1024;
for (const f of builds) {
  const bytes = new Uint8Array(readFileSync(f));
  for (const six0 of families) {
    const before = rss();
    let c: Core | null = await Core.fromBytes(bytes, capacity);
    for (const six of [false, true]) {
      const s = c.addService({ proto: "tcp", addr: six ? "2001:db8::1" : "10.0.0.1", port: 80, scheduler: "rr" });
      c.addDest(s, { addr: six ? "2001:db8:1::1" : "10.1.0.1", port: 8080, fwd: "masq" });
    }
    const mixed = every > 0;
    for (let i = 0; i < live; i++) {
      const v6 = mixed ? i % every === 0 : six0;
      // 16 client ports per address: (i >> 4) picks the address, i & 15 the port
      const h = i >> 4;
      const ip = v6
        ? `2001:db8:c::${(h >> 16).toString(16)}:${(h & 0xffff).toString(16)}`
        : `11.${h >> 16}.${(h >> 8) & 255}.${h & 255}`;
      const r = c.packet("in", "tcp", ip, 1024 + (i & 15), v6 ? "2001:db8::1" : "10.0.0.1", 80, {
        flags: TCP_FLAGS.SYN,
        now: 1000,
      });
      if (!r.isNew) throw new Error(`connection ${i} not made: ${r.verdict}`);
      if (i % 200_000 === 0) process.stderr.write(`\r${f}: ${i} made`);
    }
    process.stderr.write("\r\x1b[K");
    const net = rss() - before;
    const mem = c.x.memory.buffer.byteLength;
    // the cold pool's builds (issue 21, not kept) count the lines it made
    const x = c.x as unknown as Record<string, (() => number) | undefined>;
    const cold = x.connColdLines ? `, cold lines ${(x.connColdLines as () => number)() >>> 0}` : "";
    console.log(
      `${f} ${mixed ? `1 in ${every} IPv6` : six0 ? "IPv6" : "IPv4"}: ${live} live in ${capacity} entries: ` +
        `RSS +${(net / MiB).toFixed(1)} MiB: ` +
        `${(net / live).toFixed(1)} B per live connection, ${(net / capacity).toFixed(1)} B per entry ` +
        `(WASM memory ${(mem / MiB).toFixed(0)} MiB${cold})`,
    );
    c = null;
  }
}
