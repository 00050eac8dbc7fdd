// Types of random-scenarios.cjs for the TypeScript replay (test/helpers/replay.ts)
export const SCHEDULERS: string[];
export const WEIGHTS: number[];
export const UDP_TIMEOUT_S: number;
export function generate(seed: number): any;
export function fromSpec(spec: string): any[] | null;
export function load(spec: string): any[];
export function stateCode(state: string | null | undefined): string;
export function listText(
  dests: { i: number; weight: number; active: number; inactive: number }[],
  withWeight: boolean,
): string;
export function tableText(lines: string[]): string;
