// The control socket's batch worker: a large batch's lines ("applyPart" ... "apply", a restore's) are parsed,
// checked and applied to the batch's next state here, off the main thread, which accepts and schedules the
// connections. This thread lowers its own priority (nice 19: Linux applies it per thread), so that the main
// thread, asleep while this one works, is run first when a connection comes (docs/proxy.md, issue 15 round
// 5). The same code as on the main thread (control.ts parseRequest and stage, batch.ts NextState), so the
// checks and their messages are the same. Messages: see batch-host.ts.
import { parentPort } from "node:worker_threads";
import type { DesiredState, IpvsTimeouts, VirtualService } from "../model/types.ts";
import { formatProblems } from "../model/validate.ts";
import { NextState, StepError, proxyStateProblemsInSlices } from "./batch.ts";
import { BATCH_STALE, type BatchSession, parseRequest, stage } from "./control.ts";
import { Slicer } from "./slice.ts";
import type { Done, ToWorker } from "./batch-host.ts";
import { niceThisThread, packItems } from "./threads.ts";

niceThisThread();

const port = parentPort!;
const sessions = new Map<number, BatchSession>();
const bases = new Map<number, DesiredState>();
let incoming: { id: number; services: VirtualService[]; timeouts?: IpvsTimeouts } | undefined;
// nothing else runs on this thread: long stretches (a message to drop a session waits at most this long)
const slicer = () => new Slicer(50);

async function line(m: Extract<ToWorker, { t: "line" }>): Promise<Done> {
  const req = parseRequest(m.line);
  if (req.error !== undefined || (req.op !== "applyPart" && req.op !== "apply")) return { rid: m.rid, notBatch: true };
  let s = sessions.get(m.sid);
  if (!s) sessions.set(m.sid, (s = {}));
  const base = () => {
    const b = bases.get(m.base);
    if (!b) throw new Error(BATCH_STALE); // not expected: the main thread forgets a base only once it is replaced
    return b;
  };
  const cmds = req.args![0] as unknown[];
  try {
    if (req.op === "applyPart") {
      await stage(base, m.mode, s, cmds, slicer());
      return { rid: m.rid, id: req.id, op: req.op, ok: true, result: { staged: s.batch?.count ?? 0 } };
    }
    let batch: NextState;
    try {
      await stage(base, m.mode, s, cmds, slicer());
      batch = s.batch ?? new NextState(base(), m.mode);
    } finally {
      sessions.delete(m.sid); // the batch ends here either way
    }
    const next = batch.state();
    const problems = await proxyStateProblemsInSlices(next, slicer());
    // the next state as a diff: a service the batch left alone is the base's (by its index there), the others
    // as JSON in chunks, all in one buffer moved (not copied) to the main thread, which parses a chunk a step
    const at = new Map<VirtualService, number>();
    batch.base.services.forEach((x, i) => at.set(x, i));
    const order = new Int32Array(next.services.length);
    const fresh: VirtualService[] = [];
    next.services.forEach((svc, i) => {
      order[i] = at.get(svc) ?? -1;
      if (order[i] < 0) fresh.push(svc);
    });
    const { bytes, ends } = packItems(fresh);
    bases.set(m.newId, next);
    const same = next.timeouts === batch.base.timeouts;
    return {
      rid: m.rid,
      id: req.id,
      op: req.op,
      ok: true,
      result: { applied: batch.count },
      state: { order, bytes, ends, timeoutsSame: same, timeouts: same ? undefined : next.timeouts },
      problems: problems.length ? formatProblems(problems) : undefined,
    };
  } catch (e) {
    const step = e instanceof StepError ? e.step : undefined;
    return { rid: m.rid, id: req.id, op: req.op, ok: false, error: (e as Error).message, step };
  }
}

let turn: Promise<unknown> = Promise.resolve();
port.on("message", (m: ToWorker) => {
  // a test's: the worker dies at once, as an uncaught error would kill it
  if (m.t === "crash") throw new Error("batch worker: asked to fail (a test)");
  // one message at a time, in the order they came (a line's staging yields)
  turn = turn
    .then(async () => {
      switch (m.t) {
        case "base":
          if (!incoming || incoming.id !== m.id) incoming = { id: m.id, services: [] };
          for (const x of JSON.parse(m.services) as VirtualService[]) incoming.services.push(x);
          if (m.last) {
            const services = incoming.services;
            bases.set(m.id, m.timeouts ? { services, timeouts: m.timeouts } : { services });
            incoming = undefined;
          }
          break;
        case "line": {
          const done = await line(m);
          port.postMessage({ t: "done", ...done }, done.state ? [done.state.bytes] : []);
          break;
        }
        case "forget":
          bases.delete(m.id);
          break;
        case "close":
          sessions.delete(m.sid);
          break;
      }
    })
    .catch((e) => {
      // not expected (a line's errors are its answer): the worker dies, and the batches it held are refused
      setImmediate(() => {
        throw e;
      });
    });
});
