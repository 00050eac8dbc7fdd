// Every service's and destination's counters, read in runs: one countersWrite call writes a run of whole
// services into the module's counters area (CTR_* in assembly/layout.ts), and this reads the records in
// place through typed arrays, without an object or a call per service or per destination (the proxy's
// /metrics scrape at 10k services x 10 destinations).
//   const r = new CounterReader(core);
//   while (r.nextRun()) { while (r.nextService()) { ...r.svcId...; while (r.nextDest()) ...r.destId... } }
// (r.withDests = false before a run: services only, their destinations counted, not written)
import type { Core } from "./index.ts";
import * as L from "../../assembly/layout.ts";

export class CounterReader {
  private i32 = new Int32Array(0);
  private f64 = new Float64Array(0);
  private u8 = new Uint8Array(0);
  private from = 0; // the service id the next run starts at; -1 when every service is read
  private svcLeft = 0; // service records left in this run
  private destLeft = 0; // destination records left in this service
  private at = 0; // the next record's address
  private svc = 0; // the current service record's address
  private dest = 0; // the current destination record's address
  private runDests = true; // this run has the destinations' records
  /** whether the next runs write the destinations' records (svcDests counts them either way) */
  withDests = true;

  /** budget: records per run (a run ends at a service's end, so it may hold more) */
  constructor(
    readonly core: Core,
    readonly budget = 4096,
  ) {}

  /** Writes the next run of services; false when every service has been read. */
  nextRun(): boolean {
    if (this.from < 0) return false;
    const x = this.core.x;
    this.from = x.countersWrite(this.from, this.budget, this.withDests ? 1 : 0);
    this.runDests = this.withDests;
    const buf = x.memory.buffer; // the call may have grown the memory: views of the old buffer are detached
    if (this.u8.buffer !== buf) {
      this.i32 = new Int32Array(buf);
      this.f64 = new Float64Array(buf);
      this.u8 = new Uint8Array(buf);
    }
    const base = x.countersPtr() >>> 0;
    this.svcLeft = this.i32[(base + L.CTR_HEAD_SERVICES) >> 2];
    this.destLeft = 0;
    this.at = base + L.CTR_HEAD_END;
    return true;
  }

  /** Moves to this run's next service (skipping the destinations not read); false at the run's end. */
  nextService(): boolean {
    this.at += this.destLeft * L.CTR_DEST_END;
    this.destLeft = 0;
    if (this.svcLeft <= 0) return false;
    this.svcLeft--;
    this.svc = this.at;
    this.destLeft = this.runDests ? this.i32[(this.at + L.CTR_SVC_DESTS) >> 2] : 0;
    this.at += L.CTR_SVC_END;
    return true;
  }

  /** Moves to the current service's next destination (the kernel's list order); false after its last. */
  nextDest(): boolean {
    if (this.destLeft <= 0) return false;
    this.destLeft--;
    this.dest = this.at;
    this.at += L.CTR_DEST_END;
    return true;
  }

  get svcId(): number {
    return this.i32[(this.svc + L.CTR_SVC_ID) >> 2];
  }
  get svcDests(): number {
    return this.i32[(this.svc + L.CTR_SVC_DESTS) >> 2];
  }
  get svcConns(): number {
    return this.f64[(this.svc + L.CTR_SVC_CONNS) >> 3];
  }
  get svcInPkts(): number {
    return this.f64[(this.svc + L.CTR_SVC_INPKTS) >> 3];
  }
  get svcOutPkts(): number {
    return this.f64[(this.svc + L.CTR_SVC_OUTPKTS) >> 3];
  }
  get svcInBytes(): number {
    return this.f64[(this.svc + L.CTR_SVC_INBYTES) >> 3];
  }
  get svcOutBytes(): number {
    return this.f64[(this.svc + L.CTR_SVC_OUTBYTES) >> 3];
  }

  get destId(): number {
    return this.i32[(this.dest + L.CTR_DEST_ID) >> 2];
  }
  get destAf(): number {
    return this.i32[(this.dest + L.CTR_DEST_AF) >> 2];
  }
  get destPort(): number {
    return this.i32[(this.dest + L.CTR_DEST_PORT) >> 2] >>> 0;
  }
  get destWeight(): number {
    return this.i32[(this.dest + L.CTR_DEST_WEIGHT) >> 2];
  }
  get destActive(): number {
    return this.i32[(this.dest + L.CTR_DEST_ACTIVE) >> 2] >>> 0;
  }
  get destInactive(): number {
    return this.i32[(this.dest + L.CTR_DEST_INACTIVE) >> 2] >>> 0;
  }
  get destPersist(): number {
    return this.i32[(this.dest + L.CTR_DEST_PERSIST) >> 2] >>> 0;
  }
  get destSvc(): number {
    return this.i32[(this.dest + L.CTR_DEST_SVC) >> 2];
  }
  /** word w (0-3) of the destination's address as stored (network-order bytes), for comparing */
  destAddrWord(w: number): number {
    return this.i32[((this.dest + L.CTR_DEST_ADDR) >> 2) + w];
  }
  /** the destination's address bytes (a copy: IPv4 in the first 4) */
  destAddrBytes(): Uint8Array {
    const at = this.dest + L.CTR_DEST_ADDR;
    return this.u8.slice(at, at + 16);
  }
  get destConns(): number {
    return this.f64[(this.dest + L.CTR_DEST_CONNS) >> 3];
  }
  get destInPkts(): number {
    return this.f64[(this.dest + L.CTR_DEST_INPKTS) >> 3];
  }
  get destOutPkts(): number {
    return this.f64[(this.dest + L.CTR_DEST_OUTPKTS) >> 3];
  }
  get destInBytes(): number {
    return this.f64[(this.dest + L.CTR_DEST_INBYTES) >> 3];
  }
  get destOutBytes(): number {
    return this.f64[(this.dest + L.CTR_DEST_OUTBYTES) >> 3];
  }
}
