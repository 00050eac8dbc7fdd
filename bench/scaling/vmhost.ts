// The whole benchmark run inside ../shared/ipvs-vm, the VM playing "a host with IPVS": proof that the host
// path (every mode, IPVS mode included) works on a kernel that has IPVS, which the development machines'
// kernel does not. The VM brings ipvsadm, ipset and iptables; this adds what the other modes need, read-only
// over extra 9p mounts at the same paths: the project's node_modules (the worktree's may be a symlink out of
// the shared project directory) and a tools directory with nft, ethtool (their libraries beside them) and
// the connector compiled on the host (the VM has no C compiler).
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, realpathSync, rmSync, existsSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connector } from "./netns.ts";
import { VM_SCRIPT, modulesMount } from "./vm.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface VmHostRun {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
  summary: string;
  leftovers: string[];
}

/** Copies a binary and the shared libraries ldd names into dir/bin and dir/lib. */
function stage(bin: string, dir: string): void {
  copyFileSync(bin, join(dir, "bin", basename(bin)));
  const ldd = spawnSync("ldd", [bin], { encoding: "utf8" }).stdout ?? "";
  for (const m of ldd.matchAll(/=> (\/\S+)/g)) {
    const dst = join(dir, "lib", basename(m[1]));
    if (!existsSync(dst)) copyFileSync(realpathSync(m[1]), dst);
  }
}

const which = (c: string) => spawnSync("sh", ["-c", `command -v ${c}`], { encoding: "utf8" }).stdout.trim();

/** Why the benchmark cannot run in the VM as a host, or "". */
export function vmHostSkipReason(): string {
  if (!existsSync(VM_SCRIPT)) return `${VM_SCRIPT} is missing`;
  if (process.getuid?.() !== 0) return "not root (the VM script installs qemu with apt-get on first use)";
  const missing = ["nft", "ethtool", "ldd"].filter((c) => !which(c));
  if (missing.length) return `missing ${missing.join(", ")} on the host (they are copied into the VM)`;
  if (connector().kind !== "c")
    return "no C compiler on the host for the connector (the Node connector under qemu TCG is too slow)";
  return "";
}

/** How much slower than the host the bench's fixed waits are allowed to be inside the VM (qemu TCG). */
export const VM_TIME_FACTOR = 6;

/** The work one run in the VM is asked for (what its command line sets). */
export interface VmHostWork {
  services: number[];
  kernelModes: number;
  proxyModes: number; // wasmvs socket and packet mode
  connects: number;
  cpuConnects: number;
  simPoints: number;
  simConnections: number;
}

/**
 * A time limit for one run in the VM that scales with its work and with the host's load: an estimate in seconds
 * under qemu TCG on an idle host (fitted to runs at 20 Services: 474 s at load 4, 551 s at load 22 on 2 cores,
 * every mode), times 3, and times the load per core over 4 when busier than that; 600 s at least.
 */
export function vmHostLimitS(w: VmHostWork): number {
  const perN = w.services.reduce(
    (t, n) =>
      t +
      w.kernelModes * (20 + 0.02 * n + 0.1 * (3 * w.connects + 2 * w.cpuConnects)) +
      w.proxyModes * (40 + 0.01 * n + 0.1 * (4 * w.connects + 2 * w.cpuConnects)),
    0,
  );
  const est = 90 + perN + w.simPoints * (15 + 0.002 * w.simConnections);
  const busy = Math.max(1, loadavg()[0] / Math.max(1, cpus().length) / 4);
  return Math.max(600, Math.round(3 * est * busy));
}

/** Runs `bench/scaling.ts ARGS --out=/tmp/...` inside the VM and brings back its exit status, output, the
 * report's scaling.json and summary.md, and any /tmp/wasmvs-xtables-*.lock it left behind. */
export async function benchInVm(
  args: string[],
  o: { timeoutS?: number; log?: (s: string) => void } = {},
): Promise<VmHostRun> {
  // the proxy modes start `wasmvs proxy` inside: from a current dist/cli, not from the TypeScript sources (which
  // under qemu TCG took over two minutes to answer); bin/wasmvs.js picks dist/cli when it is newer than src/
  const build = spawnSync(process.execPath, [join(root, "bin/build-cli.mjs")], { encoding: "utf8", cwd: root });
  if (build.status !== 0) throw new Error(`npm run build:cli failed: ${(build.stderr ?? "").slice(-1500)}`);
  const tools = join(tmpdir(), `wasmvs-vmhost-${process.pid}`);
  rmSync(tools, { recursive: true, force: true });
  mkdirSync(join(tools, "bin"), { recursive: true });
  mkdirSync(join(tools, "lib"), { recursive: true });
  try {
    for (const c of ["nft", "ethtool"]) stage(which(c), tools);
    const conn = connector().cmd[0];
    copyFileSync(conn, join(tools, "bin", basename(conn)));
    const nm = modulesMount();
    const out = "/tmp/wasmvs-vmhost-report";
    const cmd = [
      `${nm.mount}mkdir -p ${tools} ${join(tmpdir(), "wasmvs-scaling")}`,
      `mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro wvstools ${tools}`,
      `cp ${tools}/bin/${basename(conn)} ${conn}`,
      // qemu TCG: the bench's fixed waits (backends' and the proxy's start) get VM_TIME_FACTOR times longer
      `export PATH=${tools}/bin:$PATH LD_LIBRARY_PATH=${tools}/lib WASMVS_BENCH_TIME_FACTOR=${VM_TIME_FACTOR}`,
      `node --import tsx bench/scaling.ts ${args.join(" ")} --out=${out}; rc=$?`,
      `echo "@@LEFTOVERS $(ls /tmp/wasmvs-xtables-*.lock 2>/dev/null | tr '\\n' ' ')"`,
      `echo @@JSON; cat ${out}/scaling.json; echo @@SUMMARY; cat ${out}/summary.md; echo @@END; exit $rc`,
    ]
      .join(" && ")
      .replace("; rc=$? &&", "; rc=$?;");
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      IPVSVM_SHARE: root,
      IPVSVM_MEM: process.env.IPVSVM_MEM ?? "2048",
      IPVSVM_TIMEOUT: String(o.timeoutS ?? 900),
      IPVSVM_QEMU_EXTRA:
        `${nm.qemu} -fsdev local,id=wvst,path=${tools},security_model=none,readonly=on -device ` +
        `virtio-9p-pci,fsdev=wvst,mount_tag=wvstools`,
    };
    delete env.IPVSVM_MODULES;
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(VM_SCRIPT, [cmd], { env, stdio: ["ignore", "pipe", "pipe"] });
      let so = "",
        se = "";
      p.stdout.setEncoding("utf8");
      p.stderr.setEncoding("utf8");
      p.stdout.on("data", (d: string) => {
        so += d;
        for (const l of d.split("\n")) if (l.startsWith("[")) o.log?.(l);
      });
      p.stderr.on("data", (d: string) => {
        se += d;
        for (const l of d.split("\n")) if (l.trim()) o.log?.(l);
      });
      p.on("exit", (c) => resolve({ code: c ?? 125, stdout: so, stderr: se }));
    });
    const between = (a: string, b: string) => {
      const i = stdout.indexOf(a),
        j = stdout.indexOf(b, i + 1);
      return i < 0 || j < 0 ? "" : stdout.slice(i + a.length, j).trim();
    };
    let json: any = null;
    try {
      json = JSON.parse(between("@@JSON\n", "@@SUMMARY"));
    } catch {
      /* the run failed before writing it: code and output say why */
    }
    const lo = /@@LEFTOVERS ?(.*)/.exec(stdout)?.[1].trim() ?? "";
    return {
      code,
      stdout,
      stderr,
      json,
      summary: between("@@SUMMARY\n", "@@END"),
      leftovers: lo ? lo.split(/\s+/) : [],
    };
  } finally {
    rmSync(tools, { recursive: true, force: true });
  }
}
