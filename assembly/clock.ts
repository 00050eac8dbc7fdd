// The data plane's clock: one step that expires connections, empties the destination trash and runs the
// schedulers' timers. The exported advance() and the simulator's traffic generator (assembly/sim/) both
// run it, so simulated time passes exactly as the host's clock does.
import { advance as tableAdvance } from "./conn/table";
import { timedServices, trashTick } from "./service/service";

export function runClock(now: i64): i32 {
  const freed = tableAdvance(now);
  trashTick(now);
  for (let i = 0; i < timedServices.length; i++) {
    const s = unchecked(timedServices[i]);
    const sc = s.sched;
    if (sc && sc.nextTickAt <= now) sc.tick(s, now);
  }
  return freed;
}
