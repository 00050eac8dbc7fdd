"use strict";
// Seeded random scenarios for the differential runs against the kernel (issue 14). One seed gives one
// scenario, the same on every machine and Node version (integer arithmetic only), so the fixture stores
// seeds and what the kernel showed, not the steps. Used by driver.cjs (in the VM), record.cjs and the replay.
//
//   generate(seed) -> {name, seed, service, pool, steps, trace: true}
//
// The scheduler is SCHEDULERS[seed % 13] and the sh/mh flag combination (seed / 13) % 4, so any 52
// consecutive seeds cover every scheduler and every flag combination; everything else is drawn from the seed.
// Step ops as in scenarios.json (add, edit, del, connect, close) plus wait {ms} (UDP expiry, see udpTimeout).

const SCHEDULERS = ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "dh", "sh", "mh", "lblc", "lblcr"];
const WEIGHTS = [0, 1, 2, 3, 5, 8, 100, 65535];
const FLAG_COMBOS = (s) => [[], [`${s}-port`], [`${s}-fallback`], [`${s}-port`, `${s}-fallback`]];
const NETMASKS4 = ["255.255.255.255", "255.255.255.0", "255.255.0.0", "255.255.255.240", "255.0.0.0"];
const PREFIXES6 = [128, 64, 48, 120, 96];
// The real seconds between two waits (SEGMENT_STEPS steps, about 0.3 s each in the emulated VM under load)
// stay well under the UDP timeout, so entries expire at the waits only (the driver checks)
const UDP_TIMEOUT_S = 10;
const WAIT_MS = 13000;
const SEGMENT_STEPS = 10;

// xorshift32 over a scrambled seed
function rng(seed) {
  let s = (Math.imul(seed + 1, 0x9e3779b1) ^ 0x5bd1e995) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  for (let i = 0; i < 8; i++) next();
  const int = (n) => next() % n;
  return { int, pick: (a) => a[int(a.length)], chance: (p) => next() / 4294967296 < p };
}

// The virtual service, drawn first: family, protocol, VIP, persistence and netmask, whether UDP waits come.
function drawService(seed, r) {
  const scheduler = SCHEDULERS[seed % SCHEDULERS.length];
  const combo = Math.floor(seed / SCHEDULERS.length) % 4;
  const flags = scheduler === "sh" || scheduler === "mh" ? [...FLAG_COMBOS(scheduler)[combo]] : [];
  const v6 = r.chance(0.3);
  const proto = r.chance(0.25) ? "udp" : "tcp";
  // one-packet: UDP only (ipvsadm refuses -o on a TCP service); the draw stays so later draws keep their place
  if (r.chance(proto === "udp" ? 0.35 : 0.05) && proto === "udp") flags.push("ops");
  const port = proto === "udp" ? 53 : 80;
  const vip = v6 ? `fd00::${(1 + r.int(0xfff0)).toString(16)}` : `10.0.${r.int(256)}.${1 + r.int(254)}`;
  let persistent = null,
    netmask = null;
  if (r.chance(0.2)) {
    persistent = r.pick([300, 3600]);
    if (r.chance(0.7)) netmask = v6 ? r.pick(PREFIXES6) : r.pick(NETMASKS4);
  }
  const waits = proto === "udp" && r.chance(0.2);
  const service = { proto, vip, port, scheduler, flags, persistent, netmask };
  if (waits) service.udpTimeout = UDP_TIMEOUT_S;
  return { service, v6, proto, port, waits };
}

// The destination pool and the client addresses, drawn after the service.
function drawAddresses(r, v6, port) {
  // destination pool: 1..16 distinct (address, port), some on another port than the VIP's
  const n = 1 + r.int(16);
  const addrs = new Set();
  while (addrs.size < n) addrs.add(1 + r.int(60));
  const pool = [...addrs].map((a) => ({
    addr: v6 ? `fd00:1::${a.toString(16)}` : `10.1.0.${a}`,
    port: r.chance(0.2) ? 8080 : port,
  }));
  // clients: 1..200 addresses in 10.2.0.0/16 or fd00:2::/64
  const nClients = r.pick([1, 3, 12, 40, 200]);
  const caddrs = new Set();
  while (caddrs.size < nClients) {
    caddrs.add(
      v6
        ? `fd00:2::${(1 + r.int(0xfffe)).toString(16)}:${(1 + r.int(0xfffe)).toString(16)}`
        : `10.2.${r.int(256)}.${1 + r.int(254)}`,
    );
  }
  const clients = [...caddrs];
  return { pool, clients };
}

function generate(seed) {
  const r = rng(seed);
  const { service, v6, proto, port, waits } = drawService(seed, r);
  const { pool, clients } = drawAddresses(r, v6, port);
  const pAnswer = proto === "tcp" ? r.pick([0, 0.3, 0.7, 1]) : 0;
  const pConfig = r.pick([0.02, 0.06, 0.12]);
  // SYN_RECV entries live 60 s: a scenario's connects must take well under that in the emulated VM, which on
  // a loaded machine manages about one connection a second (record.cjs drops a TCP scenario that took over 50 s)
  const connects = waits ? 30 + r.int(20) : 20 + r.int(40);

  const steps = [];
  const present = new Map(); // pool index -> {weight, u, l}
  const thresholds = () => {
    if (!r.chance(0.3)) return { u: 0, l: 0 };
    const u = r.pick([1, 2, 3, 5, 10, 20]);
    return { u, l: r.chance(0.05) ? u + 1 : r.pick([0, 0, 1, 2]) }; // l > u: the kernel refuses it
  };
  const destStep = (op, i, cfg = {}) => {
    const d = pool[i];
    steps.push(
      op === "del"
        ? { op, dest: d.addr, port: d.port }
        : { op, dest: d.addr, port: d.port, weight: cfg.weight, u: cfg.u, l: cfg.l },
    );
  };
  const okCfg = (c) => c.l <= c.u || (c.u === 0 && c.l === 0);
  const add = (i) => {
    const cfg = { weight: r.pick(WEIGHTS), ...thresholds() };
    destStep("add", i, cfg);
    if (okCfg(cfg)) present.set(i, cfg);
  };
  // random add order; most of the pool is there from the start
  const order = pool.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (const i of order) if (present.size === 0 || r.chance(0.85)) add(i);

  const used = new Set();
  const open = []; // answered, not yet closed: [client, sport]
  let made = 0,
    segment = 0;
  const connect = () => {
    const client = r.pick(clients);
    let sport;
    do sport = 1024 + r.int(60000);
    while (used.has(`${client} ${sport}`));
    used.add(`${client} ${sport}`);
    const answer = proto === "tcp" && r.chance(pAnswer);
    steps.push({ op: "connect", client, sport, answer });
    if (answer) open.push([client, sport]);
    made++;
  };
  const config = () => {
    const inPool = [...present.keys()];
    const absent = pool.map((_, i) => i).filter((i) => !present.has(i));
    const k = r.int(100);
    if (k < 45 && inPool.length) {
      // weight edit, to and from 0 included
      const i = r.pick(inPool),
        cfg = { ...present.get(i), weight: r.pick(WEIGHTS) };
      destStep("edit", i, cfg);
      present.set(i, cfg);
    } else if (k < 65 && inPool.length) {
      // thresholds raised, lowered, cleared
      const i = r.pick(inPool),
        cfg = { ...present.get(i), ...thresholds() };
      destStep("edit", i, cfg);
      if (okCfg(cfg)) present.set(i, cfg);
    } else if (k < 80 && inPool.length) {
      const i = r.pick(inPool);
      destStep("del", i);
      present.delete(i);
    } else if (k < 95 && absent.length) {
      add(r.pick(absent)); // a re-add brings back the old entry's counters
    } else if (k < 97 && absent.length) {
      destStep("del", r.pick(absent)); // no such destination: refused
    } else if (k < 99 && inPool.length) {
      const i = r.pick(inPool);
      destStep("add", i, present.get(i)); // already exists: refused
    } else if (absent.length) {
      destStep("edit", r.pick(absent), { weight: 1, u: 0, l: 0 }); // no such destination: refused
    }
  };
  while (made < connects) {
    if (waits && segment >= SEGMENT_STEPS) {
      steps.push({ op: "wait", ms: WAIT_MS });
      segment = 0;
      continue;
    }
    segment++;
    if (r.chance(pConfig)) config();
    else if (open.length && r.chance(0.12)) {
      const [client, sport] = open.splice(r.int(open.length), 1)[0];
      steps.push({ op: "close", client, sport });
    } else connect();
  }
  return { name: `rand-${seed}`, seed, service, pool: pool.map((d) => `${d.addr} ${d.port}`), steps, trace: true };
}

// "random:FIRST:COUNT" -> COUNT scenarios from seeds FIRST, FIRST+1, ...
function fromSpec(spec) {
  const m = /^random:(\d+):(\d+)$/.exec(spec);
  if (!m) return null;
  return Array.from({ length: +m[2] }, (_, k) => generate(+m[1] + k));
}

// A scenario source: a scenarios file, random:FIRST:COUNT, or several joined with '+'
function load(spec) {
  return spec.split("+").flatMap((part) => fromSpec(part) || JSON.parse(require("node:fs").readFileSync(part, "utf8")));
}

// ---- the compact per-step observation, written the same way by the driver (from the kernel) and the replay ----
const STATE_CODE = {
  SYN_RECV: "S",
  ESTABLISHED: "E",
  UDP: "U",
  TIME_WAIT: "T",
  CLOSE: "C",
  FIN_WAIT: "F",
  CLOSE_WAIT: "W",
  LAST_ACK: "L",
  SYN_SENT: "Y",
  SYNACK: "A",
  NONE: "N",
  LISTEN: "I",
};
const stateCode = (s) => (s == null ? "-" : STATE_CODE[s] || `<${s}>`);
// dests: [{i (pool index, or -1 if not in the pool), weight, active, inactive}] in list order
function listText(dests, withWeight) {
  if (!dests.length) return ".";
  return dests.map((d) => `${d.i.toString(16)}:${withWeight ? `${d.weight}:` : ""}${d.active}.${d.inactive}`).join(",");
}
// end of scenario: the connection table (every entry, templates included) as a count per state and a digest
function tableText(lines) {
  const sorted = [...lines].sort();
  let h = 0x811c9dc5; // FNV-1a over the sorted lines
  for (const l of sorted) for (let k = 0; k < l.length; k++) h = Math.imul(h ^ l.charCodeAt(k), 0x01000193) >>> 0;
  const per = {};
  for (const l of sorted) {
    const st = l.slice(l.lastIndexOf(" ") + 1);
    per[st] = (per[st] || 0) + 1;
  }
  return `${
    Object.keys(per)
      .sort()
      .map((k) => `${k}=${per[k]}`)
      .join(",") || "empty"
  } #${h.toString(16)}`;
}

module.exports = { SCHEDULERS, WEIGHTS, UDP_TIMEOUT_S, generate, fromSpec, load, stateCode, listText, tableText };
