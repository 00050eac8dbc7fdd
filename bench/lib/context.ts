// What every benchmark group gets and gives back.
import type { Budget } from "./measure.ts";
import type { Figure, Target } from "./report.ts";

export interface Ctx {
  quick: boolean;
  budget: Budget;
}

export interface GroupResult {
  figures: Figure[];
  targets: Target[];
  svgs: Record<string, string>; // file name -> SVG text
  extra?: Record<string, unknown>; // anything else worth keeping in the JSON
}

export { ntoa4 as ipv4 } from "../../src/model/inet.ts";
