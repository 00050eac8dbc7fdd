// PLACEHOLDER until written: schedules nothing.
import { Scheduler } from "./scheduler";
export class WeightedLeastConnection extends Scheduler {}
