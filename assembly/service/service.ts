// Virtual services and their destination lists (struct ip_vs_service), and the service table the
// packet path looks services up in. All changes validate first and change nothing on error.
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_SCTP,
  SVC_F_USER_MASK,
  SVC_F_PERSISTENT,
  DEST_F_AVAILABLE,
  FWD_MASQ,
  FWD_FULLNAT,
  FWD_TUNNEL,
  MAX_WEIGHT,
  OK,
  E_NO_SERVICE,
  E_SERVICE_EXISTS,
  E_NO_DEST,
  E_DEST_EXISTS,
  E_BAD_SCHEDULER,
  E_BAD_WEIGHT,
  E_BAD_THRESHOLD,
  E_BAD_AF,
  E_BAD_PROTOCOL,
  E_BAD_NETMASK,
  E_BAD_FLAGS,
  E_BAD_FWD,
  E_BAD_PORT,
  E_BAD_TIMEOUT,
} from "../common";
import { Dest, registerDest, releaseDest } from "../dest/dest";
import { Scheduler } from "../sched/scheduler";
import { createScheduler } from "../sched/registry";
import { RoundRobin } from "../sched/rr";
import { SCHEDULER_KINDS } from "../sched/list";

export const MIRROR_LONG: u8 = 3;

export class Service {
  // What a packet and a new connection read come first, together (round 7, docs/conn-table.md): the counters
  // a packet adds to, the lookup key and its chain link, the flags, the scheduler and the destinations; the
  // pre-pass (assembly/prefetch.ts) touches [0, SVC_HOT_END), two cache lines, and nothing else of it.
  conns: u64 = 0;
  inPkts: u64 = 0;
  inBytes: u64 = 0;
  af: i32 = AF_INET;
  proto: i32 = IPPROTO_TCP; // 0 for fwmark services
  a0: u32 = 0;
  a1: u32 = 0;
  a2: u32 = 0;
  a3: u32 = 0;
  port: u32 = 0;
  fwmark: u32 = 0;
  flags: u32 = 0;
  loadHook: bool = false; // sched.hasLoadHook(): whether a connection's load change is the scheduler's business
  schedInline: bool = false; // rr: the table calls rrSchedule, which keeps its cursor in schedWord
  // The destination list mirrored here while it is short (round 9): 0-2 its length, dest0 and dest1 its first two
  // entries; MIRROR_LONG when longer (read `dests`). A new connection to an rr Service of two destinations then
  // reads no Array and no backing buffer, two lines and two dependent loads fewer. syncDests() keeps it.
  nMirror: u8 = 0;
  schedWord: i32 = -1; // one word of the scheduler's state in this line (rr's cursor)
  sched: Scheduler | null = null;
  dest0: Dest | null = null;
  dest1: Dest | null = null;
  // a lookup reads the next Service in its bucket only where the first does not match
  hashNext: Service | null = null;
  dests: Array<Dest> = new Array<Dest>(); // the kernel's list order: newest first
  // replies, then what only the control plane reads
  outPkts: u64 = 0;
  outBytes: u64 = 0;
  id: i32 = -1;
  timeout: u32 = 0; // persistence timeout, seconds
  netmask: u32 = 0xffffffff; // IPv4: host-order mask; IPv6: prefix length
  schedId: i32 = -1;
  trash: Array<Dest> = new Array<Dest>(); // deleted but still referenced by connections
  nextSeq: u32 = 0;
  unlinkedAt: i32 = -1; // where the destination being deleted stood in dests (for delDest hooks)

  // Called after every change of `dests` (or of what it holds): the mirror above follows it.
  syncDests(): void {
    const ds = this.dests;
    const n = ds.length;
    this.nMirror = n <= 2 ? <u8>n : MIRROR_LONG;
    this.dest0 = n > 0 ? unchecked(ds[0]) : null;
    this.dest1 = n > 1 ? unchecked(ds[1]) : null;
  }

  @inline addrFold(): u32 {
    return this.a0 ^ this.a1 ^ this.a2 ^ this.a3;
  }
  @inline isFwmark(): bool {
    return this.fwmark != 0;
  }
  @inline persistent(): bool {
    return (this.flags & SVC_F_PERSISTENT) != 0;
  }

  findDest(af: i32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): Dest | null {
    const ds = this.dests;
    for (let i = 0, n = ds.length; i < n; i++) {
      const d = unchecked(ds[i]);
      if (d.sameAddr(af, a0, a1, a2, a3, port)) return d;
    }
    return null;
  }

  indexOf(d: Dest): i32 {
    const ds = this.dests;
    for (let i = 0, n = ds.length; i < n; i++) if (unchecked(ds[i]) === d) return i;
    return -1;
  }
}

// ---- the service table -------------------------------------------------------------------------

const HASH_BITS: i32 = 16;
const buckets = new StaticArray<Service | null>(1 << HASH_BITS);
export const serviceById = new Array<Service | null>();
// The services whose scheduler has a timer (lblc, lblcr): the clock ticks these alone, not every service.
export const timedServices = new Array<Service>();
const freeServiceIds = new Array<i32>();
export let serviceCount: i32 = 0;

@inline function mix(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x7feb352d;
  h ^= h >>> 15;
  h *= 0x846ca68b;
  h ^= h >>> 16;
  return h;
}

@inline function keyHash(af: i32, proto: i32, fold: u32, port: u32, fwmark: u32): i32 {
  return <i32>(
    (mix(fold ^ (port << 16) ^ ((<u32>proto) << 8) ^ <u32>af ^ (fwmark * 0x9e3779b1)) & ((1 << HASH_BITS) - 1))
  );
}

export function lookupService(af: i32, proto: i32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): Service | null {
  let s = unchecked(buckets[keyHash(af, proto, a0 ^ a1 ^ a2 ^ a3, port, 0)]);
  while (s) {
    if (
      s.fwmark == 0 &&
      s.port == port &&
      s.a3 == a3 &&
      s.proto == proto &&
      s.af == af &&
      s.a2 == a2 &&
      s.a1 == a1 &&
      s.a0 == a0
    )
      return s;
    s = s.hashNext;
  }
  return null;
}

// Batch pre-pass helper (packet/exports.ts): the address of the bucket word a lookup starts from.
export function serviceBucketOf(af: i32, proto: i32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): usize {
  return changetype<usize>(buckets) + ((<usize>keyHash(af, proto, a0 ^ a1 ^ a2 ^ a3, port, 0)) << 2);
}

export function lookupFwmark(af: i32, fwmark: u32): Service | null {
  let s = unchecked(buckets[keyHash(af, 0, 0, 0, fwmark)]);
  while (s) {
    if (s.fwmark == fwmark && s.af == af) return s;
    s = s.hashNext;
  }
  return null;
}

function hashService(s: Service): void {
  const h = keyHash(s.af, s.proto, s.addrFold(), s.port, s.fwmark);
  s.hashNext = unchecked(buckets[h]);
  unchecked((buckets[h] = s));
}

function unhashService(s: Service): void {
  const h = keyHash(s.af, s.proto, s.addrFold(), s.port, s.fwmark);
  let p = unchecked(buckets[h]);
  if (p === s) {
    unchecked((buckets[h] = s.hashNext));
    s.hashNext = null;
    return;
  }
  while (p) {
    if (p.hashNext === s) {
      p.hashNext = s.hashNext;
      s.hashNext = null;
      return;
    }
    p = p.hashNext;
  }
}

export function getService(id: i32): Service | null {
  if (id < 0 || id >= serviceById.length) return null;
  return unchecked(serviceById[id]);
}

function validNetmask(af: i32, netmask: u32): bool {
  if (af == AF_INET6) return netmask >= 1 && netmask <= 128;
  // a contiguous IPv4 mask
  const inv = ~netmask;
  return (inv & (inv + 1)) == 0;
}

function checkServiceParams(af: i32, proto: i32, fwmark: u32, schedId: i32, flags: u32, netmask: u32): i32 {
  if (af != AF_INET && af != AF_INET6) return E_BAD_AF;
  if (fwmark == 0 && proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP) return E_BAD_PROTOCOL;
  if (schedId < 0 || schedId >= SCHEDULER_KINDS.length) return E_BAD_SCHEDULER;
  if ((flags & ~SVC_F_USER_MASK) != 0) return E_BAD_FLAGS;
  if (!validNetmask(af, netmask)) return E_BAD_NETMASK;
  return OK;
}

// Returns the new service's id, or a negative error.
export function addService(
  af: i32,
  proto: i32,
  a0: u32,
  a1: u32,
  a2: u32,
  a3: u32,
  port: u32,
  fwmark: u32,
  schedId: i32,
  flags: u32,
  timeout: u32,
  netmask: u32,
): i32 {
  const err = checkServiceParams(af, proto, fwmark, schedId, flags, netmask);
  if (err != OK) return err;
  if (fwmark == 0 && port > 65535) return E_BAD_PORT;
  if (fwmark != 0) {
    if (lookupFwmark(af, fwmark)) return E_SERVICE_EXISTS;
  } else if (lookupService(af, proto, a0, a1, a2, a3, port)) return E_SERVICE_EXISTS;

  const s = new Service();
  s.af = af;
  if (fwmark != 0) {
    s.fwmark = fwmark;
    s.proto = 0;
  } else {
    s.proto = proto;
    s.a0 = a0;
    s.a1 = a1;
    s.a2 = a2;
    s.a3 = a3;
    s.port = port;
  }
  s.flags = flags;
  s.timeout = timeout;
  s.netmask = netmask;
  s.schedId = schedId;
  if (freeServiceIds.length > 0) {
    s.id = freeServiceIds.pop();
    unchecked((serviceById[s.id] = s));
  } else {
    s.id = serviceById.length;
    serviceById.push(s);
  }
  const sched = createScheduler(schedId);
  s.sched = sched;
  s.loadHook = sched != null && sched.hasLoadHook();
  s.schedInline = sched instanceof RoundRobin;
  if (sched) {
    sched.init(s);
    if (sched.hasTimer()) timedServices.push(s);
  }
  hashService(s);
  serviceCount++;
  return s.id;
}

function untime(s: Service): void {
  const at = timedServices.indexOf(s);
  if (at >= 0) timedServices.splice(at, 1);
}

// Edit scheduler, flags, timeout, netmask. The same scheduler keeps its state (as the kernel does).
export function editService(id: i32, schedId: i32, flags: u32, timeout: u32, netmask: u32): i32 {
  const s = getService(id);
  if (!s) return E_NO_SERVICE;
  const err = checkServiceParams(s.af, s.proto, s.fwmark, schedId, flags, netmask);
  if (err != OK) return err;
  if (schedId != s.schedId) {
    const old = s.sched;
    if (old) old.done(s);
    untime(s);
    s.schedId = schedId;
    s.flags = flags;
    s.timeout = timeout;
    s.netmask = netmask;
    const sched = createScheduler(schedId);
    s.sched = sched;
    s.loadHook = sched != null && sched.hasLoadHook();
    s.schedInline = sched instanceof RoundRobin;
    if (sched) {
      sched.init(s);
      if (sched.hasTimer()) timedServices.push(s);
    }
  } else {
    s.flags = flags;
    s.timeout = timeout;
    s.netmask = netmask;
  }
  return OK;
}

export function delService(id: i32): i32 {
  const s = getService(id);
  if (!s) return E_NO_SERVICE;
  const sched = s.sched;
  if (sched) sched.done(s);
  untime(s);
  s.sched = null;
  s.loadHook = false;
  s.schedInline = false;
  // every destination is unlinked; those still referenced by connections stay in the registry
  const ds = s.dests;
  for (let i = 0, n = ds.length; i < n; i++) retireDest(unchecked(ds[i]));
  for (let i = 0, n = ds.length; i < n; i++) s.trash.push(unchecked(ds[i]));
  s.dests = new Array<Dest>();
  s.syncDests();
  // nothing can revive these now: unreferenced ones go at once, the rest with their last connection
  const t = s.trash;
  s.trash = new Array<Dest>();
  for (let i = 0, n = t.length; i < n; i++) {
    const d = unchecked(t[i]);
    d.svcId = -1;
    if (d.refs <= 0) {
      dropFromTrash(d);
      releaseDest(d);
    }
  }
  unhashService(s);
  unchecked((serviceById[id] = null));
  freeServiceIds.push(id);
  serviceCount--;
  return OK;
}

export function flushServices(): void {
  for (let i = 0, n = serviceById.length; i < n; i++) {
    if (unchecked(serviceById[i])) delService(i);
  }
}

// ---- destinations --------------------------------------------------------------------------------

function checkDestParams(s: Service, af: i32, weight: i32, uThreshold: u32, lThreshold: u32, fwd: u32): i32 {
  if (af != AF_INET && af != AF_INET6) return E_BAD_AF;
  if (af != s.af && fwd != FWD_TUNNEL) return E_BAD_AF; // mixed families only through tunnels (as 5.x+)
  if (weight < 0 || weight > MAX_WEIGHT) return E_BAD_WEIGHT;
  if (lThreshold > uThreshold) return E_BAD_THRESHOLD; // the kernel's -ERANGE
  if (fwd > FWD_FULLNAT) return E_BAD_FWD;
  return OK;
}

function linkDest(s: Service, d: Dest): void {
  d.seq = ++s.nextSeq;
  d.flags |= DEST_F_AVAILABLE;
  s.dests.unshift(d);
  s.syncDests();
  const sched = s.sched;
  if (sched) sched.addDest(s, d);
}

export function addDest(
  svcId: i32,
  af: i32,
  a0: u32,
  a1: u32,
  a2: u32,
  a3: u32,
  port: u32,
  weight: i32,
  uThreshold: u32,
  lThreshold: u32,
  fwd: u32,
): i32 {
  const s = getService(svcId);
  if (!s) return E_NO_SERVICE;
  const err = checkDestParams(s, af, weight, uThreshold, lThreshold, fwd);
  if (err != OK) return err;
  if (port > 65535) return E_BAD_PORT;
  if (s.findDest(af, a0, a1, a2, a3, port)) return E_DEST_EXISTS;

  // A deleted destination still referenced by connections is resurrected (ip_vs_trash_get_dest).
  let d: Dest | null = null;
  const trash = s.trash;
  for (let i = 0, n = trash.length; i < n; i++) {
    const t = unchecked(trash[i]);
    if (t.sameAddr(af, a0, a1, a2, a3, port)) {
      d = t;
      trash.splice(i, 1);
      trashAll.splice(trashAll.indexOf(t), 1);
      break;
    }
  }
  if (!d) {
    d = new Dest();
    d.svcId = svcId;
    d.af = af;
    d.a0 = a0;
    d.a1 = a1;
    d.a2 = a2;
    d.a3 = a3;
    d.port = port;
    registerDest(d);
  }
  applyDestParams(d, weight, uThreshold, lThreshold, fwd, true);
  linkDest(s, d);
  return d.id;
}

function applyDestParams(d: Dest, weight: i32, uThreshold: u32, lThreshold: u32, fwd: u32, add: bool): void {
  d.weight = weight;
  if (add || weight != 0) d.lastWeight = weight;
  d.fwd = fwd;
  // __ip_vs_update_dest: a change of either threshold re-evaluates OVERLOAD against the current load, so a
  // raised threshold does not clear it while the load is still at or above the lower one (the VM's kernel:
  // rand-249, a destination re-added from the trash with u 5 -> 20, l 2 at 8 connections, stays OVERLOADed),
  // and an upper threshold at or below the load sets it at once. Same thresholds: the flag is left alone.
  if (uThreshold != d.uThreshold || lThreshold != d.lThreshold) {
    d.uThreshold = uThreshold;
    d.lThreshold = lThreshold;
    d.updateOverload();
  }
}

export function editDest(
  svcId: i32,
  af: i32,
  a0: u32,
  a1: u32,
  a2: u32,
  a3: u32,
  port: u32,
  weight: i32,
  uThreshold: u32,
  lThreshold: u32,
  fwd: u32,
): i32 {
  const s = getService(svcId);
  if (!s) return E_NO_SERVICE;
  const err = checkDestParams(s, af, weight, uThreshold, lThreshold, fwd);
  if (err != OK) return err;
  const d = s.findDest(af, a0, a1, a2, a3, port);
  if (!d) return E_NO_DEST;
  applyDestParams(d, weight, uThreshold, lThreshold, fwd, false);
  const sched = s.sched;
  if (sched) sched.updDest(s, d);
  return d.id;
}

// A destination leaves its service's list: unavailable from now on. Like the kernel's dest_trash it is
// kept (so a quick re-add revives it with its connections, stats and last_weight) until it has been
// unreferenced for TRASH_PERIOD_MS, checked every TRASH_CHECK_MS.
const TRASH_PERIOD_MS: i64 = 120000; // IP_VS_DEST_TRASH_PERIOD
const TRASH_CHECK_MS: i64 = 60000; // the trash timer runs every half period
const trashAll = new Array<Dest>();
let trashNextCheck: i64 = -1;

function retireDest(d: Dest): void {
  d.flags &= ~DEST_F_AVAILABLE;
  d.idleSince = -1;
  trashAll.push(d);
}

function dropFromTrash(d: Dest): void {
  const i = trashAll.indexOf(d);
  if (i >= 0) trashAll.splice(i, 1);
  const s = getService(d.svcId);
  if (s) {
    const j = s.trash.indexOf(d);
    if (j >= 0) s.trash.splice(j, 1);
  }
}

// The trash timer (ip_vs_dest_trash_expire), run from the core's advance().
export function trashTick(now: i64): void {
  if (trashAll.length == 0) {
    trashNextCheck = -1;
    return;
  }
  if (trashNextCheck < 0) {
    trashNextCheck = now + TRASH_CHECK_MS;
    return;
  }
  if (now < trashNextCheck) return;
  trashNextCheck = now + TRASH_CHECK_MS;
  for (let i = trashAll.length - 1; i >= 0; i--) {
    const d = unchecked(trashAll[i]);
    if (d.refs > 0) {
      d.idleSince = -1;
      continue;
    }
    if (d.idleSince < 0) {
      d.idleSince = now;
      continue;
    }
    if (now - d.idleSince >= TRASH_PERIOD_MS) {
      dropFromTrash(d);
      releaseDest(d);
    }
  }
}

export function delDest(svcId: i32, af: i32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): i32 {
  const s = getService(svcId);
  if (!s) return E_NO_SERVICE;
  const d = s.findDest(af, a0, a1, a2, a3, port);
  if (!d) return E_NO_DEST;
  // the kernel unlinks first, then calls the scheduler's del_dest (rr's cursor relies on it)
  const at = s.indexOf(d);
  s.dests.splice(at, 1);
  s.syncDests();
  s.unlinkedAt = at;
  const sched = s.sched;
  if (sched) sched.delDest(s, d);
  retireDest(d);
  s.trash.push(d);
  return OK;
}

// The last reference to a deleted destination is gone. One whose service is gone cannot be revived, so
// it goes now; one in its service's trash waits for the trash timer.
export function destUnreferenced(d: Dest): void {
  if (d.available() || d.svcId >= 0) return;
  dropFromTrash(d);
  releaseDest(d);
}
