// A reload's configuration file, read and checked off the main thread (config-thread.ts starts it, one per
// reload). The YAML parser takes about 2 µs a byte: a file of 10k services with 10 real servers each (4.3
// MB) is 8.5 s of parsing, which on the main thread held every connection for as long. The services and the
// health checks come back as JSON chunks in one moved buffer, the rest as a structured clone (it is small).
import { parentPort, workerData } from "node:worker_threads";
import { ConfigError, loadConfig } from "./config.ts";
import { niceThisThread, packItems } from "./threads.ts";
import type { ConfigReply } from "./config-thread.ts";

niceThisThread();
let reply: ConfigReply;
try {
  const { state, health, ...rest } = loadConfig((workerData as { file: string }).file);
  const services = packItems(state.services),
    checks = packItems([...health]);
  reply = { ok: true, rest, timeouts: state.timeouts, services, health: checks };
  parentPort!.postMessage(reply, [services.bytes, checks.bytes]);
} catch (e) {
  reply =
    e instanceof ConfigError
      ? { ok: false, message: e.message, issues: e.issues, file: e.file }
      : { ok: false, message: (e as Error).message ?? String(e) };
  parentPort!.postMessage(reply);
}
