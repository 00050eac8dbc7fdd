// The native relay (native/relay): accepts on the TCP listeners, connects to the backend the WASM core chose
// and pumps bytes both ways on Node's own loop without entering JS per message. JS decides: whether to take
// an accepted connection, where it goes (the core), retries, timeouts of idle flows; the addon tells back
// each event (accepted, connected, connect failed, a FIN from either side, the close with its cause) in one
// batch per loop turn. Per-connection read and byte counters live in a
// Float64Array shared with it, so the forwarder's metrics stay exact. NativeRelay.load() gives the relay,
// or why it could not be loaded.
import { createRequire } from "node:module";
import { constants } from "node:os";

interface Addon {
  init(onEvents: (ev: Int32Array) => void, counters: Float64Array): void;
  counters(a: Float64Array): void;
  adopt(slot: number, clientFd: number): void;
  connect(slot: number, addr: string, port: number, timeoutMs: number): void;
  close(slot: number): boolean;
  listen(id: number, addr: string, port: number, backlog: number): number;
  unlisten(id: number): boolean;
  resetFd(fd: number): void;
  active(): number;
  pending(): boolean;
}

export const RELAY_EVENT = {
  CLIENT_EOF: 1,
  BACKEND_EOF: 2,
  CLOSED: 3,
  CONNECTED: 4,
  CONNECT_FAILED: 5,
  ACCEPTED: 6,
  ACCEPT_FAILED: 7,
} as const;
const EVENT_WORDS = 8; // [slot or listener id, kind, a, b, 16 address bytes]
// PUMP_LOST never comes from the addon: the worker thread pumping the connection died (workers.ts), its
// relay having reset both sides
export const RELAY_CAUSE = { FIN: 0, CLIENT_ERROR: 1, BACKEND_ERROR: 2, PUMP_LOST: 3 } as const;
export const RELAY_COUNTERS = 4; // in reads, in bytes, out reads, out bytes

export interface RelayOwner {
  onConnected(): void;
  onConnectFailed(code: string, errno: number): void; // the backend socket is gone; the client is kept
  // a FIN from one side (passed on to the other once its bytes are out)
  onEof(side: "client" | "backend"): void;
  // both sides closed: FIN both ways, or a reset/error on one side (both were reset then); errno for logs
  onClosed(cause: number, errno: number): void;
}

interface RelayListener {
  // a new connection: its descriptor (take it with adopt(), or refuse it with resetFd()) and the client's
  // address as 16 bytes (IPv4 in the first 4; a view valid during this call only)
  onAccept(fd: number, af: number, addr: Uint8Array, port: number): void;
  // reset: connections the addon reset for want of a descriptor (with the one it keeps in reserve for that)
  onAcceptFailed(code: string, reset: number): void;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]));
export const errnoName = (n: number) => ERRNO_NAMES.get(n) ?? `errno_${n}`;

const ADDON_PATH = "../../native/relay/build/Release/relay.node";

export class NativeRelay {
  counters: Float64Array;
  private owners: (RelayOwner | undefined)[] = [];
  private listeners: (RelayListener | undefined)[] = [];
  private free: number[] = [];
  private next = 0;

  private constructor(private readonly addon: Addon) {
    this.counters = new Float64Array(1024 * RELAY_COUNTERS);
    addon.init((ev) => this.dispatch(ev), this.counters);
  }

  // The addon (one per process: every forwarder in it shares its listeners' ids, slots and counters), or
  // why it is not there.
  private static shared: NativeRelay | string | undefined;
  static load(): NativeRelay | string {
    if (NativeRelay.shared === undefined) {
      try {
        NativeRelay.shared = new NativeRelay(createRequire(import.meta.url)(ADDON_PATH) as Addon);
      } catch (e) {
        NativeRelay.shared = (e as Error).message.split("\n")[0];
      }
    }
    return NativeRelay.shared;
  }

  // Takes an accepted connection's descriptor (from RelayListener.onAccept). Returns the slot naming this
  // connection in connect(), close(), the counters and the events. Throws if the addon cannot take it
  // (the descriptor is closed then).
  adopt(fd: number, owner: RelayOwner): number {
    const slot = this.free.length ? this.free.pop()! : this.next++;
    if ((slot + 1) * RELAY_COUNTERS > this.counters.length) this.grow();
    try {
      this.addon.adopt(slot, fd);
    } catch (e) {
      this.free.push(slot);
      throw e;
    }
    this.owners[slot] = owner;
    return slot;
  }

  // A TCP listener served by the addon; throws as net.Server's listen would (code EADDRINUSE, ...).
  listen(addr: string, port: number, backlog: number, handler: RelayListener): number {
    let id = this.listeners.indexOf(undefined);
    if (id < 0) id = this.listeners.length;
    const r = this.addon.listen(id, addr, port, backlog);
    if (r < 0) {
      const code = errnoName(-r);
      throw Object.assign(new Error(`listen ${code} ${addr.includes(":") ? `[${addr}]` : addr}:${port}`), {
        code,
        errno: r,
        syscall: "listen",
      });
    }
    this.listeners[id] = handler;
    return id;
  }

  unlisten(id: number): void {
    if (this.listeners[id] === undefined) return;
    this.addon.unlisten(id);
    this.listeners[id] = undefined;
  }

  // Refuses an accepted connection with a reset.
  resetFd(fd: number): void {
    this.addon.resetFd(fd);
  }

  // Connects the slot's backend side; onConnected or onConnectFailed follows (ETIMEDOUT after timeoutMs).
  connect(slot: number, addr: string, port: number, timeoutMs: number): void {
    this.addon.connect(slot, addr, port, Math.max(1, Math.round(timeoutMs)));
  }

  // Resets whatever is open now; no event follows for the slot, which is free on return.
  close(slot: number): void {
    if (this.owners[slot] === undefined) return;
    this.addon.close(slot);
    this.release(slot);
  }

  active(): number {
    return this.addon.active();
  }

  // Whether work waits for the loop: a connection to accept, a connect completed, bytes, events for JS.
  pending(): boolean {
    return this.addon.pending();
  }

  private release(slot: number) {
    this.owners[slot] = undefined;
    this.free.push(slot);
  }

  private grow() {
    const bigger = new Float64Array(this.counters.length * 2);
    bigger.set(this.counters);
    this.counters = bigger;
    this.addon.counters(bigger);
  }

  private dispatch(ev: Int32Array) {
    for (let i = 0; i + EVENT_WORDS <= ev.length; i += EVENT_WORDS) {
      const slot = ev[i],
        kind = ev[i + 1];
      if (kind === RELAY_EVENT.ACCEPTED || kind === RELAY_EVENT.ACCEPT_FAILED) {
        const l = this.listeners[slot];
        if (kind === RELAY_EVENT.ACCEPT_FAILED) {
          l?.onAcceptFailed(errnoName(ev[i + 3]), ev[i + 2]);
          continue;
        }
        const fd = ev[i + 2],
          w = ev[i + 3];
        if (!l) {
          this.addon.resetFd(fd);
          continue;
        } // the listener closed meanwhile
        l.onAccept(fd, w >>> 16, new Uint8Array(ev.buffer, ev.byteOffset + (i + 4) * 4, 16), w & 0xffff);
        continue;
      }
      const owner = this.owners[slot];
      if (!owner) continue;
      switch (kind) {
        case RELAY_EVENT.CONNECTED:
          owner.onConnected();
          break;
        case RELAY_EVENT.CONNECT_FAILED:
          owner.onConnectFailed(errnoName(ev[i + 3]), ev[i + 3]);
          break;
        case RELAY_EVENT.CLIENT_EOF:
          owner.onEof("client");
          break;
        case RELAY_EVENT.BACKEND_EOF:
          owner.onEof("backend");
          break;
        case RELAY_EVENT.CLOSED:
          // the owner reads the slot's counters before it is released
          owner.onClosed(ev[i + 2], ev[i + 3]);
          if (this.owners[slot] === owner) this.release(slot);
          break;
      }
    }
  }
}
