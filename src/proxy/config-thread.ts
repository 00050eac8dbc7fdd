// Reads a configuration file in a worker thread (config-worker.ts) for a running proxy's reload: the main
// thread accepts and schedules every connection, and a large file's parse (seconds at 10k services) there
// stopped them all for as long. The result is the one loadConfig gives, errors included (a ConfigError with
// the same issues and message).
import { statSync } from "node:fs";
import type { IpvsTimeouts, VirtualService } from "../model/types.ts";
import { ConfigError, type ConfigIssue, type HealthSpec, type ProxyConfig, loadConfig } from "./config.ts";
import { Slicer } from "./slice.ts";
import { type Chunks, startWorker, unpackItems } from "./threads.ts";

export type ConfigReply =
  | {
      ok: true;
      rest: Omit<ProxyConfig, "state" | "health">;
      timeouts?: IpvsTimeouts;
      services: Chunks;
      health: Chunks;
    }
  | { ok: false; message: string; issues?: ConfigIssue[]; file?: string };

// A file this small is read on the main thread: about 7 ms of parsing (0.8 µs a byte once warm), where a
// worker thread's start costs more (0.1-0.5 s, and a reload waits for it: tests reload a small file often)
const OFF_THREAD_BYTES = 8 * 1024;

/** loadConfig(file), off the main thread if the file is large; the services and health checks taken in a
 * chunk a turn of the loop. */
export async function loadConfigOffThread(file: string): Promise<ProxyConfig> {
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    /* loadConfig says why it cannot read it */
  }
  if (size < OFF_THREAD_BYTES) return loadConfig(file);
  const w = startWorker("config-worker", { file });
  const reply = await new Promise<ConfigReply>((res, rej) => {
    let got: ConfigReply | undefined;
    w.once("message", (m: ConfigReply) => (got = m));
    w.once("error", (e) => rej(new Error(`reading ${file} in a worker thread failed: ${e.message}`)));
    w.once("exit", (code) =>
      got ? res(got) : rej(new Error(`reading ${file} in a worker thread failed: it exited (${code}) with no answer`)),
    );
  });
  if (!reply.ok) {
    if (reply.issues) throw new ConfigError(reply.issues, reply.file);
    throw new Error(reply.message);
  }
  const slicer = new Slicer();
  const services = await unpackItems<VirtualService>(reply.services, slicer);
  const health = new Map(await unpackItems<[string, HealthSpec]>(reply.health, slicer));
  const state = reply.timeouts ? { services, timeouts: reply.timeouts } : { services };
  return { ...reply.rest, state, health };
}
