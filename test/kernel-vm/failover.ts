// Inside the VM (run by test/kernel-failover.test.ts): kernel -> kernel failover on the director-pair bed.
// N long-lived TCP connections stream through director A (IPVS masquerading), A's sync daemon (master)
// sends their entries to B's (backup); A dies and B takes the VIP and the gateway; every connection must
// go on with no reset and no lost or duplicated byte, and B must be the one carrying them.
//   node --import tsx test/kernel-vm/failover.ts N DAEMON_VIA   (DAEMON_VIA: wasmvs | ipvsadm | none)
// With "none" no sync daemon runs: the control, where B knows nothing of the connections and resets them.
// Prints "@@RESULT {...}".
import {
  buildPair,
  connectionsIn,
  failOver,
  ipvsadmIn,
  nsRun,
  NS,
  sameServiceOnBoth,
  startEchoServers,
  startStreams,
  teardownPair,
  waitFor,
  type StreamConn,
} from "../helpers/director-pair.ts";
import { result } from "./rules.ts";

const N = Number(process.argv[2] ?? 16);
const via = (["ipvsadm", "none"] as const).find((v) => v === process.argv[3]) ?? "wasmvs";
const PORT = 80,
  REAL_PORT = 8080,
  SYNCID = 42;
const steps: string[] = [];
const step = (s: string) => {
  steps.push(s);
  process.stdout.write(`@@STEP ${s}\n`);
};

function daemon(d: "a" | "b", args: string[]): string {
  return via === "ipvsadm"
    ? nsRun(NS[d], ["ipvsadm", ...args])
    : nsRun(NS[d], [process.execPath, "bin/wasmvs.js", ...args]);
}

async function main() {
  const pair = buildPair();
  step("bed built");
  sameServiceOnBoth(pair, PORT, REAL_PORT);
  if (via !== "none") {
    daemon("a", ["--start-daemon", "master", "--mcast-interface", "front", "--syncid", String(SYNCID)]);
    daemon("b", ["--start-daemon", "backup", "--mcast-interface", "front", "--syncid", String(SYNCID)]);
  }
  const daemons = { a: ipvsadmIn("a", ["-L", "--daemon"]), b: ipvsadmIn("b", ["-L", "--daemon"]) };
  step(`daemons via ${via}: A ${daemons.a.trim()} / B ${daemons.b.trim()}`);
  const echo = await startEchoServers(pair, REAL_PORT);
  const streams = await startStreams(pair, PORT, N, { chunk: 256, everyMs: 100 });
  step(`${N} streams open`);
  // every connection established through A and its entry synced to B
  const established = (d: "a" | "b") =>
    connectionsIn(d).filter((c) => c.proto === "TCP" && c.state === "ESTABLISHED" && c.dest.endsWith(`:${REAL_PORT}`))
      .length;
  const synced = await waitFor(() => established("b") >= N, via === "none" ? 5000 : 120_000, 1000);
  const onB = established("b");
  step(`B holds ${onB} synced entries (A ${established("a")})`);
  const before = await streams.status();
  // what reached B's front after the failover: A's links are down, so every byte of the streams from then
  // on went through B (IPVS's own counters lag: 6.1 sums them in its estimator, and a loaded VM showed none)
  const bFrontRx = () => Number(nsRun(NS.b, ["cat", "/sys/class/net/front/statistics/rx_bytes"]).trim());
  const bRxBefore = bFrontRx();
  const newTo = failOver(pair);
  const atFailover = await streams.status(); // written from here on, a byte can only travel through B
  step(`failed over to ${newTo}`);
  // the streams must move past what they had written when the failover was done: bytes written after it, so
  // through B. (Past `before` is not enough: a failover slower than the streams' in-flight bound (64 chunks,
  // 6.4 s) leaves only retransmitted bytes to echo, and a loaded CI VM took that long, writing nothing after.)
  const moved = await waitFor(
    async () => {
      const now = await streams.status();
      return now.every((c) => c.err || c.recv > (atFailover.find((b) => b.id === c.id)?.sent ?? 0) + 2048);
    },
    120_000,
    1000,
  );
  step(`streams ${moved ? "moved past the failover" : "did NOT all move past the failover"}`);
  const final: StreamConn[] = await streams.finish(60_000);
  const served = await echo.ask("count");
  echo.stop();
  const bRxAfter = bFrontRx();
  const sentAfterFailover = final.reduce((n, c) => n + c.sent - (atFailover.find((b) => b.id === c.id)?.sent ?? 0), 0);
  const kept = final.filter((c) => !c.err && c.recv === c.sent && c.sent > 0).length;
  result({
    total: N,
    kept,
    synced: onB,
    syncedInTime: synced,
    moved,
    conns: final,
    before,
    served,
    daemons,
    bRxBytes: bRxAfter - bRxBefore,
    sentAfterFailover,
    via,
    steps,
  });
}

main()
  .catch((e) => result({ fatal: String((e as Error)?.stack ?? e), steps }))
  .finally(() => {
    teardownPair();
    process.exit(0);
  });
