#!/usr/bin/env node
// npm test's runner. The kernel VM's files spend their time in qemu (software emulation, one core each), so
// they run in two lanes instead of after the host's files: the first beside the host's files, the second
// once those end; each lane boots its VMs from a cache of its own (the VM script serialises runs that share
// one), and takes the next file when its last ends, longest first. The host's files stream as they run;
// each VM file prints a line when it ends and its whole output at the end (uvu's dots would interleave).
// Exit status: non-zero if any file failed; one count at the end.
//   node bin/test-run.mjs [PATTERN]   (PATTERN: a regex on file names, as uvu takes; default every *.test.ts)
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const pattern = new RegExp(process.argv[2] ?? "\\.test\\.ts$");
// a file that boots the kernel VM names one of these (vm-share.ts, director-pair.ts, runInVm, scaling's measureVm)
const VM_MARKS = /ipvs-vm|runInVm|vmShare|director-pair|measureVm/;
// the VM files that take longest, started first so the two lanes end together (the rest follow by name)
const LONGEST = ["proxy-sync-vm", "kernel-sync-faults", "scaling", "kernel-failover", "kernel-daemon", "kernel-live"];
const VM_SCRIPT = join(ROOT, "..", "shared", "ipvs-vm", "ipvs-vm.sh");
const CACHE = process.env.IPVSVM_DIR ?? "/tmp/ipvsvm";

const files = readdirSync(join(ROOT, "test"))
  .filter((f) => pattern.test(f))
  .sort();
const rank = (f) => {
  const i = LONGEST.indexOf(f.replace(/\.test\.ts$/, ""));
  return i < 0 ? LONGEST.length : i;
};
const vm = files
  .filter((f) => VM_MARKS.test(readFileSync(join(ROOT, "test", f), "utf8")))
  .sort((a, b) => rank(a) - rank(b));
const host = files.filter((f) => !vm.includes(f));
const only = (list) => `^(${list.map((f) => f.replace(/[.+?^${}()|[\]\\-]/g, "\\$&")).join("|")})$`;

function uvu(list, stream, env = process.env) {
  const p = spawn(process.execPath, ["--import", "tsx", "node_modules/uvu/bin.js", "test", only(list)], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const take = (d) => {
    out += d;
    if (stream) process.stdout.write(d);
  };
  p.stdout.on("data", take);
  p.stderr.on("data", take);
  return new Promise((resolve) => p.on("close", (code) => resolve({ code: code ?? 1, out })));
}

const counts = (out) => {
  // uvu's closing block, colours stripped: "Total: N", "Passed: N", "Skipped: N"
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts an ANSI colour code
  const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
  const n = (k) => Number(plain.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1] ?? 0);
  return { total: n("Total"), passed: n("Passed"), skipped: n("Skipped") };
};

// The second lane's cache: the first's, hard-linked (kernel and initramfs built once). Before that, one VM
// run in the first lane installs what the VM script needs and builds its cache, so two lanes never install
// packages or download the kernel at once on a fresh machine.
async function secondCache() {
  const dir = `${CACHE}-lane2`;
  if (!existsSync(VM_SCRIPT)) return dir; // the files themselves say why they cannot run (a counted SKIP)
  // a failure here is met again by the files, which report it
  await new Promise((resolve) => spawn(VM_SCRIPT, ["true"], { stdio: "ignore" }).on("close", resolve));
  if (!existsSync(dir) && existsSync(CACHE)) {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(CACHE)) {
      if (f === ".lock" || f.startsWith("run.") || f === "console.log") continue;
      try {
        execFileSync("cp", ["-al", join(CACHE, f), dir]);
      } catch {
        /* that part is built afresh */
      }
    }
  }
  return dir;
}

const t0 = Date.now();
const secs = () => Math.round((Date.now() - t0) / 1000);
console.log(
  `test-run: ${host.length} host file(s) here; ${vm.length} VM file(s) in two lanes, one beside them, one after`,
);
const vmResults = [];
const queue = [...vm];
async function lane(env) {
  for (let f = queue.shift(); f; f = queue.shift()) {
    const r = await uvu([f], false, env);
    const c = counts(r.out);
    vmResults.push({ file: f, ...r, ...c });
    console.log(`test-run: VM ${f}: ${c.passed} of ${c.total} passed${r.code ? " (FAILED)" : ""} (${secs()} s)`);
  }
}
// The second lane starts when the host's files end: never more than two busy processes on two cores (the
// timed tests, kernel-failover's streams and the fd budget's deadlines among them, failed with three).
const hostRun = host.length ? uvu(host, true) : Promise.resolve({ code: 0, out: "" });
const lanes = vm.length
  ? Promise.resolve().then(async () => {
      const second = vm.length > 1 ? await secondCache() : undefined;
      await Promise.all([
        lane(process.env),
        second && hostRun.then(() => lane({ ...process.env, IPVSVM_DIR: second })),
      ]);
    })
  : Promise.resolve();
const hostRes = await hostRun;
await lanes;
for (const r of vmResults) process.stdout.write(`\ntest-run: the output of VM file ${r.file}\n${r.out}`);
const h = counts(hostRes.out);
const v = vmResults.reduce(
  (a, r) => ({ total: a.total + r.total, passed: a.passed + r.passed, skipped: a.skipped + r.skipped }),
  {
    total: 0,
    passed: 0,
    skipped: 0,
  },
);
console.log(
  `\ntest-run: ${h.passed + v.passed} of ${h.total + v.total} passed, ${h.skipped + v.skipped} skipped ` +
    `(host ${h.passed}/${h.total}, VM ${v.passed}/${v.total}) in ${secs()} s`,
);
process.exitCode = hostRes.code || vmResults.find((r) => r.code)?.code || 0;
