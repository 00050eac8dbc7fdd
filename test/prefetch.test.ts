// The batch pre-pass (assembly/prefetch.ts, run by processBatch before a batch) only loads: with it forced
// on, a batch must come out exactly as with it off, verdict for verdict and byte for byte, and leave the
// same tables behind. Both cores run the debug build, whose packet reads are bounds-asserted, over a mix
// of new and known flows both ways, IPv4 and IPv6, masq and full-NAT, and broken packets.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core } from "../src/core/index.ts";
import { PacketBatch } from "../src/core/packets.ts";
import { build, TCP, UDP, SYN, ACK, RST, PSH, type PacketSpec } from "./fixtures/packets/build.ts";

const SNAT4 = "172.16.0.1",
  SNAT6 = "fd00::ffff";

async function makeCore(prefetch: number) {
  const core = await Core.load({ debug: true, connCapacity: 8192 });
  core.setSnat(SNAT4);
  core.setSnat(SNAT6);
  for (let s = 0; s < 40; s++) {
    const v6 = s % 5 === 4;
    const proto = s % 3 === 2 ? "udp" : "tcp";
    const fwd = s % 4 === 3 ? "fullnat" : "masq";
    const id = core.addService({
      proto,
      addr: v6 ? `2001:db8::${s + 1}` : `10.0.${s}.1`,
      port: 80,
      scheduler: s % 2 ? "wlc" : "rr",
    });
    for (let d = 0; d < 1 + (s % 3); d++)
      core.addDest(id, { addr: v6 ? `fd00::${s}:${d + 1}` : `192.168.${s}.${d + 1}`, port: 8080, fwd });
  }
  core.x.packetSetPrefetch(prefetch);
  return { core, batch: new PacketBatch(core, { maxPackets: 256, maxBytes: 256 * 128 }) };
}

test("batch pre-pass forced on and off: the same verdicts, bytes, connections and counters", async () => {
  const on = await makeCore(1),
    off = await makeCore(0);
  let seed = 99;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296;
  };
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
  // flows made so far, with the reply side the data plane chose (read back from the "off" core)
  const flows: { spec: PacketSpec; reply?: { src: string; dst: string; sport: number; dport: number } }[] = [];
  let forwarded = 0,
    replies = 0;
  for (let b = 0; b < 40; b++) {
    const pkts: { bytes: Uint8Array; dir: "in" | "out"; flow?: number }[] = [];
    for (let k = 0; k < 200; k++) {
      const r = rnd();
      if (r < 0.4 || flows.length === 0) {
        const s = Math.floor(rnd() * 40),
          v6 = s % 5 === 4,
          proto = s % 3 === 2 ? UDP : TCP;
        const spec: PacketSpec = {
          src: v6 ? `2001:db8:c::${b}:${k}` : `100.64.${b}.${k}`,
          dst: v6 ? `2001:db8::${s + 1}` : `10.0.${s}.1`,
          proto,
          sport: 1024 + Math.floor(rnd() * 60000),
          dport: 80,
          flags: proto === TCP ? SYN : 0,
          ttl: 64,
        };
        flows.push({ spec });
        pkts.push({ bytes: build(spec), dir: "in", flow: flows.length - 1 });
      } else if (r < 0.7) {
        const f = pick(flows);
        pkts.push({
          bytes: build({
            ...f.spec,
            flags: f.spec.proto === TCP ? pick([ACK, PSH | ACK, RST]) : 0,
            payload: new Uint8Array(Math.floor(rnd() * 40)),
          }),
          dir: "in",
        });
      } else if (r < 0.9) {
        const f = pick(flows.filter((x) => x.reply).concat(flows.slice(0, 1)));
        if (!f.reply) continue;
        pkts.push({
          bytes: build({ ...f.spec, ...f.reply, flags: f.spec.proto === TCP ? ACK : 0, ttl: 64 }),
          dir: "out",
        });
      } else {
        // broken: truncated, or a wrong version nibble
        const bytes = build(pick(flows).spec);
        if (rnd() < 0.5) pkts.push({ bytes: bytes.slice(0, Math.floor(rnd() * bytes.length)), dir: "in" });
        else {
          bytes[0] = 0x35;
          pkts.push({ bytes, dir: pick(["in", "out"] as const) });
        }
      }
    }
    for (const side of [on, off]) {
      side.batch.clear();
      for (const p of pkts) assert.ok(side.batch.add(p.bytes, { dir: p.dir }) >= 0);
      side.batch.run(1000 + b * 700);
    }
    for (let i = 0; i < pkts.length; i++) {
      const a = on.batch.result(i),
        z = off.batch.result(i);
      assert.equal(a, z, `batch ${b} packet ${i}: outcome`);
      assert.equal(on.batch.bytes(i), off.batch.bytes(i), `batch ${b} packet ${i}: bytes`);
      if (z.verdict === "forward") forwarded++;
      if (pkts[i].dir === "out" && z.verdict === "forward") replies++;
      const f = pkts[i].flow;
      if (f !== undefined && z.isNew) {
        const c = off.core.conn(z.conn)!;
        flows[f].reply = { src: c.daddr, sport: c.dport, dst: c.laddr, dport: c.lport };
      }
    }
    on.core.advance(1000 + b * 700);
    off.core.advance(1000 + b * 700);
  }
  assert.equal(on.core.connStats(), off.core.connStats(), "connection table");
  for (let id = 0; id < 40; id++) assert.equal(on.core.service(id), off.core.service(id), `service ${id}`);
  assert.ok(forwarded > 3000 && replies > 300, `forwarded ${forwarded}, replies ${replies}`);
});

test.run();
