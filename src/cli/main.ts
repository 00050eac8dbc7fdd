// The wasmvs command line: demo, trace, ui today; the ipvsadm-compatible verbs, proxy, sync, sim and
// bench arrive with their issues.
import { readFileSync } from "node:fs";
import type { IpvsTarget } from "../model/target.ts";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const USAGE = `usage: wasmvs <command>

commands:
  -A|-E|-D|-C|-a|-e|-d|-L|-Z|-S|-R|--set ...
             ipvsadm's commands and output, against kernel IPVS (default) or a running proxy
             (--target proxy); wasmvs ipvsadm -h lists them
  sync       mirror a desired state into kernel IPVS (once, or as a loop); --check prints drift
  demo       every IPVS scheduler choosing for the same burst of connections (what npm start runs)
  trace      each scheduling decision with the state that made it (wasmvs trace --help)
  ui         the scheduler visualiser on http://127.0.0.1:8377/ (same core.wasm)
  proxy      the userspace forwarder: wasmvs proxy -c proxy.yaml | check | reload | status (docs/proxy.md)
  sim        synthetic traffic through the data plane, costed under kube-proxy's modes (wasmvs sim --help)
  bench      bench scaling [--full]: kube-proxy modes measured on this kernel and modelled to 100k Services
  k8s        Kubernetes input: map | rules | synth | watch (kube-proxy's IPVS mapping; iptables/nftables texts)
  version    print the version
  help       this text

Benchmarks: npm run bench   Fuzzing: npm run fuzz   Tests: npm test
`;

// Each command's modules are imported when it runs, so a quick one (-Ln, help) does not load the Kubernetes
// client, prom-client or the simulator.

// The ipvsadm-compatible verbs run against a target: kernel IPVS over netlink, or a running proxy's
// control socket. "--target kernel|proxy" may appear anywhere on the line.
async function ipvsadmVerbs(argv: string[]): Promise<number> {
  let targetName = process.env.WASMVS_TARGET ?? "kernel";
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--target") targetName = argv[++i] ?? "";
    else if (argv[i].startsWith("--target=")) targetName = argv[i].slice(9);
    else args.push(argv[i]);
  }
  const { runIpvsadm, wasmvsIpvsadmUsage } = await import("./ipvsadm.ts");
  if (args[0] === "-h" || args[0] === "--help" || args.length === 0) { process.stdout.write(wasmvsIpvsadmUsage("wasmvs")); return 0; }
  let target: IpvsTarget;
  try {
    if (targetName === "kernel") target = await (await import("../kernel/target.ts")).KernelTarget.open();
    else if (targetName === "proxy") target = await (await import("../proxy/control.ts")).ProxyTarget.open();
    else { process.stderr.write(`wasmvs: --target must be kernel or proxy, not '${targetName}'\n`); return 2; }
  } catch (e) {
    process.stderr.write(`wasmvs: ${(e as Error).message}\n`);
    return 3;
  }
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return await runIpvsadm(args, target, process.stdout, process.stderr, { program: "wasmvs", version: pkg.version });
  } finally {
    await target.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? "demo";
  if (cmd === "ipvsadm") return ipvsadmVerbs(argv.slice(1));
  if (cmd.startsWith("-") && !["-h", "--help", "-V", "--version"].includes(cmd)) return ipvsadmVerbs(argv);
  switch (cmd) {
    case "demo":
      return (await import("./demo.ts")).demo();
    case "trace":
      return (await import("./trace.ts")).runTrace(argv.slice(1));
    case "ui":
      return (await import("./ui.ts")).runUi(argv.slice(1));
    case "sync":
      return (await import("./sync.ts")).runSync(argv.slice(1));
    case "proxy":
      return (await import("../proxy/cli.ts")).proxyMain(argv.slice(1));
    case "sim":
      return (await import("../sim/cli.ts")).simCommand(argv.slice(1));
    case "bench": {
      if (argv[1] !== "scaling") { process.stderr.write("usage: wasmvs bench scaling [--full] [--help]\n"); return 2; }
      const script = fileURLToPath(new URL("../../bench/scaling.ts", import.meta.url));
      return spawnSync(process.execPath, ["--import", "tsx", script, ...argv.slice(2)], { stdio: "inherit" }).status ?? 1;
    }
    case "k8s":
      return (await import("../k8s/cli.ts")).k8sCommand(argv.slice(1));
    case "version":
    case "--version":
    case "-V": {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
      process.stdout.write(`wasmvs ${pkg.version}\n`);
      return 0;
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`wasmvs: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}
