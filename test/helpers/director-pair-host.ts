// The host side of the director-pair bed (test/helpers/director-pair.ts runs inside the VM): the VM's
// environment with the modules the bed needs, and a time limit that scales with the work and the load.
import { cpus, loadavg } from "node:os";
import { vmEnv } from "../../bench/kernel-sync.ts";

/** vmEnv (bench/kernel-sync.ts) plus the bridge module, and a VM timeout of `limitS` seconds. */
export function pairVmEnv(limitS: number, dir?: string): NodeJS.ProcessEnv {
  const env = vmEnv(dir);
  return { ...env, IPVSVM_MODULES: `${env.IPVSVM_MODULES} bridge`, IPVSVM_TIMEOUT: String(Math.round(limitS)) };
}

/** A time limit: `quietS` (the work's time on a quiet machine, boot included) times 3, times the load per
 * core above 1 (qemu's emulation gets that much less of a core), at most 10 times. */
export function scaledLimitS(quietS: number): number {
  const perCore = loadavg()[0] / Math.max(1, cpus().length);
  return Math.round(quietS * Math.min(10, 3 * Math.max(1, perCore)));
}
