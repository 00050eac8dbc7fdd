// The native byte pump (native/relay): once JS has scheduled and connected a TCP connection it hands both
// sockets' descriptors over; the addon pumps on Node's own loop without entering JS per message and tells
// back each FIN and the close with its cause. Per-connection read and byte counters live in a Float64Array
// shared with it, so the forwarder's metrics stay exact. Load it with loadRelay(); null when not built.
import { createRequire } from "node:module";
import type * as net from "node:net";

interface Addon {
  init(onEvents: (ev: Int32Array) => void, counters: Float64Array): void;
  counters(a: Float64Array): void;
  start(slot: number, clientFd: number, backendFd: number): void;
  close(slot: number): boolean;
  active(): number;
}

export const RELAY_EVENT = { CLIENT_EOF: 1, BACKEND_EOF: 2, CLOSED: 3 } as const;
export const RELAY_CAUSE = { FIN: 0, CLIENT_ERROR: 1, BACKEND_ERROR: 2 } as const;
export const RELAY_COUNTERS = 4;   // in reads, in bytes, out reads, out bytes

export interface RelayOwner {
  // a FIN from one side (already passed on to the other once its bytes were out)
  onEof(side: "client" | "backend"): void;
  // both sides closed: FIN both ways, or a reset/error on one side (both were reset then); errno for logs
  onClosed(cause: number, errno: number): void;
}

const ADDON_PATH = "../../native/relay/build/Release/relay.node";

export class NativeRelay {
  counters: Float64Array;
  private owners: (RelayOwner | undefined)[] = [];
  private free: number[] = [];
  private next = 0;

  private constructor(private readonly addon: Addon) {
    this.counters = new Float64Array(1024 * RELAY_COUNTERS);
    addon.init((ev) => this.dispatch(ev), this.counters);
  }

  // The addon, or why it is not there.
  static load(): NativeRelay | string {
    try {
      const addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
      return new NativeRelay(addon);
    } catch (e) {
      return (e as Error).message.split("\n")[0];
    }
  }

  // Takes over the two connected sockets (they are destroyed here; the addon holds duplicates). Returns the
  // slot whose counters and events are this connection's. Throws if the descriptors cannot be taken.
  adopt(client: net.Socket, backend: net.Socket, owner: RelayOwner): number {
    const cfd = fdOf(client), bfd = fdOf(backend);
    if (cfd < 0 || bfd < 0) throw new Error("socket has no descriptor to hand over");
    const slot = this.free.length ? this.free.pop()! : this.next++;
    if ((slot + 1) * RELAY_COUNTERS > this.counters.length) this.grow();
    try { this.addon.start(slot, cfd, bfd); }
    catch (e) { this.free.push(slot); throw e; }
    this.owners[slot] = owner;
    client.destroy();
    backend.destroy();
    return slot;
  }

  // Resets both sides now; no event follows for the slot, which is free on return.
  close(slot: number): void {
    if (this.owners[slot] === undefined) return;
    this.addon.close(slot);
    this.release(slot);
  }

  active(): number { return this.addon.active(); }

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
    for (let i = 0; i + 3 < ev.length; i += 4) {
      const slot = ev[i], kind = ev[i + 1];
      const owner = this.owners[slot];
      if (!owner) continue;
      if (kind === RELAY_EVENT.CLOSED) {
        owner.onClosed(ev[i + 2], ev[i + 3]);
        this.release(slot);
      } else owner.onEof(kind === RELAY_EVENT.CLIENT_EOF ? "client" : "backend");
    }
  }
}

function fdOf(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === "number" ? fd : -1;
}
