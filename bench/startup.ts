// How long `wasmvs` takes to answer, as a script calling it in a loop sees it: `wasmvs help` and
// `wasmvs -Ln` (against an empty kernel; on a host without IPVS it ends at the "no IPVS" message, after
// the same start-up and netlink family look-up), each a fresh process, interleaved run by run with the
// baselines `node -e 0` (Node's own start) and, where installed, `ipvsadm -Ln`. Prints medians and spread.
//   node --import tsx bench/startup.ts [--runs N]        on this machine (target: median <= 150 ms)
//   node --import tsx bench/startup.ts --vm [--runs N]   the same inside the kernel VM (ipvsadm beside it)
// Needs the built command (npm run build:cli); it refuses to measure the tsx fallback.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const argv = process.argv.slice(2);
const runs = Number(argv[argv.indexOf("--runs") + 1] || 0) || (argv.includes("--vm") ? 15 : 30);
if (argv.includes("--vm")) {
  const { runInVm, vmEnv } = await import("./kernel-sync.ts");
  const { projectRoot, vmShare } = await import("../test/helpers/vm-share.ts");
  const { code, stdout } = await runInVm(
    `cd ${projectRoot} && node bench/startup.mjs --runs ${runs}`,
    { ...vmEnv(), IPVSVM_SHARE: vmShare() },
    () => true,
  );
  process.stdout.write(
    stdout
      .split("\n")
      .filter((l) => !l.startsWith("@@"))
      .join("\n"),
  );
  process.exit(code);
}
const script = fileURLToPath(new URL("./startup.mjs", import.meta.url));
process.exit(spawnSync(process.execPath, [script, "--runs", String(runs)], { stdio: "inherit" }).status ?? 1);
