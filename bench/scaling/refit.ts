// Refits the simulator's calibration from a saved benchmark report, without measuring again: prints the
// model's curves and their leave-one-N-out errors; --builtin also writes them to src/sim/calibration.ts
// (the calibration used without root or a report of one's own).
//   node --import tsx bench/scaling/refit.ts [DIR (report/scaling)] [--builtin]
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { toPoints, walksFor, modelTables } from "./calibrate.ts";
import { calibrate } from "../../src/sim/index.ts";
import type { HostResult } from "./host.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const args = process.argv.slice(2);
const dir = resolve(root, args.find((a) => !a.startsWith("--")) ?? "report/scaling");
let report: {
  meta: { services: number[]; endpoints: number; command: string; date: string; cpu: string; cores: number };
  host: HostResult[];
  calibration: { machine: string };
};
try {
  report = JSON.parse(readFileSync(resolve(dir, "scaling.json"), "utf8"));
} catch (e) {
  console.error(
    `refit: cannot read ${resolve(dir, "scaling.json")}: ${(e as Error).message} (run bench/scaling.ts first)`,
  );
  process.exit(2);
}
if (!report.host?.length) {
  console.error(`refit: ${dir}/scaling.json has no host measurements (that run skipped the host part)`);
  process.exit(2);
}

const ns = [...new Set(report.host.map((r) => r.services))].sort((a, b) => a - b);
const { calibration, checks } = calibrate(
  toPoints(report.host, walksFor(ns, report.meta.endpoints)),
  report.calibration.machine,
  `measured on the development machine (${report.meta.command.replace(/ --out=\S+/, "")}, ` +
    `${report.meta.date.slice(0, 10)}), ${report.meta.endpoints} endpoint` +
    `s per Service`,
);
console.log(`refit of ${dir}/scaling.json (${ns.join(", ")} Services, ${report.host.length} measured points)`);
console.log(modelTables(calibration, checks));
if (args.includes("--builtin")) {
  const file = resolve(root, "src/sim/calibration.ts");
  const head = readFileSync(file, "utf8").split("export const DEFAULT_CALIBRATION")[0];
  writeFileSync(
    file,
    `${head}export const DEFAULT_CALIBRATION: Calibration = ${JSON.stringify(calibration, null, 2)};\n`,
  );
  console.log(`\nwrote ${file}`);
}
