// PLACEHOLDER until written: schedules nothing.
import { Scheduler } from "./scheduler";
export class LocalityLeastConnection extends Scheduler {}
