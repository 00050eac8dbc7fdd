#!/usr/bin/env node
// npm test's runner: the test files in two uvu processes side by side. The kernel VM's files spend their time
// in qemu (one core, software emulation) while the host's files need the other core, so running the two
// groups at once takes about as long as the VM group alone instead of both in turn. The host group streams
// as it runs; the VM group's output is printed whole when it ends (uvu's dots would interleave), with a
// line a minute meanwhile. Exit status: the first non-zero of the two; a combined count at the end.
//   node bin/test-run.mjs [PATTERN]   (PATTERN: a regex on file names, as uvu takes; default every *.test.ts)
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const pattern = new RegExp(process.argv[2] ?? "\\.test\\.ts$");
// a file that boots the kernel VM names one of these (vm-share.ts, director-pair.ts, runInVm, scaling's measureVm)
const VM_MARKS = /ipvs-vm|runInVm|vmShare|director-pair|measureVm/;
const files = readdirSync(join(ROOT, "test"))
  .filter((f) => pattern.test(f))
  .sort();
const vm = files.filter((f) => VM_MARKS.test(readFileSync(join(ROOT, "test", f), "utf8")));
const host = files.filter((f) => !vm.includes(f));
const only = (list) => `^(${list.map((f) => f.replace(/[.+?^${}()|[\]\\-]/g, "\\$&")).join("|")})$`;

function uvu(list, stream) {
  const p = spawn(process.execPath, ["--import", "tsx", "node_modules/uvu/bin.js", "test", only(list)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const take = (d) => {
    out += d;
    if (stream) process.stdout.write(d);
  };
  p.stdout.on("data", take);
  p.stderr.on("data", take);
  return new Promise((resolve) => p.on("close", (code, signal) => resolve({ code: code ?? 1, signal, out })));
}

const counts = (out) => {
  // uvu's closing block, colours stripped: "Total: N", "Passed: N", "Skipped: N"
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts an ANSI colour code
  const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
  const n = (k) => Number(plain.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1] ?? 0);
  return { total: n("Total"), passed: n("Passed"), skipped: n("Skipped") };
};

const t0 = Date.now();
console.log(
  `test-run: ${host.length} host file(s) streamed here; ${vm.length} VM file(s) beside them: ${vm.join(" ")}`,
);
const vmRun = vm.length ? uvu(vm, false) : Promise.resolve({ code: 0, out: "" });
let vmDone = false;
void vmRun.then(() => (vmDone = true));
const hostRes = host.length ? await uvu(host, true) : { code: 0, out: "" };
const ticker = setInterval(() => {
  if (!vmDone) console.log(`test-run: VM files still running (${Math.round((Date.now() - t0) / 1000)} s)`);
}, 60_000);
const vmRes = await vmRun;
clearInterval(ticker);
if (vm.length) process.stdout.write(`\ntest-run: the VM files' output\n${vmRes.out}`);
const h = counts(hostRes.out),
  v = counts(vmRes.out);
const secs = Math.round((Date.now() - t0) / 1000);
console.log(
  `\ntest-run: ${h.passed + v.passed} of ${h.total + v.total} passed, ${h.skipped + v.skipped} skipped ` +
    `(host ${h.passed}/${h.total}, VM ${v.passed}/${v.total}) in ${secs} s`,
);
process.exitCode = hostRes.code || vmRes.code;
