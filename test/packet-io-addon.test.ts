// The packet I/O addon (native/packet) under bad input: wrong types, prototype names, out-of-range
// descriptors, huge counts. Each is refused with a message naming what is wrong, or skipped and counted,
// never a crash or a write outside the WASM memory. Opening sockets needs root (a counted SKIP otherwise).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { loadPacketAddon, xdpQueueShortfall } from "../src/proxy/packet.ts";
import { isRoot, skip } from "./helpers/skip.ts";

const { addon, error } = loadPacketAddon();
const ROOT = fileURLToPath(new URL("..", import.meta.url));

test("AF_XDP on threads: an interface with fewer receive queues than threads is named with its idle threads", () => {
  const ports = [
    { interface: "eth0", queues: 1 },
    { interface: "eth1", queues: 4 },
    { interface: "eth2", queues: 2 },
  ];
  assert.equal(xdpQueueShortfall(ports, 1), [], "one thread (the one-thread path): nothing to warn of");
  assert.equal(xdpQueueShortfall(ports, 0), []);
  assert.equal(xdpQueueShortfall([], 8), [], "no AF_XDP (no interfaces listed)");
  const four = xdpQueueShortfall(ports, 4);
  assert.equal(
    four.map((s) => [s.interface, s.queues, s.threads, s.idleThreads]),
    [
      ["eth0", 1, 4, [1, 2, 3]],
      ["eth2", 2, 4, [2, 3]],
    ],
    "queue q is thread q % 4's: threads from the queue count on get none of that interface",
  );
  assert.match(four[0].fix, /ethtool -L eth0 combined 4/);
  assert.match(four[1].fix, /--workers 2/);
  assert.equal(
    xdpQueueShortfall(ports, 2).map((s) => s.interface),
    ["eth0"],
    "as many queues as threads is enough",
  );
});

test("--packet-io and proxy.packetIo take ring, mmsg or xdp and nothing else", () => {
  const dir = mkdtempSync(`${tmpdir()}/wpio-`);
  try {
    writeFileSync(
      `${dir}/p.yaml`,
      "services:\n  - { protocol: udp, addr: 10.9.9.9, port: 53, realServers: [ { addr: 10.9.8.1 } ] }\n",
    );
    for (const v of ["rings", "__proto__", "constructor", "", "XDP", "af_xdp"]) {
      const r = spawnSync(
        process.execPath,
        [
          `${ROOT}/bin/wasmvs.js`,
          "proxy",
          "-c",
          `${dir}/p.yaml`,
          "--mode",
          "packet",
          "--packet-io",
          v,
          "--control",
          "none",
        ],
        { encoding: "utf8" },
      );
      assert.is(r.status, 2, `--packet-io '${v}': ${r.stderr}`);
      assert.match(r.stderr, `--packet-io '${v}' is not one of ring, mmsg, xdp`);
      assert.match(r.stderr, "usage: wasmvs proxy");
    }
    for (const v of ["rings", "__proto__", "7", "[ring]", "{ toString: ring }", "[xdp]"]) {
      writeFileSync(`${dir}/q.yaml`, `proxy: { mode: packet, packetIo: ${v} }\nservices: []\n`);
      const r = spawnSync(process.execPath, [`${ROOT}/bin/wasmvs.js`, "proxy", "check", "-c", `${dir}/q.yaml`], {
        encoding: "utf8",
      });
      assert.is.not(r.status, 0, `packetIo: ${v}`);
      assert.match(r.stderr + r.stdout, "proxy.packetIo", `packetIo: ${v}: ${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

if (!addon) {
  skip(
    import.meta.url,
    "the packet I/O addon under bad input (every test of this file)",
    `the addon is not built: ${error}`,
  );
} else {
  test("open() refuses a bad io, interfaces or addresses before opening anything", () => {
    const base = { interfaces: ["lo"], local: [] as string[], maxPackets: 8, slot: 2048 };
    const bad = ["rings", "", "__proto__", "constructor", "toString", 7, null, { toString: () => "ring" }, ["ring"]];
    for (const io of bad) {
      const notIo = /options\.io must be 'ring', 'mmsg' or 'xdp'/;
      assert.throws(() => addon.open({ ...base, io: io as any }), notIo, `io ${String(io)}`);
    }
    assert.throws(() => addon.open({ ...base, interfaces: [] }), /options\.interfaces must be a non-empty array/);
    const notInterfaces = /options\.interfaces must be a non-empty array/;
    assert.throws(() => addon.open({ ...base, interfaces: "lo" as any }), notInterfaces);
    assert.throws(() => addon.open({ ...base, interfaces: [7 as any] }), notInterfaces);
    assert.throws(() => addon.open({ ...base, local: ["__proto__"] }), /'__proto__' is not an IPv4 or IPv6 address/);
    assert.throws(() => addon.open({ ...base, maxPackets: 0 }), /maxPackets must be 1\.\.65536/);
    assert.throws(() => addon.open({ ...base, slot: 1 << 20 }), /slot 64\.\.65536/);
    assert.throws(() => (addon.open as any)(), /open\(options\) needs an options object/);
  });

  if (!isRoot()) {
    skip(import.meta.url, "recv/send with bad memory and descriptors", "not root (AF_PACKET sockets need CAP_NET_RAW)");
  } else {
    for (const io of ["ring", "mmsg"] as const) {
      test(`${io}: recv/send refuse a wrong memory and descriptors outside it; a huge count is clamped`, () => {
        const h = addon.open({ interfaces: ["lo"], local: [], maxPackets: 8, slot: 2048, io });
        try {
          assert.is(addon.stats(h).io, io);
          const mem = new ArrayBuffer(8 * 32 + 8 * 2048);
          const notMemory = /expected the WASM memory's ArrayBuffer/;
          assert.throws(() => addon.recv(h, new Uint8Array(16) as any, 0, 256), notMemory);
          assert.throws(() => addon.recv(h, mem, mem.byteLength - 8, 0), /batch area lies outside the WASM memory/);
          assert.throws(() => addon.send(h, mem, mem.byteLength, 0, 8), /descriptors lie outside the WASM memory/);
          assert.throws(() => addon.recv({} as any, mem, 0, 256), /not a packet I\/O handle/);
          // descriptors that say "forward" with offsets and lengths beyond the memory: skipped, nothing sent
          const dv = new DataView(mem);
          for (let i = 0; i < 8; i++) {
            dv.setUint32(i * 32, i === 0 ? 0xffffff00 : mem.byteLength, true);
            dv.setUint32(i * 32 + 4, i === 1 ? 0xffffffff : 100, true);
            dv.setUint8(i * 32 + 16, 1);
          }
          assert.is(addon.send(h, mem, 0, 256, 0xffffffff), 0, "nothing sent for descriptors outside the memory");
          assert.is(addon.stats(h).txPackets, 0);
          // the addresses AF_XDP takes: checked whatever the I/O (a no-op without AF_XDP)
          const notList = /addresses must be an array of strings/;
          for (const bad of ["10.0.0.1", 7, null, { 0: "10.0.0.1" }, [7], [null], [["10.0.0.1"]]])
            assert.throws(() => addon.setAddresses(h, bad as any), notList, `setAddresses(${JSON.stringify(bad)})`);
          for (const bad of ["__proto__", "constructor", "toString", "", "10.0.0.256", "::1::", "10.0.0.1/24"])
            assert.throws(
              () => addon.setAddresses(h, ["10.0.0.1", bad]),
              new RegExp(`'${bad.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}' is not an IPv4 or IPv6 address`),
            );
          assert.throws(() => (addon.setAddresses as any)(h), /setAddresses\(handle, addresses\)/);
          addon.setAddresses(h, ["10.0.0.1", "fd00::1"]);
        } finally {
          addon.close(h);
        }
        assert.throws(() => addon.stats(h), /packet I\/O handle is closed/);
      });
    }

    test(
      "ring: frames kicked out of an interface that went down count as errors, not as sent " + "(was: counted sent)",
      () => {
        // a namespace of its own, a veth whose peer has a permanent neighbour entry so the first packet takes
        // the ring; then the link goes down and the next packet meets the cached next hop
        const ns = `wpio${(process.pid % 46656).toString(36)}`;
        const dir = mkdtempSync(`${tmpdir()}/wpio-`);
        const sh = (cmd: string) => {
          const r = spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
          if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
        };
        writeFileSync(
          `${dir}/down.ts`,
          `import { execFileSync } from "node:child_process";
import { loadPacketAddon } from "${ROOT}src/proxy/packet.ts";
const addon = loadPacketAddon().addon!;
const h = addon.open({ interfaces: ["pioa"], local: [], maxPackets: 1, slot: 2048, io: "ring" });
const mem = new ArrayBuffer(32 + 2048), u8 = new Uint8Array(mem), dv = new DataView(mem);
dv.setUint32(4, 28, true);
u8[16] = 1;
u8.set([0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 235, 0, 1, 10, 235, 0, 2], 32);
u8.set([0x27, 0x10, 0x23, 0x28, 0, 8, 0, 0], 52);
let s = 0;
for (let i = 0; i < 20; i += 2) s += (u8[32 + i] << 8) | u8[33 + i];
while (s >> 16) s = (s & 0xffff) + (s >> 16);
s = ~s & 0xffff; u8[42] = s >> 8; u8[43] = s & 255;
addon.send(h, mem, 0, 32, 1);
const up = addon.stats(h);
execFileSync("ip", ["link", "set", "pioa", "down"]);
addon.send(h, mem, 0, 32, 1);
console.log(JSON.stringify({ up, down: addon.stats(h) }));
`,
        );
        sh(`ip netns add ${ns}`);
        try {
          sh(
            `ip -n ${ns} link add name pioa type veth peer name piob && ip -n ${ns} link set pioa up` +
              ` && ip -n ${ns} link set piob up && ip -n ${ns} addr add 10.235.0.1/24 dev pioa` +
              ` && ip -n ${ns} neigh add 10.235.0.2 lladdr 02:00:00:00:00:02 dev pioa nud permanent`,
          );
          const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", `${dir}/down.ts`], {
            encoding: "utf8",
            cwd: ROOT,
          });
          assert.is(r.status, 0, r.stderr);
          const { up, down } = JSON.parse(r.stdout.trim().split("\n").pop()!);
          assert.is(up.txRingPackets, 1, `the first packet went through the ring: ${JSON.stringify(up)}`);
          assert.is(down.txPackets, 1, `the second was not counted as sent: ${JSON.stringify(down)}`);
          assert.is(down.txOtherErrors + down.txUnreachable, 1, "it was counted as an error");
        } finally {
          sh(`ip netns del ${ns}`);
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );

    test(
      "packets over the route's MTU from hand-made descriptors: beyond a slot, no kept headers, no DF; " +
        "each counted, never written past the addon's buffers; with AF_XDP too, whose address map refuses more " +
        "addresses than it holds, naming the count, and whose program goes with the handle",
      () => {
        const ns = `wpim${(process.pid % 46656).toString(36)}`;
        const dir = mkdtempSync(`${tmpdir()}/wpio-`);
        const sh = (cmd: string) => {
          const r = spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
          if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
        };
        writeFileSync(
          `${dir}/mtu.ts`,
          `import { loadPacketAddon } from "${ROOT}src/proxy/packet.ts";
const addon = loadPacketAddon().addon!;
const out: Record<string, unknown> = {};
for (const io of addon.xdp ? (["ring", "mmsg", "xdp"] as const) : (["ring", "mmsg"] as const)) {
  const h = addon.open({ interfaces: ["pioa"], local: [], maxPackets: 4, slot: 2048, io });
  const mem = new ArrayBuffer(4 * 32 + 4 * 2048), u8 = new Uint8Array(mem), dv = new DataView(mem);
  // an IPv4/UDP packet of len bytes at off; df: the DF bit
  const put = (i: number, off: number, len: number, df: boolean, l4: number) => {
    dv.setUint32(i * 32, off, true);
    dv.setUint32(i * 32 + 4, len, true);
    u8[i * 32 + 16] = 1;
    dv.setUint16(i * 32 + 28, l4, true);
    u8[i * 32 + 30] = 17;
    const p = 128 + off;
    u8.set([0x45, 0, len >> 8, len & 255, 0x12, 0x34, df ? 0x40 : 0, 0, 64, 17, 0, 0, 10, 235, 0, 1, 10, 235, 0, 2], p);
    u8.set([0x27, 0x10, 0x23, 0x28, (len - 20) >> 8, (len - 20) & 255, 0, 0], p + 20);
  };
  put(0, 0, 3000, false, 20); // beyond a slot (a received packet never is): refused, counted
  put(1, 4096, 1400, true, 0xffff); // DF, headers never kept (not received): dropped without an error
  put(2, 6144, 1400, false, 20); // no DF: fragmented
  const sent = addon.send(h, mem, 0, 128, 3);
  // AF_XDP's address map: more addresses than it holds are refused whole, naming the count
  let refused = "";
  const many = Array.from({ length: 70000 }, (_, i) => \`10.\${(i >> 16) & 255}.\${(i >> 8) & 255}.\${i & 255}\`);
  try { addon.setAddresses(h, many); } catch (e) { refused = (e as Error).message; }
  addon.setAddresses(h, ["10.235.0.1", "fd35::1"]);
  out[io] = { sent, refused, ...addon.stats(h) };
  addon.close(h);
}
console.log(JSON.stringify(out));
`,
        );
        sh(`ip netns add ${ns}`);
        try {
          sh(
            `ip -n ${ns} link add name pioa type veth peer name piob && ip -n ${ns} link set pioa mtu 1280 up` +
              ` && ip -n ${ns} link set piob up && ip -n ${ns} addr add 10.235.0.1/24 dev pioa` +
              ` && ip -n ${ns} neigh add 10.235.0.2 lladdr 02:00:00:00:00:02 dev pioa nud permanent`,
          );
          const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", `${dir}/mtu.ts`], {
            encoding: "utf8",
            cwd: ROOT,
          });
          assert.is(r.status, 0, r.stderr);
          const all = JSON.parse(r.stdout.trim().split("\n").pop()!);
          for (const io of addon.xdp ? ["ring", "mmsg", "xdp"] : ["ring", "mmsg"]) {
            const st = all[io];
            const js = `${io}: ${JSON.stringify(st)}`;
            assert.is(st.io, io, js);
            assert.is(st.txTooBig, 2, `the one beyond a slot and the DF one dropped as too big: ${js}`);
            assert.is(st.txIcmpUnquoted, 1, `no error without the kept headers: ${js}`);
            assert.is(st.txIcmpTooBig, 0, js);
            assert.is(st.txFragmented, 1, `the one without DF fragmented: ${js}`);
            assert.is(st.txFragments, 2, `in two pieces (1280 and the rest): ${js}`);
            assert.is(st.txPackets, 1, `and counted sent once: ${js}`);
            if (io === "xdp") assert.match(st.refused, "XDP address map: 70000 addresses, more than its 65536");
            else assert.is(st.refused, "", "without AF_XDP the addresses go nowhere, whatever their number");
          }
          const link = spawnSync("ip", ["-n", ns, "-d", "link", "show", "dev", "pioa"], { encoding: "utf8" }).stdout;
          assert.not.match(link, /prog\/xdp/, `closing the handle took the XDP program off: ${link}`);
        } finally {
          sh(`ip netns del ${ns}`);
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  }
}

test.run();
