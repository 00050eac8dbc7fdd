// Ports for tests and benches on loopback, chosen by the kernel (port 0), so concurrent runs of the same test
// (several worktrees on one machine) never meet on a fixed port. A listener of our own binds 0 itself; a port
// the proxy must be told in its configuration comes from freePort(): bound, read and released at once (another
// process could take it in between; the kernel picks from ~28k ephemeral ports at random, so that is rare).
import * as dgram from "node:dgram";
import * as net from "node:net";

/** A TCP (or UDP) port free on `host` now. */
export function freePort(host = "127.0.0.1", proto: "tcp" | "udp" = "tcp"): Promise<number> {
  if (proto === "udp")
    return new Promise((res, rej) => {
      const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
      s.once("error", rej);
      s.bind(0, host, () => {
        const { port } = s.address();
        s.close(() => res(port));
      });
    });
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => res(port));
    });
  });
}

/** `n` different TCP ports free on `host` now: all held at once while the kernel picks, then released. */
export async function freePorts(n: number, host = "127.0.0.1"): Promise<number[]> {
  const held: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      held.push(s);
      await new Promise<void>((res, rej) => {
        s.once("error", rej);
        s.listen(0, host, () => res());
      });
    }
    return held.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}

/** A TCP port free on `host` for both TCP and UDP (a service listening on both protocols). */
export async function freePortBoth(host = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(host);
    const ok = await new Promise<boolean>((res) => {
      const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
      s.once("error", () => res(false));
      s.bind(port, host, () => s.close(() => res(true)));
    });
    if (ok) return port;
  }
  throw new Error(`no port free for both TCP and UDP on ${host}`);
}

/** The port a listening server got. */
export const portOf = (s: net.Server | dgram.Socket): number =>
  (s instanceof net.Server ? (s.address() as net.AddressInfo) : s.address()).port;
