// Health checks like keepalived's: TCP connect, HTTP GET (status, optional MD5 digest of the body), UDP
// send/expect, exec. Each real server has one checker with rise/fall counts; a change of state calls
// back so the proxy quiesces (weight 0) or removes the destination, and restores it on recovery.
// Checkers are kept across reloads by key, so a reload does not forget who is down.
import * as net from "node:net";
import * as dgram from "node:dgram";
import * as http from "node:http";
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import type { HealthSpec } from "./config.ts";
import type { Logger } from "./log.ts";

type CheckResult = { ok: boolean; detail?: string };

function runCheck(spec: HealthSpec, addr: string, rport: number): Promise<CheckResult> {
  const port = spec.port ?? rport;
  const ms = Math.max(1, Math.round(spec.timeout * 1000));
  switch (spec.type) {
    case "tcp":
      return tcpCheck(addr, port, ms);
    case "http":
      return httpCheck(spec, addr, port, ms);
    case "udp":
      return udpCheck(spec, addr, port, ms);
    case "exec":
      return execCheck(spec, addr, port, ms);
  }
}

function tcpCheck(addr: string, port: number, ms: number): Promise<CheckResult> {
  return new Promise((res) => {
    const s = net.connect({ host: addr, port });
    const t = setTimeout(() => {
      s.destroy();
      res({ ok: false, detail: "connect timeout" });
    }, ms);
    s.once("connect", () => {
      clearTimeout(t);
      s.destroy();
      res({ ok: true });
    });
    s.once("error", (e) => {
      clearTimeout(t);
      res({ ok: false, detail: e.message });
    });
  });
}

function httpCheck(spec: HealthSpec, addr: string, port: number, ms: number): Promise<CheckResult> {
  return new Promise((res) => {
    let settled = false;
    const done = (r: CheckResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(t);
        req.destroy();
        res(r);
      }
    };
    const host = addr.includes(":") ? `[${addr}]` : addr;
    const req = http.get(
      {
        host: addr,
        port,
        path: spec.path ?? "/",
        agent: false,
        headers: { host: spec.host ?? `${host}:${port}`, connection: "close" },
      },
      (resp) => {
        const want = spec.status ?? 200;
        if (resp.statusCode !== want) {
          resp.resume();
          return done({ ok: false, detail: `status ${resp.statusCode}` });
        }
        const h = spec.digest ? createHash("md5") : null;
        resp.on("data", (b: Buffer) => h?.update(b));
        resp.on("end", () => {
          if (h) {
            const d = h.digest("hex");
            return done(d === spec.digest!.toLowerCase() ? { ok: true } : { ok: false, detail: `digest ${d}` });
          }
          done({ ok: true });
        });
        resp.on("error", (e) => done({ ok: false, detail: e.message }));
      },
    );
    const t = setTimeout(() => done({ ok: false, detail: "timeout" }), ms);
    req.on("error", (e) => done({ ok: false, detail: e.message }));
  });
}

function udpCheck(spec: HealthSpec, addr: string, port: number, ms: number): Promise<CheckResult> {
  return new Promise((res) => {
    const s = dgram.createSocket(addr.includes(":") ? "udp6" : "udp4");
    let settled = false;
    const done = (r: CheckResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(t);
        try {
          s.close();
        } catch {
          /* */
        }
        res(r);
      }
    };
    // without expect: up unless the port answers unreachable (ECONNREFUSED on a connected socket) in time
    const t = setTimeout(() => done(spec.expect !== undefined ? { ok: false, detail: "no reply" } : { ok: true }), ms);
    s.on("error", (e) => done({ ok: false, detail: e.message }));
    s.on("message", (m) => {
      if (spec.expect === undefined || m.toString("latin1").startsWith(spec.expect)) done({ ok: true });
      else done({ ok: false, detail: "unexpected reply" });
    });
    s.connect(port, addr, () => s.send(Buffer.from(spec.send ?? "", "latin1")));
  });
}

function execCheck(spec: HealthSpec, addr: string, port: number, ms: number): Promise<CheckResult> {
  const argv = spec.command!.map((a) => a.replaceAll("{addr}", addr).replaceAll("{port}", String(port)));
  return new Promise((res) => {
    execFile(
      argv[0],
      argv.slice(1),
      { timeout: ms, env: { ...process.env, WASMVS_RS_ADDR: addr, WASMVS_RS_PORT: String(port) } },
      (e) =>
        res(
          e
            ? {
                ok: false,
                detail:
                  (e as NodeJS.ErrnoException).code === undefined && (e as { killed?: boolean }).killed
                    ? "timeout"
                    : e.message.split("\n")[0],
              }
            : { ok: true },
        ),
    );
  });
}

interface CheckerState {
  key: string;
  up: boolean;
  okStreak: number;
  failStreak: number;
  checks: number;
  lastDetail?: string;
  spec: HealthSpec;
  since: number;
}

class Checker {
  state: CheckerState;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;
  constructor(
    key: string,
    spec: HealthSpec,
    readonly addr: string,
    readonly port: number,
    readonly onChange: (key: string, up: boolean) => void,
    readonly log: Logger,
  ) {
    this.state = { key, up: true, okStreak: 0, failStreak: 0, checks: 0, spec, since: Date.now() };
  }
  start(delayMs = 0) {
    this.stopped = false;
    this.schedule(delayMs);
  }
  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
  private schedule(ms: number) {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run(), ms);
  }
  private async run() {
    if (this.running || this.stopped) return;
    this.running = true;
    const spec = this.state.spec;
    let r: CheckResult;
    try {
      r = await runCheck(spec, this.addr, this.port);
    } catch (e) {
      r = { ok: false, detail: (e as Error).message };
    }
    this.running = false;
    if (this.stopped) return;
    const s = this.state;
    s.checks++;
    s.lastDetail = r.detail;
    if (r.ok) {
      s.okStreak++;
      s.failStreak = 0;
    } else {
      s.failStreak++;
      s.okStreak = 0;
    }
    if (s.up && !r.ok && s.failStreak >= spec.fall) {
      s.up = false;
      s.since = Date.now();
      this.log.warn("real server down", { key: s.key, check: spec.type, detail: r.detail, action: spec.onFail });
      this.onChange(s.key, false);
    } else if (!s.up && r.ok && s.okStreak >= spec.rise) {
      s.up = true;
      s.since = Date.now();
      this.log.info("real server up", { key: s.key, check: spec.type });
      this.onChange(s.key, true);
    }
    this.schedule(Math.round(spec.interval * 1000));
  }
}

export class HealthManager {
  private checkers = new Map<string, Checker>();
  constructor(
    readonly log: Logger,
    readonly onChange: (key: string, up: boolean) => void,
  ) {}

  // Makes the set of checkers equal to `want` (key -> spec and target); kept ones keep their state.
  sync(want: Map<string, { spec: HealthSpec; addr: string; port: number }>): void {
    for (const [k, c] of this.checkers)
      if (!want.has(k)) {
        c.stop();
        this.checkers.delete(k);
      }
    for (const [k, w] of want) {
      const c = this.checkers.get(k);
      if (c) {
        if (JSON.stringify(c.state.spec) !== JSON.stringify(w.spec)) {
          c.state.spec = w.spec;
          c.stop();
          c.start(0);
        }
        continue;
      }
      const n = new Checker(k, w.spec, w.addr, w.port, this.onChange, this.log);
      this.checkers.set(k, n);
      n.start(0);
    }
  }

  // The action for a destination that is down, undefined when up or unchecked.
  down(key: string): "quiesce" | "remove" | undefined {
    const c = this.checkers.get(key);
    return c && !c.state.up ? c.state.spec.onFail : undefined;
  }

  states(): CheckerState[] {
    return [...this.checkers.values()].map((c) => ({ ...c.state }));
  }
  stop(): void {
    for (const c of this.checkers.values()) c.stop();
    this.checkers.clear();
  }
}
