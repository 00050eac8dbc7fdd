// The simulator's traffic generator (assembly/sim/traffic.ts) from the host: set up once, then one call
// per run of simulated ticks; the packets never pass through JS. Lives in src/core because it writes the
// Service arrays into WASM memory and reads the counts and recorded decisions back.
import type { Core } from "./index.ts";
import type { PacketBatch } from "./packets.ts";

interface GeneratorSpec {
  connections: number;
  rate: number; // new connections per simulated second
  meanLengthMs: number; // mean connection length (exponential; capped at 20x the mean)
  requests: number; // data packets per connection (0 = SYN then RST)
  clients: number; // distinct client addresses (100.64.0.0 onwards)
  zipf: number; // Service popularity exponent; 0 = uniform
  seed: number;
  record?: number; // record the first `record` new-connection decisions
  slots?: number; // most connections open at once (default from rate x length)
}

interface GeneratorService {
  vip: number;
  port: number;
} // vip as a host-order u32
export interface RecordedDecision {
  svc: number;
  caddr: number;
  cport: number;
  daddr: number;
  dport: number;
}

const REC_WORDS = 5;

export class TrafficGenerator {
  readonly core: Core;
  readonly services: number;
  readonly slots: number;
  done = false;

  // The batch must be the Core's current batch area (PacketBatch) with room for 8+ packets of 40 bytes;
  // the generator takes its descriptors and data over.
  constructor(core: Core, batch: PacketBatch, services: GeneratorService[], spec: GeneratorSpec) {
    const bad = (what: string) => new Error(`traffic generator: ${what}`);
    if (batch.core !== core) throw bad("the batch belongs to another Core");
    if (Math.min(batch.maxPackets, Math.floor(batch.maxBytes / 40)) < 8)
      throw bad(`the batch holds fewer than 8 packets of 40 bytes`);
    if (!services.length) throw bad("no Services");
    const int = (name: string, v: number, lo: number, hi: number) => {
      if (!Number.isInteger(v) || v < lo || v > hi) throw bad(`${name}=${v}: want an integer in [${lo}, ${hi}]`);
    };
    int("connections", spec.connections, 0, 1e15);
    if (!(spec.rate > 0) || !Number.isFinite(spec.rate)) throw bad(`rate=${spec.rate}: want a positive number`);
    if (!(spec.meanLengthMs >= 0 && spec.meanLengthMs <= 3.6e6))
      throw bad(`meanLengthMs=${spec.meanLengthMs}: want 0 to 3,600,000`);
    int("requests", spec.requests, 0, 1e6);
    int("clients", spec.clients, 1, 1 << 22);
    if (!(spec.zipf >= 0) || !Number.isFinite(spec.zipf)) throw bad(`zipf=${spec.zipf}: want 0 or more`);
    int("record", spec.record ?? 0, 0, 1 << 24);
    for (const [i, s] of services.entries()) {
      if (!Number.isInteger(s.vip) || s.vip < 0 || s.vip > 0xffffffff)
        throw bad(`Service ${i}: vip ${s.vip} is not an IPv4 address as a u32`);
      if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw bad(`Service ${i}: port ${s.port}`);
    }
    // open at once ≈ rate × mean length: room for far more than its Poisson spread
    const open = (spec.rate * spec.meanLengthMs) / 1000;
    let slots = spec.slots ?? 4096;
    if (spec.slots === undefined) while (slots < 4 * open + 1024 && slots < 1 << 24) slots *= 2;
    int("slots", slots, 1, 1 << 24);
    this.core = core;
    this.services = services.length;
    this.slots = slots;
    const at =
      core.x.simInit(
        services.length,
        spec.connections,
        spec.rate,
        spec.meanLengthMs,
        spec.requests,
        spec.clients,
        spec.zipf,
        spec.seed >>> 0,
        spec.record ?? 0,
        slots,
      ) >>> 0;
    if (!at) throw bad(`refused by the core (services ${services.length}, slots ${slots})`);
    const u32 = new Uint32Array(core.x.memory.buffer, at, 2 * services.length);
    services.forEach((s, i) => {
      u32[i] = s.vip >>> 0;
      u32[services.length + i] = s.port;
    });
  }

  // Runs up to `ticks` ms of simulated time; true once every connection has ended. dry: generate the
  // packets without running them through the data plane (to time the generator alone).
  run(ticks: number, dry = false): boolean {
    const x = this.core.x;
    const r = x.simRun(ticks, dry ? 1 : 0);
    if (r === x.SIM_E_SLOTS.value)
      throw new Error(
        `traffic generator: more than ${this.slots} connections open at once: lower the rate or the length, or ` +
          `give more slots`,
      );
    if (r === x.SIM_E_NOT_READY.value)
      throw new Error("traffic generator: not set up, or the batch area was re-made since");
    this.done = r === x.SIM_DONE.value;
    return this.done;
  }

  get made(): number {
    return this.core.x.simMade();
  }
  get packets(): number {
    return this.core.x.simPackets();
  }
  get ticks(): number {
    return this.core.x.simTicks();
  }
  get openPeak(): number {
    return this.core.x.simOpenPeak() >>> 0;
  }

  // New connections per Service (a copy).
  perService(): Uint32Array {
    return new Uint32Array(this.core.x.memory.buffer, this.core.x.simPerServicePtr() >>> 0, this.services).slice();
  }

  // The recorded new-connection decisions, in order (forwarded SYNs only).
  decisions(): RecordedDecision[] {
    const n = this.core.x.simRecorded() >>> 0;
    const w = new Uint32Array(this.core.x.memory.buffer, this.core.x.simRecordPtr() >>> 0, n * REC_WORDS);
    const out: RecordedDecision[] = [];
    for (let i = 0; i < n; i++) {
      const o = i * REC_WORDS;
      out.push({ svc: w[o], caddr: w[o + 1], cport: w[o + 2], daddr: w[o + 3], dport: w[o + 4] });
    }
    return out;
  }
}
