// PLACEHOLDER until written: schedules nothing.
import { Scheduler } from "./scheduler";
export class WeightedFailover extends Scheduler {}
