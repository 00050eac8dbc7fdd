// A send loop for bench/packet-mode.ts: the same 64-byte-payload IPv4/UDP packet sent as fast as one
// Node process can, through the `raw-socket` npm package (the design card's choice) or through packet
// mode's own addon (native/packet, mmsg or ring I/O). Run inside the balancer namespace:
//
//   node --import tsx bench/packet-mode/send-loop.ts KIND SRC DST IFACE SECONDS [RAW_SOCKET_PATH]
//
// KIND: raw-socket | addon-mmsg | addon-ring. Prints one JSON line: packets handed over, seconds, the
// process's CPU microseconds. raw-socket sends one packet per call with a callback each (its only API);
// the addon sends a batch of 64 per call, as packet mode does.
import { createRequire } from "node:module";
import { loadPacketAddon } from "../../src/proxy/packet.ts";

const [kind, src, dst, iface, secondsArg, rawPath] = process.argv.slice(2);
const SECONDS = Number(secondsArg);
const PAYLOAD = 64,
  LEN = 20 + 8 + PAYLOAD,
  BATCH = 64,
  SLOT = 2048;

function packet(into: Uint8Array, at: number): void {
  const p = into.subarray(at, at + LEN);
  p.fill(0);
  p[0] = 0x45;
  p[2] = LEN >> 8;
  p[3] = LEN & 255;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split(".").map(Number), 12);
  p.set(dst.split(".").map(Number), 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (p[i] << 8) | p[i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  s = ~s & 0xffff;
  p[10] = s >> 8;
  p[11] = s & 255;
  p[20] = 0x27;
  p[21] = 0x10;
  p[22] = 0x23;
  p[23] = 0x28; // 10000 -> 9000
  p[24] = (8 + PAYLOAD) >> 8;
  p[25] = (8 + PAYLOAD) & 255; // UDP checksum 0: none (IPv4)
}

function done(sent: number, t0: number, c0: NodeJS.CpuUsage): void {
  const c = process.cpuUsage(c0);
  console.log(JSON.stringify({ kind, sent, seconds: (performance.now() - t0) / 1000, cpuUs: c.user + c.system }));
}

function rawSocketLoop(): void {
  const raw = createRequire(import.meta.url)(rawPath);
  const sock = raw.createSocket({ protocol: 255, addressFamily: raw.AddressFamily.IPv4 });
  sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
  const buf = Buffer.alloc(LEN);
  packet(buf, 0);
  let sent = 0,
    stop = false;
  const t0 = performance.now(),
    c0 = process.cpuUsage();
  // keep BATCH sends queued: the package queues them and sends when the socket is writable
  const one = () => {
    if (stop) return;
    sock.send(buf, 0, LEN, dst, null, (err: Error | null) => {
      if (!err) sent++;
      one();
    });
  };
  for (let i = 0; i < BATCH; i++) one();
  setTimeout(() => {
    stop = true;
    done(sent, t0, c0);
    sock.close();
  }, SECONDS * 1000);
}

function addonLoop(io: "ring" | "mmsg"): void {
  const { addon, error } = loadPacketAddon();
  if (!addon) throw new Error(error);
  const h = addon.open({ interfaces: [iface], local: [], maxPackets: BATCH, slot: SLOT, io });
  const mem = new ArrayBuffer(BATCH * 32 + BATCH * SLOT);
  const u8 = new Uint8Array(mem),
    dv = new DataView(mem);
  const data = BATCH * 32;
  for (let i = 0; i < BATCH; i++) {
    dv.setUint32(i * 32, i * SLOT, true);
    dv.setUint32(i * 32 + 4, LEN, true);
    u8[i * 32 + 16] = 1; // verdict: forward
    packet(u8, data + i * SLOT);
  }
  let _sent = 0;
  const t0 = performance.now(),
    c0 = process.cpuUsage(),
    end = t0 + SECONDS * 1000;
  while (performance.now() < end) for (let k = 0; k < 16; k++) _sent += addon.send(h, mem, 0, data, BATCH);
  const st = addon.stats(h);
  done(st.txPackets, t0, c0);
  if (io === "ring" && st.io !== "ring") console.error(`ring I/O unavailable: ${st.ringFallback}`);
  addon.close(h);
}

if (kind === "raw-socket") rawSocketLoop();
else if (kind === "addon-mmsg" || kind === "addon-ring") addonLoop(kind === "addon-ring" ? "ring" : "mmsg");
else {
  console.error("KIND must be raw-socket, addon-mmsg or addon-ring");
  process.exit(2);
}
