// Clean-up that must run when a test process exits, however it ends. One process listener serves them all:
// the host's test files share one process, and a listener each went past Node's limit of 10, so every run
// printed a MaxListenersExceededWarning that would have hidden a real leak's. A function added twice runs once.
const hooks = new Set<() => void>();

/** Runs `fn` when the process exits (each function once, in the order first added). */
export function onExit(fn: () => void): void {
  if (hooks.size === 0)
    process.on("exit", () => {
      for (const f of hooks) {
        try {
          f();
        } catch (e) {
          console.error(`test clean-up at exit failed: ${(e as Error)?.stack ?? String(e)}`);
        }
      }
    });
  hooks.add(fn);
}
