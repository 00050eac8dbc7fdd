// Types for loop-watch.mjs (plain JS: it is preloaded with --import, before any TypeScript loader).
export function mainThreadCpuMs(): number;
export function mainThreadSched(): [cpuMs: number, waitMs: number];
