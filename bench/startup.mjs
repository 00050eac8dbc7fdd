// The measurement itself (bench/startup.ts runs it here or in the VM): plain JavaScript, so that the VM,
// where transpiling costs a minute, measures only what it should.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const argv = process.argv.slice(2);
const runs = Number(argv[argv.indexOf("--runs") + 1] || 0) || 30;

const built = statSync(`${root}dist/cli/main.js`, { throwIfNoEntry: false })?.mtimeMs ?? 0;
const stale = readdirSync(`${root}src`, { recursive: true }).some((f) => statSync(`${root}src/${f}`).mtimeMs > built);
if (stale) {
  console.error("dist/cli is missing or older than src/: run npm run build:cli first");
  process.exit(2);
}

const cases = [
  { name: "node -e 0", cmd: process.execPath, args: ["-e", "0"] },
  { name: "wasmvs help", cmd: process.execPath, args: [`${root}bin/wasmvs.js`, "help"] },
  { name: "wasmvs -Ln", cmd: process.execPath, args: [`${root}bin/wasmvs.js`, "-Ln"] },
];
if (spawnSync("sh", ["-c", "command -v ipvsadm"]).status === 0)
  cases.push({ name: "ipvsadm -Ln", cmd: "ipvsadm", args: ["-Ln"] });
const ms = cases.map(() => []);
const exits = cases.map(() => "");
for (let i = 0; i < runs; i++) {
  cases.forEach((c, j) => {
    const t0 = performance.now();
    const r = spawnSync(c.cmd, c.args, { stdio: ["ignore", "ignore", "ignore"] });
    ms[j].push(performance.now() - t0);
    exits[j] = String(r.status);
  });
}
const q = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
console.log(`start-up, ${runs} runs each, interleaved (ms: median [p25-p75] min-max):`);
cases.forEach((c, j) => {
  const a = ms[j];
  console.log(
    `  ${c.name.padEnd(12)} ${q(a, 0.5).toFixed(0).padStart(6)}  [${q(a, 0.25).toFixed(0)}-` +
      `${q(a, 0.75).toFixed(0)}]  ` +
      `${Math.min(...a).toFixed(0)}-${Math.max(...a).toFixed(0)}  (exit ${exits[j]})`,
  );
});
