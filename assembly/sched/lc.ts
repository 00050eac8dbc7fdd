// PLACEHOLDER until written: schedules nothing.
import { Scheduler } from "./scheduler";
export class LeastConnection extends Scheduler {}
