// The scheduler registry: makes a scheduler from its id. Adding a scheduler is one new file in this folder,
// one line in ./list.ts (its name, id, family and flags, which the host reads too) and one line below.
import { Scheduler } from "./scheduler";
import { SCHEDULER_KINDS } from "./list";
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

// A scheduler by its id in the list (ids are list positions); null for an id the list does not have, or a
// name this switch does not make yet (test/boundary.test.ts adds a service with every listed scheduler).
export function createScheduler(id: i32): Scheduler | null {
  if (id < 0 || id >= SCHEDULER_KINDS.length) return null;
  const name = unchecked(SCHEDULER_KINDS[id]).name;
  if (name == "rr") return new RoundRobin();
  if (name == "wrr") return new WeightedRoundRobin();
  if (name == "lc") return new LeastConnection();
  if (name == "wlc") return new WeightedLeastConnection();
  if (name == "lblc") return new LocalityLeastConnection();
  if (name == "lblcr") return new LocalityLeastConnectionReplicated();
  if (name == "dh") return new DestinationHashing();
  if (name == "sh") return new SourceHashing();
  if (name == "sed") return new ShortestExpectedDelay();
  if (name == "nq") return new NeverQueue();
  if (name == "mh") return new MaglevHashing();
  if (name == "fo") return new WeightedFailover();
  if (name == "ovf") return new WeightedOverflow();
  if (name == "twos") return new PowerOfTwoChoices();
  return null;
}
