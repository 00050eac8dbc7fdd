// PLACEHOLDER until written: schedules nothing.
import { Scheduler } from "./scheduler";
export class DestinationHashing extends Scheduler {}
