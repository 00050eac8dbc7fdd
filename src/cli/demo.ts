// `wasmvs demo` (what `npm start` runs until the scaling benchmark lands): every scheduler choosing
// for the same burst of connections, through the real data plane (packets in, connection table,
// counters), printed as a table.
import { Core, SCHEDULERS, TCP_FLAGS } from "../core/index.ts";
import { schedulerInfo } from "../model/schedulers.ts";

const DESTS = [
  { addr: "10.1.0.1", weight: 4 },
  { addr: "10.1.0.2", weight: 3 },
  { addr: "10.1.0.3", weight: 2 },
  { addr: "10.1.0.4", weight: 1 },
];
const LETTER: Record<string, string> = { "10.1.0.1": "A", "10.1.0.2": "B", "10.1.0.3": "C", "10.1.0.4": "D" };

export interface DemoRow {
  scheduler: string;
  flags: string[];
  choices: string;
  counts: number[];
  active: number[];
  inactive: number[];
  refused: number;
}

// Runs the burst: `burst` connections from 8 clients, one new connection every 10 ms; every third one
// completes and closes (TIME_WAIT: inactive), the rest stay in SYN_RECV (active, as on Linux >= 4.7).
export async function runDemo(burst = 24): Promise<DemoRow[]> {
  const rows: DemoRow[] = [];
  for (const scheduler of SCHEDULERS) {
    const core = await Core.load({ connCapacity: 4096 });
    core.seedRandom(1);
    const portFlag = schedulerInfo(scheduler)?.flags[1]; // a hash scheduler's flag-2: hash the port too
    const flags = portFlag ? [portFlag] : [];
    const vip = "10.0.0.1";
    const svc = core.addService({ proto: "tcp", addr: vip, port: 80, scheduler, flags });
    const ids = DESTS.map((d) => core.addDest(svc, { addr: d.addr, port: 8080, weight: d.weight }));
    let choices = "",
      refused = 0;
    for (let i = 0; i < burst; i++) {
      const client = `192.168.${1 + (i % 8)}.${10 + (i % 8)}`;
      const sport = 40000 + i;
      const now = 1000 + 10 * i;
      const r = core.packet("in", "tcp", client, sport, vip, 80, { flags: TCP_FLAGS.SYN, now });
      if (r.verdict !== "forward") {
        choices += "-";
        refused++;
        continue;
      }
      const conn = core.conn(r.conn)!;
      choices += LETTER[conn.daddr];
      // every third connection completes its handshake and closes at once: TIME_WAIT, inactive
      if (i % 3 === 0) {
        const { SYN, ACK, FIN } = TCP_FLAGS;
        core.packet("out", "tcp", conn.daddr, conn.dport, client, sport, { flags: SYN | ACK, now });
        core.packet("in", "tcp", client, sport, vip, 80, { flags: ACK, now });
        core.packet("in", "tcp", client, sport, vip, 80, { flags: FIN | ACK, now });
        core.packet("out", "tcp", conn.daddr, conn.dport, client, sport, { flags: FIN | ACK, now });
      }
    }
    const info = ids.map((id) => core.dest(id));
    rows.push({
      scheduler,
      flags,
      choices,
      counts: info.map((d) => Number(d.conns)),
      active: info.map((d) => d.activeConns),
      inactive: info.map((d) => d.inactConns),
      refused,
    });
  }
  return rows;
}

export async function demo(): Promise<number> {
  const out = process.stdout;
  out.write("wasmvs demo: one virtual service 10.0.0.1:80, four real servers added in order\n");
  out.write("  A 10.1.0.1 w4, B 10.1.0.2 w3, C 10.1.0.3 w2, D 10.1.0.4 w1 (kernel list order: D C B A)\n");
  out.write("24 new TCP connections from 8 clients; every third completes and closes (TIME_WAIT, inactive),\n");
  out.write("the others stay half-open (SYN_RECV, which Linux counts as active).\n");
  out.write("Each choice is made by the WASM data plane from real packets, as Linux 6.1's IPVS would.\n\n");
  const rows = await runDemo();
  const head = "sched  choices (1st .. 24th)      conns A/B/C/D   active A/B/C/D  inactive A/B/C/D";
  out.write(head + "\n" + "-".repeat(head.length) + "\n");
  for (const r of rows) {
    const name = (r.scheduler + (r.flags.length ? "*" : "")).padEnd(6);
    out.write(
      `${name} ${r.choices.padEnd(26)} ${r.counts.join("/").padEnd(15)} ${r.active.join("/").padEnd(15)} ` +
        `${r.inactive.join("/")}` +
        (r.refused ? `   (${r.refused} refused: no destination)` : "") +
        "\n",
    );
  }
  out.write("\n* sh and mh with the -port flag, so one client's connections spread by source port.\n");
  out.write("lblc/lblcr key on the destination address: one VIP is one table entry, kept until its server has\n");
  out.write("more active connections than its weight while another is under half its weight.\n");
  out.write("dh hashes the VIP, so every connection lands in the same bucket. twos draws from a seeded source.\n");
  return 0;
}
