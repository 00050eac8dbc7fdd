import type { RealServer } from "../../src/model/types.ts";

/** A real server as most tests want one: masquerading, weight 1, no thresholds; `o` overrides any field. */
export const masqServer = (addr: string, port: number, o: Partial<RealServer> = {}): RealServer => ({
  addr,
  port,
  weight: 1,
  fwd: "masq",
  upperThreshold: 0,
  lowerThreshold: 0,
  ...o,
});
