// The socket-mode proxy when backends fail it (issue 15): a backend that never answers a SYN (a drop rule
// in the backends' namespace). Real clients, backends and proxy in network namespaces; both byte pumps.
// Needs root (a counted SKIP otherwise).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { ControlClient } from "../src/proxy/control.ts";
import { setup, teardown, agent, NS, ADDR, type Agent } from "./fixtures/proxy/netns.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";

const DIR = `/tmp/wvp-overload-${process.pid}`;
const B = ADDR.backend4;
const BLACKHOLE = [B(7), B(8)];   // SYNs to these are dropped: a connect neither succeeds nor is refused
let client: Agent, lb: Agent, be: Agent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function status(ctl: string): Promise<any> {
  const c = await ControlClient.connect(ctl);
  try { return await c.call("status"); } finally { c.close(); }
}
const drops = (st: any, re: RegExp) => Object.entries(st.drops as Record<string, number>).filter(([k]) => re.test(k)).reduce((a, [, n]) => a + n, 0);

const why = needs(["ip", "nft", "prlimit"], "apt-get install -y iproute2 nftables util-linux");
if (why) {
  skip(import.meta.url, "the proxy under failing backends and descriptor exhaustion (every test of this file)", why);
} else {
  guardedBefore(test, async () => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    setup(8);
    execFileSync("ip", ["netns", "exec", NS.backend, "nft", "-f", "-"], { input: `table inet wvp_blackhole {
  chain input { type filter hook input priority 0; ip daddr { ${BLACKHOLE.join(", ")} } tcp dport 8080 drop; }
}
` });
    [client, lb, be] = await Promise.all([agent(NS.client), agent(NS.lb), agent(NS.backend)]);
    for (let i = 1; i <= 2; i++) await be.call("backend", B(i), 8080, "tcp");
  });
  test.after(async () => {
    await Promise.all([client?.stop(), lb?.stop(), be?.stop()]);
    teardown();
    rmSync(DIR, { recursive: true, force: true });
  });

  for (const pump of ["native", "js"]) {
    // docs/proxy.md: connectTimeout bounds a backend connect (a service's overrides proxy.connectTimeout); a
    // failure retries another destination once; the client is reset when that fails too, or when none is left
    test(`connectTimeout is enforced (${pump} pump): a retry elsewhere, else the client is reset after it; counted`, async () => {
      const ctl = `${DIR}/ctl-${pump}.sock`;
      const v = (i: number) => ADDR.vip4(10 + i);
      const rsList = (addrs: string[]) => `[ ${addrs.map((a) => `{ addr: ${a}, port: 8080 }`).join(", ")} ]`;
      await lb.call("startProxy", `proxy: { control: ${ctl}, vipInterface: wasmvs0, tick: 100, pump: ${pump}, connectTimeout: 1.2 }
services:
  - { protocol: tcp, addr: ${v(1)}, port: 80, scheduler: rr, connectTimeout: 0.4, realServers: ${rsList([BLACKHOLE[0], B(1)])} }
  - { protocol: tcp, addr: ${v(2)}, port: 80, scheduler: rr, connectTimeout: 0.4, realServers: ${rsList([BLACKHOLE[0]])} }
  - { protocol: tcp, addr: ${v(3)}, port: 80, scheduler: rr, connectTimeout: 0.4, realServers: ${rsList(BLACKHOLE)} }
  - { protocol: tcp, addr: ${v(4)}, port: 80, scheduler: rr, realServers: ${rsList([BLACKHOLE[0]])} }
`);
      try {
        const timedOut = async () => drops(await status(ctl), /^connect_etimedout$/);
        // one blackholed and one good: every client is served by the good one, those sent to the
        // blackholed one after one connectTimeout (a retry moves rr on too: 2 or 3 of 4)
        const mixed: any[] = await client.call("openSeq", v(1), 80, 4, false, 0, 5000);
        assert.ok(mixed.every((o) => o.backend === `${B(1)}:8080`), JSON.stringify(mixed));
        const slow = mixed.filter((o) => o.ms >= 350);
        assert.ok(slow.length >= 2, `retried after the timeout: ${JSON.stringify(mixed.map((o) => o.ms))}`);
        for (const o of slow) assert.ok(o.ms < 2000, `retry at ${o.ms} ms (connectTimeout 0.4 s)`);
        const n = await timedOut();
        assert.is(n, slow.length, "each timeout counted");
        // only a blackholed one: no destination left for the retry, reset after one connectTimeout
        const one: any = (await client.call<any[]>("openSeq", v(2), 80, 1, false, 0, 5000))[0];
        assert.is(one.error, "ECONNRESET", JSON.stringify(one));
        assert.ok(one.ms >= 350 && one.ms < 2000, `reset after ${one.ms} ms (connectTimeout 0.4 s)`);
        assert.is(await timedOut(), n + 1);
        // two blackholed: the retry goes to the other and times out too: reset after two connectTimeouts
        const two: any = (await client.call<any[]>("openSeq", v(3), 80, 1, false, 0, 5000))[0];
        assert.is(two.error, "ECONNRESET", JSON.stringify(two));
        assert.ok(two.ms >= 750 && two.ms < 3000, `reset after ${two.ms} ms (2 x 0.4 s)`);
        assert.is(await timedOut(), n + 3);
        // no per-service value: proxy.connectTimeout (1.2 s)
        const dflt: any = (await client.call<any[]>("openSeq", v(4), 80, 1, false, 0, 5000))[0];
        assert.is(dflt.error, "ECONNRESET", JSON.stringify(dflt));
        assert.ok(dflt.ms >= 1100 && dflt.ms < 3500, `reset after ${dflt.ms} ms (proxy.connectTimeout 1.2 s)`);
        assert.is(await timedOut(), n + 4);
        assert.is((await status(ctl)).tcp, 0, "no connection left behind");
      } finally { await lb.call("stopProxy"); }
    });
  }
}

test.run();
