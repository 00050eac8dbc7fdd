// Keeps a director's sync daemons (kernel IPVS's connection synchronisation) as its configuration says:
// `wasmvs sync` starts the configured ones, starts again one that someone stopped (drift repaired, and
// said), replaces one running with other options, and leaves alone a state the configuration does not name.
import type { IpvsClient } from "./client.ts";
import { type DaemonState, type SyncDaemon, daemonArgs, formatDaemons, sameDaemon } from "../model/daemon.ts";

export interface DaemonPass {
  changes: string[]; // what was done, one line each
  failures: string[]; // what could not be done, with the kernel's reason
}

type DaemonClient = Pick<IpvsClient, "daemons" | "startDaemon" | "stopDaemon">;

/** One pass: the kernel's daemons compared with `want` and made to match. `first`: the pass at start (a
 * missing daemon then is started, not repaired). Never rejects for one daemon's failure: the other is tried. */
export async function ensureDaemons(client: DaemonClient, want: SyncDaemon[], first = false): Promise<DaemonPass> {
  const pass: DaemonPass = { changes: [], failures: [] };
  const running = await client.daemons();
  for (const w of want) {
    const r = running.find((x) => x.state === w.state);
    if (r && sameDaemon(w, r)) continue;
    try {
      if (r) {
        await client.stopDaemon(w.state);
        await client.startDaemon(w);
        pass.changes.push(
          `the ${w.state} sync daemon ran with other options (${oneLine(r)}): restarted as ${daemonArgs(w)}`,
        );
      } else {
        await client.startDaemon(w);
        pass.changes.push(
          first
            ? `started: ${daemonArgs(w)}`
            : `the ${w.state} sync daemon was not running (drift): started again: ${daemonArgs(w)}`,
        );
      }
    } catch (e) {
      pass.failures.push(`the ${w.state} sync daemon (${daemonArgs(w)}): ${(e as Error).message}`);
    }
  }
  return pass;
}

/** The differences, for `wasmvs sync --check` (nothing changed). */
export async function daemonDrift(client: DaemonClient, want: SyncDaemon[]): Promise<string[]> {
  const running = await client.daemons();
  const out: string[] = [];
  for (const w of want) {
    const r = running.find((x) => x.state === w.state);
    if (!r) out.push(`sync daemon: the ${w.state} is not running (want ${daemonArgs(w)})`);
    else if (!sameDaemon(w, r)) out.push(`sync daemon: the ${w.state} runs as ${oneLine(r)} (want ${daemonArgs(w)})`);
  }
  return out;
}

/** At shutdown (only when the configuration says stopOnExit): the configured states stopped. */
export async function stopDaemons(client: DaemonClient, states: DaemonState[]): Promise<DaemonPass> {
  const pass: DaemonPass = { changes: [], failures: [] };
  for (const s of states) {
    try {
      await client.stopDaemon(s);
      pass.changes.push(`stopped the ${s} sync daemon`);
    } catch (e) {
      pass.failures.push(`stopping the ${s} sync daemon: ${(e as Error).message}`);
    }
  }
  return pass;
}

const oneLine = (d: SyncDaemon) => formatDaemons([d]).trim();
