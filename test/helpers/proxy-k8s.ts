// What the two `wasmvs proxy --kubeconfig` tests share: a backend that answers one line, a fetch through the
// VIP, and a bounded wait.
import { createServer as tcpServer, connect, type Server } from "node:net";
import * as assert from "uvu/assert";

export function backend(addr: string, port: number, reply: string): Promise<Server> {
  // the proxy may reset a backend connection (a probe, a retry, its own shutdown): not an error here
  const s = tcpServer((c) => {
    c.on("error", () => {});
    c.end(reply);
  });
  return new Promise((r) => s.listen(port, addr, () => r(s)));
}

/** What the VIP answers, or "" when it refuses, resets or says nothing for 2 s. */
export function fetchVip(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect({ host, port });
    let data = "";
    c.on("data", (d) => (data += d));
    c.on("end", () => resolve(data));
    c.on("error", () => resolve(""));
    c.setTimeout(2000, () => {
      c.destroy();
      resolve("");
    });
  });
}

export async function until(what: string, fn: () => Promise<boolean>, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.unreachable(`timed out waiting for ${what}`);
}
