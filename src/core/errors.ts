// Error codes from the data plane (assembly/common.ts) and the messages a user sees.

const ERROR_MESSAGES: Record<number, string> = {
  [-1]: "no such virtual service",
  [-2]: "virtual service already exists",
  [-3]: "no such destination",
  [-4]: "destination already exists",
  [-5]: "unknown scheduler",
  [-6]: "weight out of range (0..65535)",
  [-7]: "lower threshold is higher than upper threshold",
  [-8]: "bad or mismatched address family",
  [-9]: "protocol must be tcp, udp or sctp",
  [-10]: "bad netmask (IPv4: a contiguous mask; IPv6: a prefix length 1..128)",
  [-11]: "unknown service flags",
  [-12]: "unknown forwarding method",
  [-13]: "table full",
  [-14]: "port out of range (0..65535)",
  [-15]: "bad timeout",
  [-16]: "unknown setting or value out of range",
  [-17]: "too many destinations for this scheduler",
};

export class WasmvsError extends Error {
  constructor(
    readonly code: number,
    readonly what: string,
  ) {
    super(`${what}: ${ERROR_MESSAGES[code] ?? `error ${code}`}`);
    this.name = "WasmvsError";
  }
}

// Throws for a negative result, naming what was being done.
export function check(result: number, what: string): number {
  if (result < 0) throw new WasmvsError(result, what);
  return result;
}
