// The control socket: a unix stream socket, mode 0600 (root-only when the proxy runs as root), speaking
// newline-delimited JSON: {"id":1,"op":"addService","args":[...]} -> {"id":1,"ok":true,"result":...}
// or {"id":1,"ok":false,"error":"Service already exists"}. BigInts travel as {"$big":"123"}.
// ProxyTarget is the IpvsTarget client over it, so `wasmvs -A/-a/-e/-d/-Ln --target proxy` drive a
// running proxy the way they drive the kernel.
import * as net from "node:net";
import { chmodSync, mkdirSync, unlinkSync, existsSync } from "node:fs";
import { dirname } from "node:path";
import type { IpvsTarget, TargetInfo, ServiceStatus, ConnectionEntry } from "../model/target.ts";
import type { VirtualService, RealServer, IpvsTimeouts } from "../model/types.ts";
import type { Proxy } from "./index.ts";
import { ops } from "./index.ts";

export const DEFAULT_CONTROL = "/run/wasmvs/proxy.sock";

const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? { $big: v.toString() } : v);
const reviver = (_k: string, v: any) => (v && typeof v === "object" && typeof v.$big === "string" && Object.keys(v).length === 1 ? BigInt(v.$big) : v);

type Handler = (p: Proxy, args: any[]) => unknown;
const HANDLERS: Record<string, Handler> = {
  info: (p) => p.info(),
  services: (p) => p.serviceStatus(),
  addService: (p, [s]) => p.change((d) => ops.addService(d, s)),
  editService: (p, [s]) => p.change((d) => ops.editService(d, s)),
  deleteService: (p, [s]) => p.change((d) => ops.deleteService(d, s)),
  flush: (p) => p.change((d) => { d.services = []; }),
  addRealServer: (p, [s, r]) => p.change((d) => ops.addRealServer(d, s, r)),
  editRealServer: (p, [s, r]) => p.change((d) => ops.editRealServer(d, s, r)),
  deleteRealServer: (p, [s, r]) => p.change((d) => ops.deleteRealServer(d, s, r)),
  zero: (p, [s]) => p.zero(s ?? undefined),
  timeouts: (p) => p.timeouts(),
  setTimeouts: (p, [t]) => p.change((d) => { d.timeouts = t; }),
  connections: (p) => p.connections(),
  reload: (p) => p.reload(),
  status: (p) => p.status(),
  decisions: (p, [n]) => p.fw.decisions.slice(-(n ?? p.fw.decisions.length)),
  clearDecisions: (p) => { p.fw.decisions.length = 0; },
  desired: (p) => p.desired,
};

export class ControlServer {
  private conns = new Set<net.Socket>();
  private constructor(readonly server: net.Server, readonly path: string) {}

  static async listen(p: Proxy, path: string): Promise<ControlServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      // a live proxy answers; a stale socket file is replaced
      const live = await new Promise<boolean>((res) => {
        const s = net.connect(path, () => { s.destroy(); res(true); });
        s.on("error", () => res(false));
      });
      if (live) throw new Error(`control socket ${path} is in use by another proxy`);
      unlinkSync(path);
    }
    const server = net.createServer();
    const cs = new ControlServer(server, path);
    server.on("connection", (sock) => cs.serve(p, sock));
    const old = process.umask(0o177);   // created 0600: no window where others could connect
    try {
      await new Promise<void>((res, rej) => { server.once("error", rej); server.listen(path, () => { server.off("error", rej); res(); }); });
    } finally { process.umask(old); }
    chmodSync(path, 0o600);
    return cs;
  }

  private serve(p: Proxy, sock: net.Socket) {
    this.conns.add(sock);
    sock.on("close", () => this.conns.delete(sock));
    sock.on("error", () => {});
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > 16 << 20) { sock.destroy(); return; }
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) void this.handle(p, sock, line);
      }
    });
  }

  private async handle(p: Proxy, sock: net.Socket, line: string) {
    let id: unknown = null;
    try {
      const req = JSON.parse(line, reviver);
      id = req.id;
      const h = HANDLERS[req.op];
      if (!h) throw new Error(`unknown operation '${req.op}'`);
      const result = await h(p, Array.isArray(req.args) ? req.args : []);
      sock.write(JSON.stringify({ id, ok: true, result: result ?? null }, replacer) + "\n");
      if (["addService", "editService", "deleteService", "flush", "addRealServer", "editRealServer", "deleteRealServer", "setTimeouts", "reload"].includes(req.op))
        p.log.info("control", { op: req.op });
    } catch (e) {
      sock.write(JSON.stringify({ id, ok: false, error: (e as Error).message }) + "\n");
    }
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    try { unlinkSync(this.path); } catch { /* gone */ }
  }
}

export class ControlClient {
  private sock: net.Socket;
  private next = 1;
  private pending = new Map<number, { res: (v: any) => void; rej: (e: Error) => void; timer: NodeJS.Timeout }>();
  private buf = "";
  private constructor(sock: net.Socket, readonly timeoutMs: number) {
    this.sock = sock;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(this.buf.slice(0, nl), reviver);
        this.buf = this.buf.slice(nl + 1);
        const w = this.pending.get(msg.id);
        if (!w) continue;
        this.pending.delete(msg.id);
        clearTimeout(w.timer);
        if (msg.ok) w.res(msg.result); else w.rej(new Error(msg.error));
      }
    });
    const fail = (e: Error) => { for (const w of this.pending.values()) { clearTimeout(w.timer); w.rej(e); } this.pending.clear(); };
    sock.on("error", fail);
    sock.on("close", () => fail(new Error("control socket closed")));
  }

  static connect(path = DEFAULT_CONTROL, timeoutMs = 10000): Promise<ControlClient> {
    return new Promise((res, rej) => {
      const s = net.connect(path);
      s.once("connect", () => res(new ControlClient(s, timeoutMs)));
      s.once("error", (e: NodeJS.ErrnoException) =>
        rej(new Error(`cannot reach the proxy at ${path}: ${e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "is `wasmvs proxy` running?" : e.code === "EACCES" ? "permission denied (root only)" : e.message}`)));
    });
  }

  call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    const id = this.next++;
    return new Promise((res, rej) => {
      const timer = setTimeout(() => { this.pending.delete(id); rej(new Error(`proxy did not answer '${op}' within ${this.timeoutMs} ms`)); }, this.timeoutMs);
      this.pending.set(id, { res, rej, timer });
      this.sock.write(JSON.stringify({ id, op, args }, replacer) + "\n");
    });
  }

  close(): void { this.sock.end(); this.sock.destroy(); }
}

export class ProxyTarget implements IpvsTarget {
  readonly name = "proxy";
  private constructor(readonly client: ControlClient) {}
  static async open(path = process.env.WASMVS_PROXY_SOCKET ?? DEFAULT_CONTROL, timeoutMs?: number): Promise<ProxyTarget> {
    return new ProxyTarget(await ControlClient.connect(path, timeoutMs));
  }
  info(): Promise<TargetInfo> { return this.client.call("info"); }
  services(): Promise<ServiceStatus[]> { return this.client.call("services"); }
  async addService(s: VirtualService): Promise<void> { await this.client.call("addService", s); }
  async editService(s: VirtualService): Promise<void> { await this.client.call("editService", s); }
  async deleteService(s: VirtualService): Promise<void> { await this.client.call("deleteService", s); }
  async flush(): Promise<void> { await this.client.call("flush"); }
  async addRealServer(s: VirtualService, r: RealServer): Promise<void> { await this.client.call("addRealServer", s, r); }
  async editRealServer(s: VirtualService, r: RealServer): Promise<void> { await this.client.call("editRealServer", s, r); }
  async deleteRealServer(s: VirtualService, r: Pick<RealServer, "addr" | "port">): Promise<void> { await this.client.call("deleteRealServer", s, { addr: r.addr, port: r.port }); }
  async zero(s?: VirtualService): Promise<void> { await this.client.call("zero", s ?? null); }
  timeouts(): Promise<IpvsTimeouts> { return this.client.call("timeouts"); }
  async setTimeouts(t: IpvsTimeouts): Promise<void> { await this.client.call("setTimeouts", t); }
  connections(): Promise<ConnectionEntry[]> { return this.client.call("connections"); }
  // beyond IpvsTarget
  reload(): Promise<{ services: number }> { return this.client.call("reload"); }
  status(): Promise<any> { return this.client.call("status"); }
  async close(): Promise<void> { this.client.close(); }
}
