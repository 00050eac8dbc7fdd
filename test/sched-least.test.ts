// lc, wlc, sed, nq, fo, ovf, twos: the kernel's choices (pinned sequences from Linux 6.1 in shared/ipvs-vm,
// hand-computed cases) and a property test against plain kernel-style scans written here in TypeScript,
// for the O(log n) tree-indexed implementations in assembly/sched/.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core, WasmvsError } from "../src/core/index.ts";

const VIP = "10.0.0.1";
const CLIENT = "10.1.0.254";

async function service(sched: string): Promise<{ core: Core; svc: number }> {
  const core = await Core.load();
  const svc = core.addService({ proto: "tcp", addr: VIP, port: 80, scheduler: sched });
  return { core, svc };
}

// A=4, B=3, C=2 added in that order, so the kernel's list order is C, B, A. Names: 1=A, 2=B, 3=C.
async function abc(sched: string, weights = [4, 3, 2]) {
  const { core, svc } = await service(sched);
  const ids = weights.map((w, i) => core.addDest(svc, { addr: `10.1.0.${i + 1}`, port: 80, weight: w }));
  const name = (id: number) => (id < 0 ? 0 : ids.indexOf(id) + 1);
  return { core, svc, ids, name };
}

// Core.schedule() for a service that exists: the destination id, or -1 for "no destination available".
// (The WASM's -1 for "no destination" equals E_NO_SERVICE, so Core.schedule's check() throws on it.)
function pick(core: Core, svc: number, sport: number): number {
  try {
    return core.schedule(svc, CLIENT, sport);
  } catch (e) {
    if (e instanceof WasmvsError && e.code === -1) return -1;
    throw e;
  }
}

type Counter = "active" | "inactive";

// n new connections, each counted on the chosen destination before the next is scheduled
function run(
  core: Core,
  svc: number,
  n: number,
  counter: Counter,
  name: (id: number) => number,
  sport0 = 40000,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = pick(core, svc, sport0 + i);
    out.push(name(id));
    if (id >= 0) addConn(core, id, counter);
  }
  return out;
}

function addConn(core: Core, id: number, counter: Counter): void {
  const d = core.dest(id);
  if (counter === "active") core.setLoad(id, d.activeConns + 1, d.inactConns);
  else core.setLoad(id, d.activeConns, d.inactConns + 1);
}

const seq = (s: string) => s.split(" ").map(Number);

// ---- (1) the real kernel's sequences --------------------------------------------------------------------
// Which counter does a kernel connection land on? shared/ipvs-vm's examples/choices.sh connects 18 times and
// nobody answers, so every entry stays in SYN_RECV; `ipvsadm -Ln` in that VM (Linux 6.1.0-56-amd64) then
// shows ActiveConn 8/6/4 and InActConn 0 for A/B/C (checked while writing this test). Linux 6.1's
// set_tcp_state() moves a connection to inactconns only for states outside tcp_state_active_table, and
// SYN_SENT, SYN_RECV, SYNACK and ESTABLISHED are all active there (ip_vs_bind_dest counts a new connection
// as active first). So a SYN_RECV connection is ACTIVE on 6.1 (the reference's "counts as inactive" is an
// older kernel's behaviour). The sequences agree: sed and nq ignore inactconns, and with inactive counting
// sed would pick A forever (1/4 < 1/3 < 1/2 at every step); with active counting they come out exactly as
// the kernel printed them. lc and wlc cannot tell the two apart (every load is scaled by the same 256), so
// they are pinned with both counters.
const KERNEL: Record<string, string> = {
  lc: "3 2 1 3 2 1 3 2 1 3 2 1 3 2 1 3 2 1",
  wlc: "3 2 1 1 2 3 1 2 1 3 2 1 1 2 3 1 2 1",
  sed: "1 2 3 1 2 1 3 2 1 1 2 3 1 2 1 3 2 1",
  nq: "3 2 1 1 2 1 3 2 1 1 2 3 1 2 1 3 2 1",
};

for (const sched of ["lc", "wlc", "sed", "nq"]) {
  test(`${sched}: the kernel's first 18 choices (A=4 B=3 C=2, SYN_RECV counted active)`, async () => {
    const { core, svc, name } = await abc(sched);
    assert.equal(run(core, svc, 18, "active", name), seq(KERNEL[sched]));
  });
}
for (const sched of ["lc", "wlc"]) {
  test(`${sched}: the same sequence when connections count as inactive`, async () => {
    const { core, svc, name } = await abc(sched);
    assert.equal(run(core, svc, 18, "inactive", name), seq(KERNEL[sched]));
  });
}
test("sed: inactive connections are invisible to it (why the kernel's SYN_RECV must count as active)", async () => {
  const { core, svc, name } = await abc("sed");
  assert.equal(run(core, svc, 6, "inactive", name), [1, 1, 1, 1, 1, 1]);
});

// ---- hand-computed cases ----------------------------------------------------------------------------------
test("fo: highest weight, earliest in list order on a tie, OVERLOAD fails over, weight 0 never", async () => {
  const { core, svc, ids, name } = await abc("fo", [4, 3, 4]); // list C(4) B(3) A(4)
  assert.equal(run(core, svc, 3, "active", name), [3, 3, 3]); // C and A tie at 4: C is earlier
  core.setLoad(ids[2], 2, 0);
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 4, upperThreshold: 3 });
  assert.equal(name(pick(core, svc, 1)), 3); // threshold set but not yet reached (2 < 3)
  core.setLoad(ids[2], 3, 0); // total 3 >= 3: OVERLOAD
  assert.ok(core.dest(ids[2]).overloaded);
  assert.equal(name(pick(core, svc, 2)), 1); // A, the other weight 4
  // a threshold edited down to the current load overloads at once (observed on 6.1 in the VM)
  core.setLoad(ids[2], 1, 0);
  assert.ok(!core.dest(ids[2]).overloaded);
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 4, upperThreshold: 1 });
  assert.ok(core.dest(ids[2]).overloaded);
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 4, upperThreshold: 3 }); // raised: cleared
  core.setLoad(ids[2], 3, 0);
  core.editDest(svc, { addr: "10.1.0.1", port: 80, weight: 0 });
  assert.equal(name(pick(core, svc, 3)), 2); // B
  core.editDest(svc, { addr: "10.1.0.2", port: 80, weight: 0 });
  assert.equal(pick(core, svc, 4), -1); // C overloaded, A and B weight 0
  assert.equal(core.schedFailReason(), "no destination available");
  core.setLoad(ids[2], 1, 0); // 1*4 < 3*3: below 75%, OVERLOAD clears
  assert.equal(name(pick(core, svc, 5)), 3);
});

test("ovf: a destination takes weight + 1 active connections, then overflows; inactive never count", async () => {
  const { core, svc, ids, name } = await abc("ovf", [2, 1]); // list B(1) A(2)
  assert.equal(run(core, svc, 6, "active", name), [1, 1, 1, 2, 2, 0]);
  // UDP-like: inactive connections only, A keeps everything
  core.setLoad(ids[0], 0, 0);
  core.setLoad(ids[1], 0, 0);
  assert.equal(run(core, svc, 5, "inactive", name), [1, 1, 1, 1, 1]);
  // equal weights: the earlier (B, re-weighted to 2) wins while eligible
  core.setLoad(ids[0], 0, 0);
  core.editDest(svc, { addr: "10.1.0.2", port: 80, weight: 2 });
  assert.equal(run(core, svc, 7, "active", name), [2, 2, 2, 1, 1, 1, 0]);
});

test("lc: weight only matters as zero; OVERLOAD by thresholds skips, lower threshold clears", async () => {
  const { core, svc, ids, name } = await abc("lc", [4, 0, 2]); // list C(2) B(0) A(4)
  assert.equal(run(core, svc, 4, "active", name), [3, 1, 3, 1]);
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 2, upperThreshold: 3, lowerThreshold: 1 });
  assert.equal(run(core, svc, 2, "active", name), [3, 1]); // C reaches 3 -> OVERLOAD
  assert.ok(core.dest(ids[2]).overloaded);
  assert.equal(run(core, svc, 2, "active", name), [1, 1]);
  core.setLoad(ids[2], 1, 0); // 1 is not < l=1: still overloaded
  assert.ok(core.dest(ids[2]).overloaded);
  assert.equal(name(pick(core, svc, 9)), 1);
  core.setLoad(ids[2], 0, 0); // below l: clears
  assert.equal(name(pick(core, svc, 9)), 3);
  core.editDest(svc, { addr: "10.1.0.1", port: 80, weight: 0 });
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 0 });
  assert.equal(pick(core, svc, 9), -1); // all weight 0
});

test("wlc: weight 0 never chosen even idle; delete and re-add mid-sequence (re-added goes to the head)", async () => {
  const { core, svc, ids, name } = await abc("wlc");
  assert.equal(run(core, svc, 6, "inactive", name), [3, 2, 1, 1, 2, 3]);
  core.editDest(svc, { addr: "10.1.0.2", port: 80, weight: 0 }); // B quiesced with 2 conns
  // A: 2/4, C: 2/2 -> A, A(3/4), then C(2/2) vs A(4/4): tie, C is earlier in the list
  assert.equal(run(core, svc, 3, "inactive", name), [1, 1, 3]);
  core.setLoad(ids[1], 0, 0); // idle, still weight 0: never
  assert.equal(run(core, svc, 2, "inactive", name), [1, 1]); // A 4/4 < C 3/2; then A 5/4 < C 3/2
  // delete C, re-add it with weight 2: new, idle, at the head
  core.deleteDest(svc, "10.1.0.3", 80);
  assert.equal(name(pick(core, svc, 50)), 1);
  const c2 = core.addDest(svc, { addr: "10.1.0.3", port: 80, weight: 2 });
  const list = core.service(svc).dests.map((d) => d.addr);
  assert.equal(list, ["10.1.0.3", "10.1.0.2", "10.1.0.1"]);
  const nm = (id: number) => (id === c2 ? 3 : name(id));
  assert.equal(nm(pick(core, svc, 51)), 3);
  // re-add B after deleting it: it is the newest now, and with equal load per weight it wins ties
  core.deleteDest(svc, "10.1.0.2", 80);
  const b2 = core.addDest(svc, { addr: "10.1.0.2", port: 80, weight: 4 });
  core.setLoad(b2, 0, 6); // A has 6 inactive at weight 4: tie
  core.setLoad(ids[0], 0, 6);
  core.setLoad(c2, 0, 100);
  assert.equal(pick(core, svc, 52), b2);
});

test("wlc: overloaded destinations are skipped; the upper threshold counts active + inactive", async () => {
  const { core, svc, ids, name } = await abc("wlc");
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 2, upperThreshold: 2 });
  // the kernel's sequence until C's second connection overloads it (step 6); at step 10 the kernel would
  // pick C (C 2/2 = A 4/4, C earlier) but it is skipped, so B 3/3 ties A 4/4 and B is earlier
  assert.equal(run(core, svc, 10, "inactive", name), [3, 2, 1, 1, 2, 3, 1, 2, 1, 2]);
  assert.ok(core.dest(ids[2]).overloaded);
  core.editDest(svc, { addr: "10.1.0.3", port: 80, weight: 2, upperThreshold: 3 }); // raised: cleared
  assert.ok(!core.dest(ids[2]).overloaded);
});

test("nq: the first idle destination in list order wins regardless of weight", async () => {
  const { core, svc, ids, name } = await abc("nq", [100, 1, 1]); // list C(1) B(1) A(100)
  core.setLoad(ids[2], 1, 0); // C busy
  assert.equal(name(pick(core, svc, 1)), 2); // B and A idle: B is earlier, weight aside
  core.setLoad(ids[1], 1, 5); // B busy (inactive does not matter)
  assert.equal(name(pick(core, svc, 2)), 1); // A idle
  core.setLoad(ids[0], 1, 0); // all busy: sed, A 2/100
  assert.equal(name(pick(core, svc, 3)), 1);
  core.setLoad(ids[1], 0, 50); // B idle again (inactive only)
  assert.equal(name(pick(core, svc, 4)), 2);
  core.editDest(svc, { addr: "10.1.0.2", port: 80, weight: 0 }); // weight 0 is skipped even idle
  assert.equal(name(pick(core, svc, 5)), 1);
});

test("sed: ties go to the earlier destination; weight 0 never", async () => {
  const { core, svc, name } = await abc("sed", [2, 1, 0]); // list C(0) B(1) A(2)
  // A 1/2 < B 1/1 -> A; A 2/2 = B 1/1 -> B (earlier); then A 2/2 < B 2/1 -> A
  assert.equal(run(core, svc, 3, "active", name), [1, 2, 1]);
  assert.equal(name(pick(core, svc, 9)), 1); // B 2/1 > A 3/2: A; C (idle, weight 0) never
});

test("twos: one eligible destination always; none gives no destination", async () => {
  const { core, svc, ids, name } = await abc("twos", [0, 5, 0]);
  core.seedRandom(7);
  assert.equal(run(core, svc, 20, "active", name), Array(20).fill(2));
  core.editDest(svc, { addr: "10.1.0.2", port: 80, weight: 5, upperThreshold: 1 });
  core.setLoad(ids[1], 1, 0);
  assert.equal(pick(core, svc, 1), -1);
});

// ---- (2) property test: the indexed schedulers equal the kernel's plain scans ----------------------------
// A mirror of each destination as the kernel sees it, in list order (index 0 = newest).
interface M {
  id: number;
  addr: string;
  weight: number;
  u: number;
  l: number;
  active: number;
  inactive: number;
  ol: boolean;
}

// C int views of the kernel's loads (the kernel builds with -fno-strict-overflow: int arithmetic wraps)
const overhead = (d: M) => ((d.active << 8) + (d.inactive | 0)) | 0; // ip_vs_dest_conn_overhead()
const delay = (d: M) => ((d.active | 0) + 1) | 0; // sed / nq: activeconns + 1

function scanLc(list: M[]): M | null {
  let least: M | null = null,
    loh = 0;
  for (const d of list) {
    if (d.ol || d.weight === 0) continue;
    const doh = overhead(d) >>> 0; // unsigned int in ip_vs_lc.c
    if (!least || doh < loh) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

function scanWeighted(list: M[], load: (d: M) => number): M | null {
  // ip_vs_wlc.c, ip_vs_sed.c
  let i = 0;
  while (i < list.length && (list[i].ol || list[i].weight <= 0)) i++;
  if (i === list.length) return null;
  let least = list[i],
    loh = load(least);
  for (i++; i < list.length; i++) {
    const d = list[i];
    if (d.ol) continue;
    const doh = load(d);
    if (loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    } // |products| < 2^47: exact
  }
  return least;
}

function scanNq(list: M[]): M | null {
  let least: M | null = null,
    loh = 0;
  for (const d of list) {
    if (d.ol || d.weight === 0) continue;
    const doh = delay(d);
    if ((d.active | 0) === 0) return d;
    if (!least || loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

function scanFo(list: M[]): M | null {
  let h: M | null = null,
    hw = 0;
  for (const d of list)
    if (!d.ol && d.weight > hw) {
      h = d;
      hw = d.weight;
    }
  return h;
}

function scanOvf(list: M[]): M | null {
  let h: M | null = null,
    hw = 0;
  for (const d of list) {
    const w = d.weight;
    if (d.ol || (d.active | 0) > w || w === 0) continue;
    if (!h || w > hw) {
      h = d;
      hw = w;
    }
  }
  return h;
}

// assembly/sched/random.ts in TypeScript: splitmix64's upper 32 bits, the kernel's multiply-shift rejection
const M64 = (1n << 64n) - 1n;
class SplitMix {
  constructor(private s: bigint) {
    this.s &= M64;
  }
  u32(): number {
    this.s = (this.s + 0x9e3779b97f4a7c15n) & M64;
    let z = this.s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    z ^= z >> 31n;
    return Number(z >> 32n);
  }
  below(ceil: number): number {
    if (ceil <= 1) return 0;
    const c = BigInt(ceil);
    let mult = c * BigInt(this.u32());
    if (Number(mult & 0xffffffffn) < ceil) {
      const bound = (2 ** 32 - ceil) % ceil;
      while (Number(mult & 0xffffffffn) < bound) mult = c * BigInt(this.u32());
    }
    return Number(mult >> 32n);
  }
}

function scanTwos(list: M[], rng: SplitMix): M | null {
  // ip_vs_twos.c
  let total = 0,
    any = false;
  for (const d of list)
    if (!d.ol && d.weight > 0) {
      total += d.weight;
      any = true;
    }
  if (!any) return null;
  let r1 = rng.below(total + 1),
    r2 = rng.below(total + 1);
  let c1: M | null = null,
    c2: M | null = null;
  for (const d of list) {
    if (d.ol || d.weight <= 0) continue;
    r1 -= d.weight;
    r2 -= d.weight;
    if (r1 <= 0 && !c1) c1 = d;
    if (r2 <= 0 && !c2) c2 = d;
    if (c1 && c2) break;
  }
  const a = c1!,
    b = c2!;
  if (Math.imul(b.weight, overhead(a)) > Math.imul(a.weight, overhead(b))) return b; // int products
  return a;
}

// a tiny seeded PRNG for the histories themselves
function mulberry(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// the kernel's ip_vs_dest_update_overload (as Linux in the VM behaves), in the data plane's u32 arithmetic:
// set at or above u, cleared below l (0: u less a quarter), kept in between
function updateOverload(d: M): void {
  if (d.u !== 0) {
    const total = (d.active + d.inactive) >>> 0;
    if (total >= d.u) {
      d.ol = true;
      return;
    }
    if (total >= (d.l !== 0 ? d.l : d.u - (d.u >>> 2))) return;
  }
  d.ol = false;
}

// destSetLoad: new counters, then the same rule
function applyLoad(d: M, active: number, inactive: number): void {
  d.active = active >>> 0;
  d.inactive = inactive >>> 0;
  updateOverload(d);
}

interface Stats {
  steps: number;
  chosen: number;
  none: number;
}

// One random history of a service under `sched`: the data plane and a mirror of the kernel's list of
// destinations, changed step by step. The draws come from one seeded generator, in a fixed order.
class History {
  readonly svc: number;
  readonly list: M[] = [];
  private readonly rnd: () => number;
  private readonly twosRng: SplitMix;
  private readonly deleted: M[] = [];
  private nextAddr = 1;

  constructor(
    private readonly core: Core,
    private readonly sched: string,
    seed: number,
    private readonly maxDests: number,
  ) {
    this.rnd = mulberry(seed);
    this.svc = core.addService({ proto: "tcp", addr: VIP, port: 80, scheduler: sched });
    this.twosRng = new SplitMix(BigInt(seed) * 7919n + 1n);
    core.seedRandom(BigInt(seed) * 7919n + 1n);
  }

  private int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  // weights: many small ones (ties), some zeros, now and then a large one
  private weight(): number {
    const r = this.rnd();
    return r < 0.15 ? 0 : r < 0.85 ? 1 + this.int(4) : r < 0.97 ? 1 + this.int(100) : 1 + this.int(65535);
  }
  private thresholds(): [number, number] {
    if (this.rnd() < 0.6) return [0, 0];
    const u = 1 + this.int(12);
    return [u, this.rnd() < 0.5 ? 0 : this.int(u + 1)];
  }
  // connection counts; rarely one past a C int
  private count(): number {
    const r = this.rnd();
    return r < 0.9 ? this.int(8) : r < 0.98 ? this.int(3000) : this.int(2 ** 32);
  }

  private add(addr: string, old?: M): void {
    const w = this.weight(),
      [u, l] = this.thresholds();
    const id = this.core.addDest(this.svc, { addr, port: 80, weight: w, upperThreshold: u, lowerThreshold: l });
    if (old) {
      // the kernel's trash revives the deleted destination itself, counters and all
      assert.is(id, old.id);
      // and __ip_vs_update_dest re-evaluates OVERLOAD when the thresholds differ from what it had
      if (u !== old.u || l !== old.l) {
        old.u = u;
        old.l = l;
        updateOverload(old);
      }
      old.weight = w;
      this.list.unshift(old);
    } else this.list.unshift({ id, addr, weight: w, u, l, active: 0, inactive: 0, ol: false });
  }

  // The kernel's own linear scan over the mirror.
  kernelChoice(): M | null {
    const list = this.list;
    switch (this.sched) {
      case "lc":
        return scanLc(list);
      case "wlc":
        return scanWeighted(list, overhead);
      case "sed":
        return scanWeighted(list, delay);
      case "nq":
        return scanNq(list);
      case "fo":
        return scanFo(list);
      case "ovf":
        return scanOvf(list);
      case "twos":
        return scanTwos(list, this.twosRng);
    }
    throw new Error(this.sched);
  }

  // One random change to the destinations (or none, before a plain new connection); returns what it was.
  change(): string {
    const { core, svc, list } = this;
    const r = this.rnd();
    if (list.length === 0 || (r < 0.12 && list.length < this.maxDests)) return this.grow();
    if (r < 0.2) {
      const i = this.int(list.length),
        d = list[i];
      core.deleteDest(svc, d.addr, 80);
      list.splice(i, 1);
      this.deleted.push(d);
      return "delete";
    }
    if (r < 0.32) {
      const d = list[this.int(list.length)];
      const w = this.rnd() < 0.5 ? this.weight() : d.weight;
      const [u, l] = this.rnd() < 0.5 ? this.thresholds() : [d.u, d.l];
      core.editDest(svc, { addr: d.addr, port: 80, weight: w, upperThreshold: u, lowerThreshold: l });
      // __ip_vs_update_dest: a threshold change re-evaluates OVERLOAD; the same thresholds leave it alone
      if (u !== d.u || l !== d.l) {
        d.u = u;
        d.l = l;
        updateOverload(d);
      }
      d.weight = w;
      return "edit";
    }
    if (r < 0.5) {
      const d = list[this.int(list.length)];
      const a = this.count(),
        i = this.count();
      core.setLoad(d.id, a, i);
      applyLoad(d, a, i);
      return "load";
    }
    if (r < 0.51) {
      // init() on a service that has destinations
      core.editService(svc, { proto: "tcp", addr: VIP, port: 80, scheduler: "rr" });
      core.editService(svc, { proto: "tcp", addr: VIP, port: 80, scheduler: this.sched });
      return "switch";
    }
    return "conn"; // a new connection, then counted on its destination
  }

  // a destination added: a deleted one again (the kernel's trash), or a new address
  private grow(): string {
    if (this.list.length >= this.maxDests) return "none";
    if (this.deleted.length > 0 && this.rnd() < 0.4) {
      const old = this.deleted.splice(this.int(this.deleted.length), 1)[0];
      this.add(old.addr, old);
      return "re-add";
    }
    const k = this.nextAddr++;
    this.add(`10.${1 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`);
    return "add";
  }

  // a new connection on the chosen destination: active or inactive, as its first packets leave it
  countConnection(d: M): void {
    const a = this.rnd() < 0.5;
    const na = d.active + (a ? 1 : 0),
      ni = d.inactive + (a ? 0 : 1);
    this.core.setLoad(d.id, na, ni);
    applyLoad(d, na, ni);
  }

  // the mirror is what the data plane holds
  compareMirror(step: number): void {
    const real = this.core.service(this.svc).dests,
      list = this.list;
    assert.equal(
      real.map((d) => d.id),
      list.map((d) => d.id),
      `list order at step ${step}`,
    );
    for (let i = 0; i < real.length; i++) {
      const x = real[i],
        m = list[i];
      assert.equal(
        [x.weight, x.activeConns, x.inactConns, x.overloaded],
        [m.weight, m.active, m.inactive, m.ol],
        `dest ${m.id} at step ${step}`,
      );
    }
  }
}

function history(core: Core, sched: string, seed: number, steps: number, maxDests: number, stats: Stats): void {
  const h = new History(core, sched, seed, maxDests);
  for (let step = 0; step < steps; step++) {
    const what = h.change();
    const want = h.kernelChoice();
    const got = pick(core, h.svc, 1000 + (step & 0xffff));
    if (got !== (want ? want.id : -1)) {
      assert.unreachable(
        `${sched} seed ${seed} step ${step} (${what}, ${h.list.length} dests): got ${got}, ` +
          `the kernel's scan ${want ? want.id : -1}; list ${JSON.stringify(h.list.slice(0, 12))}`,
      );
    }
    stats.steps++;
    if (want) {
      stats.chosen++;
      if (what === "conn") h.countConnection(want);
    } else stats.none++;
    if (step % 97 === 0) h.compareMirror(step);
  }
  core.deleteService(h.svc);
}

const SIZES = [1, 2, 3, 8, 40, 300];
for (const sched of ["lc", "wlc", "sed", "nq", "fo", "ovf", "twos"]) {
  test(`${sched}: O(log n) choice equals the kernel's scan over random histories`, async () => {
    const core = await Core.load();
    const stats: Stats = { steps: 0, chosen: 0, none: 0 };
    let seed = 1000 * (1 + ["lc", "wlc", "sed", "nq", "fo", "ovf", "twos"].indexOf(sched));
    for (const maxDests of SIZES) {
      for (let k = 0; k < 3; k++) history(core, sched, seed++, maxDests >= 40 ? 6000 : 2000, maxDests, stats);
    }
    assert.ok(stats.chosen > stats.steps / 2, `mostly chose something (${JSON.stringify(stats)})`);
    assert.ok(stats.none > 0, `sometimes nothing (${JSON.stringify(stats)})`);
  });
}

test("the checked (debug) build agrees too", async () => {
  const core = await Core.load({ debug: true });
  const stats: Stats = { steps: 0, chosen: 0, none: 0 };
  for (const sched of ["lc", "wlc", "sed", "nq", "fo", "ovf", "twos"]) history(core, sched, 77, 1500, 60, stats);
});

test.run();
