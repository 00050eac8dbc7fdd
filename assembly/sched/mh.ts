// mh: Maglev hashing (ip_vs_mh.c). A lookup table of M slots (M prime, primes[mhTableIndex - 8]) is
// populated from per-destination permutations (offset, skip) of two fixed-key hsiphash values, each
// destination claiming `turns` slots per round where turns comes from last_weight (not weight: a quiesced
// destination keeps its slots). Rebuilt after every add, delete and update; lookups allocate nothing.
// mh-port (SCHED2) adds the client port to the hash; mh-fallback (SCHED1) re-hashes with offsets
// ih, ih+1, ... when the chosen destination is unusable.
import { SVC_F_SCHED1, SVC_F_SCHED2 } from "../common";
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { settings } from "../settings";
import { hsiphash1u32 } from "../hash/siphash";
import { Scheduler } from "./scheduler";
import { unusable, hashPort } from "./sh";
import {
  traceOn,
  traceRec,
  tw,
  W_HKEY,
  W_HPORT,
  W_BUCKET,
  W_TSIZE,
  W_BDEST,
  W_PROBES,
  W_FALLBACK,
  W_REJECT,
  W_MEMBER,
  W_PATHLEN,
  W_PATH,
  PATH_MAX,
  REJ_NONE,
  REJ_EMPTY,
  REJ_WEIGHT0,
  REJ_OVERLOADED,
  Q_TABLE_SIZE,
  Q_SLOT_DEST,
  Q_MH_MEMBERS,
  Q_MH_MEMBER,
  Q_MH_OFFSET,
  Q_MH_SKIP,
  Q_MH_TURNS,
  Q_SLOT_MEMBER,
} from "../trace";

export const SVC_F_SCHED_MH_FALLBACK: u32 = SVC_F_SCHED1;
export const SVC_F_SCHED_MH_PORT: u32 = SVC_F_SCHED2;

// traceQuery codes of the table's population (the teaching page animates it; src/ui/sched-state.ts reads
// them): Q_MH_FILL runs the population of the current table again, noting each claim, and returns how many
// (M, or 0 for an empty table); claim k (0-based, in the order the kernel makes them) is read with the others.
export const Q_MH_FILL: i32 = 50;
export const Q_MH_FILL_SLOT: i32 = 51; // the slot claim k took
export const Q_MH_FILL_MEMBER: i32 = 52; // the member (index into the table's destination list) that claimed it
export const Q_MH_FILL_PASSED: i32 = 53; // taken slots its permutation passed over first

export const MH_PRIMES: StaticArray<i32> = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

// the two fixed hsiphash keys (both words of each key equal; 64-bit key words on x86_64)
const KEY1: u64 = 2654435761;
const KEY2: u64 = 2654446892;

// hsiphash of the u32 (offset + port + addr) in host order
@inline function mhHash(fold: u32, port: u32, key: u64, offset: u32): u32 {
  return hsiphash1u32(offset + port + fold, key, key);
}

function gcd(a: i32, b: i32): i32 {
  while (b != 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

export function mhTableSize(index: i32): i32 {
  return index >= 8 && index <= 17 ? unchecked(MH_PRIMES[index - 8]) : 4093;
}

export class MaglevHashing extends Scheduler {
  size: i32 = 0; // M
  slots: StaticArray<i32> = new StaticArray<i32>(0); // index into members, -1 = empty
  private taken: StaticArray<u32> = new StaticArray<u32>(0); // population bitmap
  members: Array<Dest> = new Array<Dest>(); // the destination list when the table was built
  gcd: i32 = 0;
  rshift: i32 = 0;
  // per-destination setup, reused across rebuilds (the kernel's ip_vs_mh_dest_setup)
  private perm: StaticArray<i32> = new StaticArray<i32>(0);
  private skip: StaticArray<i32> = new StaticArray<i32>(0);
  private turns: StaticArray<i32> = new StaticArray<i32>(0);
  // the last rebuild's result: 0, or -1 when it was refused (more destinations than slots)
  lastError: i32 = 0;

  init(svc: Service): void {
    this.rebuild(svc);
  }
  done(svc: Service): void {
    this.slots = new StaticArray<i32>(0);
    this.size = 0;
    this.members = new Array<Dest>();
  }
  addDest(svc: Service, d: Dest): void {
    this.rebuild(svc);
  }
  delDest(svc: Service, d: Dest): void {
    this.rebuild(svc);
  }
  updDest(svc: Service, d: Dest): void {
    this.rebuild(svc);
  }

  // ip_vs_mh_dest_changed: gcd and shift of the last weights, then permutation and population
  rebuild(svc: Service): void {
    const M = mhTableSize(settings.mhTableIndex);
    const ds = svc.dests;
    const n = ds.length;
    // the kernel refuses (EINVAL) and keeps the old table
    if (n > M) {
      this.lastError = -1;
      return;
    }
    this.lastError = 0;
    if (M != this.size) {
      this.size = M;
      this.slots = new StaticArray<i32>(M);
      this.taken = new StaticArray<u32>((M + 31) >>> 5);
    }
    const slots = this.slots;
    let g = 0,
      maxw = 0;
    for (let i = 0; i < n; i++) {
      const w = unchecked(ds[i]).lastWeight;
      if (w > 0) g = g > 0 ? gcd(w, g) : w;
      if (w > maxw) maxw = w;
    }
    this.gcd = g;
    this.members = ds.slice(0);
    if (g < 1) {
      // no destination, or all last weights zero: an empty table
      this.rshift = 0;
      for (let i = 0; i < M; i++) unchecked((slots[i] = -1));
      return;
    }
    const tabBits = settings.mhTableIndex / 2;
    const shift = 32 - <i32>clz<u32>(<u32>(maxw / g)) - tabBits;
    const rshift = shift > 0 ? shift : 0;
    this.rshift = rshift;

    if (this.perm.length < n) {
      let cap = this.perm.length > 0 ? this.perm.length : 16;
      while (cap < n) cap <<= 1;
      this.perm = new StaticArray<i32>(cap);
      this.skip = new StaticArray<i32>(cap);
      this.turns = new StaticArray<i32>(cap);
    }
    const perm = this.perm,
      skip = this.skip,
      turns = this.turns;
    const um = <u32>M;
    for (let i = 0; i < n; i++) {
      const d = unchecked(ds[i]);
      const fold = d.addrFold();
      const port = d.port & 0xffff;
      unchecked((perm[i] = <i32>(mhHash(fold, port, KEY1, 0) % um)));
      unchecked((skip[i] = <i32>((mhHash(fold, port, KEY2, 0) % (um - 1)) + 1)));
      const lw = d.lastWeight;
      const t = (lw / g) >> rshift;
      unchecked((turns[i] = t != 0 ? t : lw != 0 ? 1 : 0));
    }
    populate(slots, this.taken, M, perm, skip, turns, n, null);
  }

  // claims of the last population, noted by fillOrder(): slot, member, taken slots passed over (3 per claim)
  private fill: StaticArray<i32> = new StaticArray<i32>(0);
  private fillCount: i32 = 0;

  // The current table's population once more, into scratch arrays, noting every claim in order.
  private fillOrder(): i32 {
    const M = this.size,
      ms = this.members,
      n = ms.length;
    this.fillCount = 0;
    if (M == 0 || this.gcd < 1) return 0;
    const perm = new StaticArray<i32>(n),
      skip = new StaticArray<i32>(n),
      turns = new StaticArray<i32>(n);
    for (let i = 0; i < n; i++) {
      const d = unchecked(ms[i]);
      perm[i] = this.offsetOf(d);
      skip[i] = this.skipOf(d);
      turns[i] = this.turnsOf(d);
    }
    if (this.fill.length != 3 * M) this.fill = new StaticArray<i32>(3 * M);
    populate(new StaticArray<i32>(M), new StaticArray<u32>((M + 31) >>> 5), M, perm, skip, turns, n, this.fill);
    this.fillCount = M;
    return M;
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const M = <u32>this.size;
    if (M == 0) {
      if (traceOn) traceRec(svc.schedId, svc.id, -1);
      return null;
    }
    const slots = this.slots;
    const fold = p.srcFold();
    const port = hashPort(svc, p, SVC_F_SCHED_MH_PORT);
    const ih = mhHash(fold, port, KEY1, 0) % M;
    let at = unchecked(slots[<i32>ih]);
    if (at < 0) {
      if (traceOn) this.trace(svc, fold, port, ih, 0, null);
      return null;
    }
    let d = unchecked(this.members[at]);
    if (!unusable(d)) {
      if (traceOn) this.trace(svc, fold, port, ih, 0, d);
      return d;
    }
    if ((svc.flags & SVC_F_SCHED_MH_FALLBACK) == 0) {
      if (traceOn) this.trace(svc, fold, port, ih, 0, null);
      return null;
    }
    // re-hash with offsets ih, ih+1, ... (mod M) until a usable destination or an empty slot
    let k: u32 = 0;
    for (; k < M; k++) {
      const roffset = (k + ih) % M;
      at = unchecked(slots[<i32>(mhHash(fold, port, KEY1, roffset) % M)]);
      if (at < 0) {
        k++;
        break;
      }
      d = unchecked(this.members[at]);
      if (!unusable(d)) {
        if (traceOn) this.trace(svc, fold, port, ih, k + 1, d);
        return d;
      }
    }
    if (traceOn) this.trace(svc, fold, port, ih, k, null);
    return null;
  }

  // Tracing: the first slot, the member whose permutation filled it, and the fallback's probe path.
  private trace(svc: Service, fold: u32, port: u32, ih: u32, probes: u32, d: Dest | null): void {
    const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
    const M = <u32>this.size;
    const at = unchecked(this.slots[<i32>ih]);
    const first = at >= 0 ? unchecked(this.members[at]) : null;
    tw(r, W_HKEY, <i32>fold);
    tw(r, W_HPORT, <i32>port);
    tw(r, W_BUCKET, <i32>ih);
    tw(r, W_TSIZE, <i32>M);
    tw(r, W_BDEST, first ? first.id : -1);
    tw(r, W_MEMBER, at);
    tw(r, W_PROBES, <i32>probes);
    tw(r, W_FALLBACK, (svc.flags & SVC_F_SCHED_MH_FALLBACK) != 0 ? 1 : 0);
    tw(
      r,
      W_REJECT,
      !first ? REJ_EMPTY : first.weight <= 0 ? REJ_WEIGHT0 : first.overloaded() ? REJ_OVERLOADED : REJ_NONE,
    );
    const n = probes < <u32>PATH_MAX ? <i32>probes : PATH_MAX;
    tw(r, W_PATHLEN, n);
    for (let k = 0; k < n; k++) {
      const sl = <i32>(mhHash(fold, port, KEY1, (<u32>k + ih) % M) % M);
      const a = unchecked(this.slots[sl]);
      tw(r, W_PATH + 2 * k, sl);
      tw(r, W_PATH + 2 * k + 1, a >= 0 ? unchecked(this.members[a]).id : -1);
    }
  }

  traceQuery(svc: Service, q: i32, i: i32): i32 {
    if (q == Q_TABLE_SIZE) return this.tableSize();
    if (q == Q_SLOT_DEST) return this.slotDest(i);
    if (q == Q_SLOT_MEMBER) return i >= 0 && i < this.size ? unchecked(this.slots[i]) : -1;
    if (q == Q_MH_FILL) return this.fillOrder();
    if (q == Q_MH_FILL_SLOT || q == Q_MH_FILL_MEMBER || q == Q_MH_FILL_PASSED) {
      return i >= 0 && i < this.fillCount ? unchecked(this.fill[3 * i + q - Q_MH_FILL_SLOT]) : -1;
    }
    const ms = this.members;
    if (q == Q_MH_MEMBERS) return ms.length;
    if (i < 0 || i >= ms.length) return -1;
    const d = unchecked(ms[i]);
    if (q == Q_MH_MEMBER) return d.id;
    if (q == Q_MH_OFFSET) return this.offsetOf(d);
    if (q == Q_MH_SKIP) return this.skipOf(d);
    if (q == Q_MH_TURNS) return this.turnsOf(d);
    return -1;
  }

  // a member's permutation as ip_vs_mh_dest_setup derived it (populate() consumes its copy)
  private offsetOf(d: Dest): i32 {
    return <i32>(mhHash(d.addrFold(), d.port & 0xffff, KEY1, 0) % <u32>this.size);
  }
  private skipOf(d: Dest): i32 {
    return <i32>((mhHash(d.addrFold(), d.port & 0xffff, KEY2, 0) % (<u32>this.size - 1)) + 1);
  }
  private turnsOf(d: Dest): i32 {
    if (this.gcd < 1) return 0;
    const lw = d.lastWeight;
    const t = (lw / this.gcd) >> this.rshift;
    return t != 0 ? t : lw != 0 ? 1 : 0;
  }

  // debugging / tests: M and the destination id in slot i (-1 when empty)
  tableSize(): i32 {
    return this.size;
  }
  slotDest(i: i32): i32 {
    if (i < 0 || i >= this.size) return -1;
    const at = unchecked(this.slots[i]);
    return at < 0 ? -1 : unchecked(this.members[at]).id;
  }
}

// ip_vs_mh_populate: round after round, each destination (list order) with turns >= 1 claims `turns`
// slots, each at the next free position of its permutation offset, offset+skip, ... (mod M), until all
// M slots are taken. Which slots are taken is tracked in a bitmap (M / 8 bytes: stays in L1 while the
// probes jump around the table), as the kernel does.
// order (tracing only): each claim's slot, member and the taken slots passed over before it, in turn.
function populate(
  slots: StaticArray<i32>,
  taken: StaticArray<u32>,
  M: i32,
  perm: StaticArray<i32>,
  skip: StaticArray<i32>,
  turns: StaticArray<i32>,
  n: i32,
  order: StaticArray<i32> | null,
): void {
  const sb = changetype<usize>(slots);
  const tb = changetype<usize>(taken);
  for (let i = 0, w = taken.length; i < w; i++) unchecked((taken[i] = 0));
  let filled = 0;
  while (true) {
    for (let i = 0; i < n; i++) {
      const t = unchecked(turns[i]);
      if (t < 1) continue;
      let c = unchecked(perm[i]);
      const sk = unchecked(skip[i]);
      for (let r = 0; r < t; r++) {
        let word = load<u32>(tb + ((<usize>(c >>> 5)) << 2));
        let bit: u32 = 1 << (c & 31);
        let passed = 0;
        while ((word & bit) != 0) {
          c += sk;
          if (c >= M) c -= M;
          word = load<u32>(tb + ((<usize>(c >>> 5)) << 2));
          bit = 1 << (c & 31);
          passed++;
        }
        store<u32>(tb + ((<usize>(c >>> 5)) << 2), word | bit);
        store<i32>(sb + ((<usize>c) << 2), i);
        if (order) {
          order[3 * filled] = c;
          order[3 * filled + 1] = i;
          order[3 * filled + 2] = passed;
        }
        if (++filled == M) return;
      }
      unchecked((perm[i] = c));
    }
  }
}
