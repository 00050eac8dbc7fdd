// What socket mode cannot do is refused before anything changes, with a message that says where it works
// (issue 19): a real proxy in this process, its real control socket, the ipvsadm front end against it.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseConfig } from "../src/proxy/config.ts";
import { Proxy } from "../src/proxy/index.ts";
import { ProxyTarget } from "../src/proxy/control.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { runIpvsadm } from "../src/cli/ipvsadm.ts";
import { numericResolver } from "../src/model/names.ts";
import { guardedBefore } from "./helpers/skip.ts";
import { freePort } from "./helpers/ports.ts";

const dir = mkdtempSync(`${tmpdir()}/wvp-refuse-`);
const ctl = `${dir}/ctl.sock`;
let p: Proxy;
let port: number; // the service's, on 127.77.1.1: from the kernel (concurrent runs collided on a fixed one)

guardedBefore(test, async () => {
  const cfg = parseConfig(`proxy: { control: ${ctl}, vipInterface: null, tick: 100 }\nservices: []\n`);
  p = await Proxy.start(cfg, { log: silentLogger() });
  port = await freePort("127.77.1.1");
});
test.after(async () => {
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

// A proxy that must refuse to start: its error (it is stopped again if it started)
async function startRefused(cfg: ReturnType<typeof parseConfig>): Promise<Error> {
  const e = await Proxy.start(cfg, { log: silentLogger() }).then(
    async (q) => {
      await q.stop();
      return undefined;
    },
    (x: Error) => x,
  );
  assert.instance(e, Error, "socket mode did not start");
  return e as Error;
}

async function ipvsadm(...argv: string[]): Promise<{ status: number; err: string }> {
  const t = await ProxyTarget.open(ctl, 10000);
  const sink = () => {
    const o = {
      s: "",
      write(x: string) {
        o.s += x;
        return true;
      },
    };
    return o;
  };
  const out = sink(),
    err = sink();
  try {
    const status = await runIpvsadm(argv, t, out, err, { resolver: numericResolver });
    return { status, err: err.s };
  } finally {
    await t.close();
  }
}

test("-g and -i are refused, naming the kernel's IPVS as where they work; nothing changes", async () => {
  assert.is((await ipvsadm("-A", "-t", `127.77.1.1:${port}`, "-s", "rr")).status, 0);
  for (const [flag, name] of [
    ["-g", "route"],
    ["-i", "tunnel"],
  ]) {
    const r = await ipvsadm("-a", "-t", `127.77.1.1:${port}`, "-r", "127.0.0.2:8080", flag);
    assert.is.not(r.status, 0, `${flag} refused`);
    assert.match(r.err, `forwarding method ${flag} '${name}' works only in the kernel's IPVS ('wasmvs sync'`);
    assert.match(r.err, "forwards by NAT (-m)");
    assert.is(p.desired.services.find((s) => s.port === port)?.realServers.length, 0, "no real server was added");
  }
  const ok = await ipvsadm("-a", "-t", `127.77.1.1:${port}`, "-r", "127.0.0.2:8080", "-m");
  assert.is(ok.status, 0, ok.err);
  const edit = await ipvsadm("-e", "-t", `127.77.1.1:${port}`, "-r", "127.0.0.2:8080", "-g");
  assert.is.not(edit.status, 0, "editing a real server to -g is refused too");
  assert.match(edit.err, "works only in the kernel's IPVS");
  assert.is(p.desired.services.find((s) => s.port === port)?.realServers[0].fwd, "masq");
});

test(
  "port-0, fwmark and SCTP services are refused, naming packet mode or the kernel's IPVS; " + "nothing changes",
  async () => {
    const n = p.desired.services.length;
    const port0 = await ipvsadm("-A", "-t", "127.77.1.2:0", "-s", "rr", "-p", "60");
    assert.is.not(port0.status, 0);
    assert.match(port0.err, "port 0 (all ports) services work in packet mode (--mode packet) and in the kernel's IPVS");
    const mark = await ipvsadm("-A", "-f", "7", "-s", "rr");
    assert.is.not(mark.status, 0);
    assert.match(mark.err, "fwmark services work in packet mode (--mode packet) and in the kernel's IPVS");
    const sctp = await ipvsadm("-A", "--sctp-service", "127.77.1.3:9", "-s", "rr");
    assert.is.not(sctp.status, 0);
    assert.match(sctp.err, "SCTP services work in packet mode (--mode packet) and in the kernel's IPVS");
    assert.is(p.desired.services.length, n);
  },
);

test(
  "a config's port-0 service: needs persistence; socket mode refuses to start with it, " + "naming packet mode",
  async () => {
    const svc = (extra: string) =>
      `proxy: { control: ${dir}/ctl2.sock, vipInterface: null, tick: 100 }\n` +
      `services:\n  - { protocol: tcp, addr: 127.77.2.1, port: 0${extra}, realServers: [ { addr: 127.0.0.2 } ] }\n`;
    assert.throws(() => parseConfig(svc("")), /services\[0\]\.port: port 0 \(all ports\) needs persistence/);
    for (const bad of ["-1", "65536", "__proto__", "constructor", "[0]", "0.5"])
      assert.throws(
        () => parseConfig(svc("").replace("port: 0", `port: ${bad}`)),
        /services\[0\]\.port/,
        `port: ${bad}`,
      );
    const cfg = parseConfig(svc(", persistent: 60"));
    assert.is(cfg.state.services[0].port, 0);
    const e = await startRefused(cfg);
    assert.match(e.message, "port 0 (all ports) services work in packet mode (--mode packet)");
  },
);

test(
  "a config's fwmark service: parsed with its family and bad fields refused by name; socket mode refuses to " +
    "start with it, naming packet mode",
  async () => {
    const head = `proxy: { control: ${dir}/ctl3.sock, vipInterface: null, tick: 100 }\nservices:\n`;
    const cfg = parseConfig(
      `${head}  - { fwmark: 7, scheduler: rr, realServers: [ { addr: 127.0.0.2, port: 0 } ] }\n` +
        `  - { fwmark: 7, family: inet6, realServers: [ { addr: "::2", port: 80 } ] }\n`,
    );
    assert.equal(
      cfg.state.services.map((x) => [x.fwmark, x.family, x.addr, x.port, x.realServers[0].port]),
      [
        [7, undefined, undefined, undefined, 0],
        [7, "inet6", undefined, undefined, 80],
      ],
    );
    for (const [svc, want] of [
      ["{ fwmark: 0 }", /services\[0\]\.fwmark: must be an integer in 1\.\.4294967295/],
      ["{ fwmark: 4294967296 }", /services\[0\]\.fwmark/],
      ["{ fwmark: __proto__ }", /services\[0\]\.fwmark/],
      ["{ fwmark: [7] }", /services\[0\]\.fwmark/],
      ["{ fwmark: 7, addr: 10.0.0.1 }", /services\[0\]\.addr: a fwmark service has none/],
      ["{ fwmark: 7, port: 80 }", /services\[0\]\.port: a fwmark service has none/],
      ["{ fwmark: 7, family: inet7 }", /services\[0\]\.family: 'inet7' is not one of inet, inet6/],
      ["{ fwmark: 7, realServers: [ { addr: '::1' } ] }", /realServers\[0\]\.addr: must be the same address family/],
      ["{ addr: 10.0.0.1, port: 80, family: inet }", /services\[0\]\.family: only a fwmark service has one/],
      ["{ fwmark: 7 }\n  - { fwmark: 7 }", /duplicate service fwmark 7 inet/],
    ] as const)
      assert.throws(() => parseConfig(`${head}  - ${svc}\n`), want, svc);
    const e = await startRefused(cfg);
    assert.match(e.message, "fwmark services work in packet mode (--mode packet)");
  },
);

test.run();
