// `--workers auto`: the cores the process may use (src/proxy/workers.ts usableCores). Its affinity, capped
// by a cgroup CPU quota on its cgroup or an ancestor (a container's CPU limit, which affinity does not show),
// read from fake /proc and /sys trees (cgroup v1 and v2, bad content ignored) and from a real cgroup v1 CPU
// quota the test sets on a child process (root, the cpu controller mounted; a counted SKIP otherwise).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { usableCores } from "../src/proxy/workers.ts";
import { isRoot, skip } from "./helpers/skip.ts";

const cpus = availableParallelism();

function tree(files: Record<string, string>): string {
  const root = `${mkdtempSync(`${tmpdir()}/wasmvs-cores-`)}/`;
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(`${root}${f}`), { recursive: true });
    writeFileSync(`${root}${f}`, text);
  }
  return root;
}
function coresIn(files: Record<string, string>): number {
  const root = tree(files);
  try {
    return usableCores(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test("no cgroup quota: the CPUs the process may run on", () => {
  assert.is(coresIn({}), cpus);
  assert.is(coresIn({ "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n" }), cpus);
});

test("a cgroup v2 quota on the process's cgroup or an ancestor caps it, rounded up", () => {
  const own = { "proc/self/cgroup": "0::/kubepods/pod1/c1\n" };
  assert.is(coresIn({ ...own, "sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "100000 100000\n" }), 1);
  assert.is(coresIn({ ...own, "sys/fs/cgroup/kubepods/pod1/cpu.max": "50000 100000\n" }), 1);
  assert.is(coresIn({ ...own, "sys/fs/cgroup/kubepods/cpu.max": `${150000 * cpus} 100000\n` }), cpus);
  assert.is(coresIn({ ...own, "sys/fs/cgroup/unified/kubepods/pod1/c1/cpu.max": "100000 100000" }), 1);
});

test("a cgroup v1 quota (cpu or cpu,cpuacct) caps it; -1 is none", () => {
  const v1 = { "proc/self/cgroup": "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n" };
  const at = "sys/fs/cgroup/cpu,cpuacct/docker/abc";
  assert.is(coresIn({ ...v1, [`${at}/cpu.cfs_quota_us`]: "100000", [`${at}/cpu.cfs_period_us`]: "100000" }), 1);
  assert.is(coresIn({ ...v1, [`${at}/cpu.cfs_quota_us`]: "-1", [`${at}/cpu.cfs_period_us`]: "100000" }), cpus);
  const up = "sys/fs/cgroup/cpu/docker";
  assert.is(coresIn({ ...v1, [`${up}/cpu.cfs_quota_us`]: "20000", [`${up}/cpu.cfs_period_us`]: "100000" }), 1);
});

test("garbage, huge, zero and path tricks are ignored, never below 1", () => {
  const own = { "proc/self/cgroup": "0::/a\n" };
  for (const bad of ["", "x y", "0 100000", "100000 0", "-5 100000", "1e9 1", "__proto__ constructor", "9".repeat(40)])
    assert.is(coresIn({ ...own, "sys/fs/cgroup/a/cpu.max": bad }), cpus, `cpu.max '${bad}'`);
  assert.is(coresIn({ "proc/self/cgroup": "garbage\n::\n0::relative\n0::/../../etc\n" }), cpus);
  assert.is(coresIn({ ...own, "sys/fs/cgroup/a/cpu.max": "1 1000000" }), 1, "a tiny quota is still one core");
});

// a real cgroup: the kernel's own files, a child process placed in it before it starts
const CPU_V1 = "/sys/fs/cgroup/cpu";
const why = !isRoot()
  ? "not root (a cgroup of its own needs it)"
  : !existsSync(`${CPU_V1}/cpu.cfs_quota_us`)
    ? `no cgroup v1 cpu controller at ${CPU_V1} (this machine's layout; the fake trees above cover v2)`
    : "";
if (why) skip(import.meta.url, "a real cgroup v1 CPU quota caps --workers auto", why);
else
  test("a real cgroup v1 CPU quota caps --workers auto", () => {
    const dir = `${CPU_V1}/wasmvs-cores-${process.pid}`;
    mkdirSync(dir);
    try {
      writeFileSync(`${dir}/cpu.cfs_period_us`, "100000");
      const src = fileURLToPath(new URL("../src/proxy/workers.ts", import.meta.url));
      const run = (quota: number) => {
        writeFileSync(`${dir}/cpu.cfs_quota_us`, String(quota));
        const js = `import(${JSON.stringify(src)}).then((m) => process.stdout.write(\`\${m.usableCores()}\\n\`))`;
        const r = spawnSync(
          "sh",
          ["-c", `echo $$ > ${dir}/cgroup.procs && exec "$0" --import tsx -e "$1"`, process.execPath, js],
          { encoding: "utf8", timeout: 60_000 },
        );
        assert.is(r.status, 0, r.stderr);
        assert.match(r.stdout, /^\d+\n$/, `${r.stdout}${r.stderr}`);
        return Number(r.stdout);
      };
      assert.is(run(100000), 1, "1 core's quota");
      assert.is(run(-1), cpus, "no quota");
    } finally {
      rmdirSync(dir);
    }
  });

test.run();
