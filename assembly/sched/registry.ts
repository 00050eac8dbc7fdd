// The scheduler registry: a name, an id, and a constructor per scheduler. Adding a scheduler is one new
// file in this folder and one line in each list below.
import { Scheduler } from "./scheduler";
import { RoundRobin } from "./rr";
import { WeightedRoundRobin } from "./wrr";
import { LeastConnection } from "./lc";
import { WeightedLeastConnection } from "./wlc";
import { LocalityLeastConnection } from "./lblc";
import { LocalityLeastConnectionReplicated } from "./lblcr";
import { DestinationHashing } from "./dh";
import { SourceHashing } from "./sh";
import { ShortestExpectedDelay } from "./sed";
import { NeverQueue } from "./nq";
import { MaglevHashing } from "./mh";
import { WeightedFailover } from "./fo";
import { WeightedOverflow } from "./ovf";
import { PowerOfTwoChoices } from "./twos";

export const SCHEDULER_NAMES: string[] = [
  "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos",
];

export function createScheduler(id: i32): Scheduler | null {
  switch (id) {
    case 0: return new RoundRobin();
    case 1: return new WeightedRoundRobin();
    case 2: return new LeastConnection();
    case 3: return new WeightedLeastConnection();
    case 4: return new LocalityLeastConnection();
    case 5: return new LocalityLeastConnectionReplicated();
    case 6: return new DestinationHashing();
    case 7: return new SourceHashing();
    case 8: return new ShortestExpectedDelay();
    case 9: return new NeverQueue();
    case 10: return new MaglevHashing();
    case 11: return new WeightedFailover();
    case 12: return new WeightedOverflow();
    case 13: return new PowerOfTwoChoices();
  }
  return null;
}
