// PLACEHOLDER until written: schedules nothing.
import { Scheduler } from "./scheduler";
export class WeightedOverflow extends Scheduler {}
