// The wasmvs command line: the ipvsadm-compatible verbs, and the commands below. Every command parses and
// checks its whole line (src/cli/args.ts; the ipvsadm verbs by ipvsadm's own rules) before it touches the
// kernel, a proxy or the disk: a usage error exits 2 with the command's usage, --help prints it to stdout.
import { readFileSync } from "node:fs";
import type { IpvsTarget } from "../model/target.ts";
import { parseOrExit, usageFailed, type CommandSpec } from "./args.ts";

const USAGE = `usage: wasmvs <command>

commands:
  -A|-E|-D|-C|-a|-e|-d|-L|-Z|-S|-R|--set ...
             ipvsadm's commands and output, against kernel IPVS (default) or a running proxy
             (--target proxy); wasmvs ipvsadm -h lists them
  sync       mirror a desired state into kernel IPVS (once, or as a loop); --check prints drift
  demo       every IPVS scheduler choosing for the same burst of connections (the default command)
  trace      each scheduling decision with the state that made it (wasmvs trace --help)
  ui         the scheduler visualiser on http://127.0.0.1:8377/ (same core.wasm)
  proxy      the userspace forwarder: wasmvs proxy -c proxy.yaml | check | reload | status (docs/proxy.md)
  sim        synthetic traffic through the data plane, costed under kube-proxy's modes (wasmvs sim --help)
  bench      bench scaling [--full]: kube-proxy modes measured on this kernel and modelled to 100k Services
  k8s        Kubernetes input: map | rules | synth | watch (kube-proxy's IPVS mapping; iptables/nftables texts)
  version    print the version
  help       this text (COMMAND --help: a command's own)

Benchmarks: npm run bench   Fuzzing: npm run fuzz   Tests: npm test
`;

// Each command's modules are imported when it runs, so a quick one (-Ln, help) does not load the Kubernetes
// client, prom-client or the simulator.

// The ipvsadm-compatible verbs run against a target: kernel IPVS over netlink, or a running proxy's
// control socket. "--target kernel|proxy" may appear anywhere on the line. The line (and for -R its input)
// is parsed and checked before the target is opened, so a bad flag or address is named, not met with "this
// kernel has no IPVS" or "cannot reach the proxy".
async function ipvsadmVerbs(argv: string[]): Promise<number> {
  let targetName = process.env.WASMVS_TARGET ?? "kernel";
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--target") targetName = argv[++i] ?? "";
    else if (argv[i].startsWith("--target=")) targetName = argv[i].slice(9);
    else args.push(argv[i]);
  }
  if (targetName !== "kernel" && targetName !== "proxy") {
    process.stderr.write(`wasmvs: --target must be kernel or proxy, not '${targetName.slice(0, 64)}'\n`);
    return 2;
  }
  const { prepareIpvsadm, runPrepared, wasmvsIpvsadmUsage } = await import("./ipvsadm.ts");
  if (args.length === 0) {
    process.stdout.write(wasmvsIpvsadmUsage("wasmvs"));
    return 0;
  }
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  const opts = { program: "wasmvs", version: pkg.version, explain: true };
  const prepared = await prepareIpvsadm(args, process.stderr, opts);
  if (typeof prepared === "number") return prepared;
  if (prepared.cmd.kind === "help" || prepared.cmd.kind === "version") {
    // they print text (naming the target for -v) and never reach the target: it is not opened
    return runPrepared(prepared, { name: targetName } as IpvsTarget, process.stdout, process.stderr, opts);
  }
  let target: IpvsTarget;
  try {
    if (targetName === "kernel") target = await (await import("../kernel/target.ts")).KernelTarget.open();
    else target = await (await import("../proxy/control.ts")).ProxyTarget.open();
  } catch (e) {
    process.stderr.write(`wasmvs: ${(e as Error).message}\n`);
    return 3;
  }
  try {
    return await runPrepared(prepared, target, process.stdout, process.stderr, opts);
  } finally {
    await target.close();
  }
}

const io = { out: process.stdout, err: process.stderr };
const TOP: CommandSpec = { name: "wasmvs", usage: USAGE, flags: {} };
const DEMO: CommandSpec = {
  name: "wasmvs demo",
  flags: {},
  usage:
    "usage: wasmvs demo\n\nEvery IPVS scheduler choosing for the same burst of 24 connections, through the WASM " +
    "data plane.\n",
};
const VERSION: CommandSpec = { name: "wasmvs version", flags: {}, usage: "usage: wasmvs version\n" };

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? "demo";
  const rest = argv.slice(1);
  if (cmd === "ipvsadm") return ipvsadmVerbs(rest);
  if (cmd.startsWith("-") && !["-h", "--help", "-V", "--version"].includes(cmd)) return ipvsadmVerbs(argv);
  switch (cmd) {
    case "demo": {
      const p = parseOrExit(rest, DEMO, io);
      return typeof p === "number" ? p : (await import("./demo.ts")).demo();
    }
    case "trace":
      return (await import("./trace.ts")).runTrace(rest);
    case "ui":
      return (await import("./ui.ts")).runUi(rest);
    case "sync":
      return (await import("./sync.ts")).runSync(rest);
    case "proxy":
      return (await import("./proxy.ts")).proxyMain(rest);
    case "sim":
      return (await import("./sim.ts")).simCommand(rest);
    case "bench":
      return (await import("./bench.ts")).benchCommand(rest);
    case "k8s":
      return (await import("./k8s.ts")).k8sCommand(rest);
    case "version":
    case "--version":
    case "-V": {
      const p = parseOrExit(rest, VERSION, io);
      if (typeof p === "number") return p;
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
      process.stdout.write(`wasmvs ${pkg.version}\n`);
      return 0;
    }
    case "help":
    case "--help":
    case "-h": {
      const p = parseOrExit(rest, { ...TOP, positionals: { max: 1 } }, io);
      if (typeof p === "number") return p;
      // wasmvs help COMMAND: the command's own usage
      if (p.positionals.length) return main([p.positionals[0], "--help"]);
      process.stdout.write(USAGE);
      return 0;
    }
    default:
      return usageFailed(TOP, `unknown command '${cmd.slice(0, 64)}'`, io);
  }
}
