// test/sync-io.test.ts's side inside the daemons' namespace: sync daemons on the packet addon's sockets and on
// Node's dgram, each with a core of its own.
//   backup IFNAME [GROUP]: a backup of each kind on IFNAME (syncid 0, the default receive limit); answers each
//     stdin line with {"native": {...counters, conns}, "dgram": {...}}
//   master IFNAME IO [GROUP]: a master (IO: native or dgram) with 100 connections' entries queued; prints the
//     messages it is about to send as hex, then sends them (one turn of the daemon), then prints "sent"
import { createInterface } from "node:readline";
import { Core } from "../../src/core/index.ts";
import { syncStats } from "../../src/core/sync.ts";
import { silentLogger } from "../../src/proxy/log.ts";
import { SYNC_DEFAULTS, SyncDaemon, type SyncIo } from "../../src/proxy/sync.ts";

const [role, ifname, ...rest] = process.argv.slice(2);
const io = role === "master" ? rest[0] : undefined;
const group = (role === "master" ? rest[1] : rest[0]) ?? SYNC_DEFAULTS.group;

async function core(): Promise<Core> {
  const c = await Core.load();
  const id = c.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" });
  for (const d of ["10.8.0.2", "10.8.0.3"]) c.addDest(id, { addr: d, port: 8080, weight: 1, fwd: "masq" });
  return c;
}

const opts = (state: "master" | "backup") => ({ ...SYNC_DEFAULTS, group, state, mcastInterface: ifname });

if (role === "backup") {
  const kinds: SyncIo[] = ["native", "dgram"];
  const cores = await Promise.all(kinds.map(() => core()));
  for (const [k, kind] of kinds.entries())
    await SyncDaemon.start(cores[k], opts("backup"), () => 1000, silentLogger(), { io: kind });
  process.stdout.write("ready\n");
  createInterface({ input: process.stdin }).on("line", () => {
    const out: Record<string, unknown> = {};
    for (const [k, kind] of kinds.entries()) out[kind] = { ...syncStats(cores[k]), conns: cores[k].conns().length };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });
} else if (role === "master") {
  const c = await core();
  const d = await SyncDaemon.start(c, { ...opts("master"), syncid: 7 }, () => 1000, silentLogger(), {
    io: io as SyncIo,
  });
  // a SYN each: 100 new entries
  for (let k = 0; k < 100; k++) c.packet("in", "tcp", `10.9.0.${k + 2}`, 10000 + k, "10.0.0.1", 80, { flags: 2 });
  c.x.syncEmitAll(1000);
  const n = c.x.syncFlush(1000, 0);
  const msgs: string[] = [];
  for (let k = 0; k < n; k++) {
    const p = c.x.syncOutPtr(k) >>> 0;
    msgs.push(Buffer.from(c.u8.subarray(p, p + c.x.syncOutLen(k))).toString("hex"));
  }
  process.stdout.write(`${JSON.stringify(msgs)}\n`);
  const sent = d.send(0);
  process.stdout.write(`sent ${sent} ${d.sendErrors}\n`);
  setTimeout(() => d.stop().then(() => process.exit(0)), 200);
} else {
  process.stderr.write("usage: sync-io-peer.ts backup IFNAME [GROUP] | master IFNAME native|dgram [GROUP]\n");
  process.exit(2);
}
