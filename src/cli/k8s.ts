// `wasmvs k8s …`: the Kubernetes front end from the command line, one function for src/cli/main.ts to call.
//   wasmvs k8s map   OBJECTS [--config=KPC.yaml] --node-name=N --node-ip=IP[,IP…] [--json]
//   wasmvs k8s rules OBJECTS --mode=ipvs|iptables|nftables [--family=IPv4|IPv6] [--config=…]
//                    --node-name=N --node-ip=…
//   wasmvs k8s synth --services=N [--endpoints=N] [--seed=S] [--dual-stack=0.2]
//   wasmvs k8s watch [--kubeconfig=PATH] [--config=…] --node-name=N --node-ip=…     (prints each sync)
// OBJECTS is a file of `kubectl get services,endpointslices -A -o json|yaml` output, or "-" for stdin.
import { readFileSync } from "node:fs";
import type { Family } from "../k8s/ip.ts";
import {
  mapCluster,
  iptablesFor,
  nftablesFor,
  readProxyConfig,
  generateCluster,
  KUBE_PROXY_VERSIONS,
  DEFAULT_KUBE_PROXY_VERSION,
  type ProxyConfig,
  type MappedCluster,
  type KubeProxyVersion,
} from "../k8s/index.ts";
import { parseCIDR } from "../k8s/ip.ts";
import { checks, parseOrExit, usageFailed, type CommandSpec, type FlagSpec } from "./args.ts";

const USAGE = `usage: wasmvs k8s map|rules|synth|watch …
  map   OBJECTS --node-name=N --node-ip=IP[,IP] [--config=KPC.yaml] [--json]
        (prints the virtual services as ipvsadm -Sn lines, or JSON)
  rules OBJECTS --mode=ipvs|ipset|iptables|nftables [--family=IPv4|IPv6] …    the text kube-proxy would restore
        [--kube-proxy-version=${KUBE_PROXY_VERSIONS.join("|")}] (nftables; default ${DEFAULT_KUBE_PROXY_VERSION})
        [--service-cidrs=CIDR[,CIDR]] (nftables: traffic to unallocated ClusterIPs in them is dropped)
        [--cluster-cidr=CIDR[,CIDR]] [--nodeport-addresses=primary|CIDR[,CIDR]] (override --config's)
        [--nfacct=on|off] (iptables: kube-proxy's nfacct counters exist; default off)
        [--random-fully=on|off] (iptables: MASQUERADE --random-fully; default on)
  synth --services=N [--endpoints=N] [--seed=S] [--dual-stack=F]              a synthetic cluster as kubectl JSON
  watch [--kubeconfig=PATH] --node-name=N --node-ip=IP[,IP] [--config=…]       follow a cluster, one line per sync
`;

const cidrList = (v: string) => (parseCIDR(v) ? undefined : "not a CIDR");
const NODE = {
  "--node-name": { kind: "value", check: checks.nonEmpty },
  "--node-ip": { kind: "list", check: checks.ip },
  "--config": { kind: "value" },
} satisfies Record<string, FlagSpec>;
const NODE_RULES = {
  "--cluster-cidr": { kind: "list", check: cidrList },
  "--nodeport-addresses": { kind: "list", check: (v) => (v === "primary" ? undefined : cidrList(v)) },
} satisfies Record<string, FlagSpec>;
const RULES_FLAGS = {
  ...NODE_RULES,
  "--mode": { kind: "value", check: checks.oneOf(["ipvs", "ipset", "iptables", "nftables"]) },
  "--family": { kind: "value", check: checks.oneOf(["IPv4", "IPv6"]) },
  "--kube-proxy-version": { kind: "value", check: checks.oneOf(KUBE_PROXY_VERSIONS) },
  "--service-cidrs": { kind: "list", check: cidrList },
  "--nfacct": { kind: "value", check: checks.oneOf(["on", "off"]) },
  "--random-fully": { kind: "value", check: checks.oneOf(["on", "off"]) },
} satisfies Record<string, FlagSpec>;
const fraction = (v: string) => (/^(0(\.\d+)?|1(\.0+)?)$/.test(v) ? undefined : "not a fraction from 0 to 1");
const OBJECTS = { max: 1 }; // a file of kubectl output, or "-" (the default) for stdin
const SUBCOMMANDS: Record<string, Omit<CommandSpec, "name" | "usage">> = {
  map: { flags: { ...NODE, ...NODE_RULES, "--json": { kind: "flag" } }, positionals: OBJECTS },
  rules: { flags: { ...NODE, ...RULES_FLAGS }, positionals: OBJECTS },
  synth: {
    flags: {
      "--services": { kind: "value", check: checks.int(0, 1_000_000) },
      "--endpoints": { kind: "value", check: checks.int(0, 10_000) },
      "--seed": { kind: "value", check: checks.int(0, 0xffffffff) },
      "--dual-stack": { kind: "value", check: fraction },
    },
  },
  watch: { flags: { ...NODE, ...NODE_RULES, "--kubeconfig": { kind: "value" } } },
};

/** k8s map's output: the virtual services as ipvsadm -Sn lines, or (--json) with the sysctls and bind addresses. */
function writeMapped(m: MappedCluster, json: boolean, out: NodeJS.WritableStream): void {
  if (json)
    out.write(
      JSON.stringify(
        {
          desired: m.desired,
          sysctls: m.sysctls,
          excludeCIDRs: m.excludeCIDRs,
          bind: Object.fromEntries(Object.entries(m.ipvs).map(([f, s]) => [f, s!.bindAddrs])),
        },
        null,
        2,
      ) + "\n",
    );
  else
    for (const s of m.desired.services) {
      const vip = s.addr!.includes(":") ? `[${s.addr}]:${s.port}` : `${s.addr}:${s.port}`;
      const flag = s.protocol === "tcp" ? "-t" : s.protocol === "udp" ? "-u" : "--sctp-service";
      out.write(
        `-A ${flag} ${vip} -s ${s.scheduler}${s.flags.length ? ` -b ${s.flags.join(",")}` : ""}` +
          `${s.persistent !== undefined ? ` -p ${s.persistent} -M ${s.netmask}` : ""}\n`,
      );
      for (const r of s.realServers)
        out.write(
          `-a ${flag} ${vip} -r ${r.addr.includes(":") ? `[${r.addr}]:${r.port}` : `${r.addr}:${r.port}`} -m ` +
            `-w ${r.weight}\n`,
        );
    }
}

export async function k8sCommand(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const io = { out, err };
  const [sub, ...rest] = argv;
  const top = { name: "wasmvs k8s", usage: USAGE, flags: {} };
  // nothing, help or --help: the usage on stdout; anything else that is not a subcommand is a usage error
  if (sub === undefined || sub === "help" || sub === "-h" || sub === "--help") {
    out.write(USAGE);
    return 0;
  }
  if (!Object.hasOwn(SUBCOMMANDS, sub)) return usageFailed(top, `unknown subcommand '${sub.slice(0, 64)}'`, io);
  const a = parseOrExit(rest, { ...SUBCOMMANDS[sub], name: `wasmvs k8s ${sub}`, usage: USAGE }, io);
  if (typeof a === "number") return a;
  const opt = (k: string) => a.get(`--${k}`);
  const pos = a.positionals;
  let config: Partial<ProxyConfig> = {};
  const cfgPath = opt("config");
  if (cfgPath) {
    const r = readProxyConfig(readFileSync(cfgPath, "utf8"), cfgPath);
    for (const e of r.errors) err.write(`wasmvs k8s: ${e.message}\n`);
    config = r.config;
  }
  // flags that reproduce a node's kube-proxy (checked by the parser before anything was read)
  const list = (name: string) => (a.has(`--${name}`) ? a.all(`--${name}`) : undefined);
  const serviceCIDRs = list("service-cidrs");
  const cc = list("cluster-cidr");
  if (cc) config = { ...config, clusterCIDRs: cc };
  const npa = list("nodeport-addresses");
  if (npa) config = { ...config, nodePortAddresses: npa.includes("primary") ? ["primary"] : npa };
  const version = (opt("kube-proxy-version") ?? DEFAULT_KUBE_PROXY_VERSION) as KubeProxyVersion;
  const node = { nodeName: opt("node-name") ?? config.hostnameOverride ?? "", addresses: a.all("--node-ip") };
  const onOff = (name: string, dflt: boolean) => (a.has(`--${name}`) ? a.get(`--${name}`) === "on" : dflt);
  const iptablesOpts = { nfacct: onOff("nfacct", false), randomFully: onOff("random-fully", true) };
  const read = (p: string | undefined) => readFileSync(p === undefined || p === "-" ? 0 : p, "utf8");
  switch (sub) {
    case "map": {
      const m = mapCluster(read(pos[0]), { node, config });
      for (const e of m.errors) err.write(`wasmvs k8s: ${e.message}\n`);
      writeMapped(m, a.has("--json"), out);
      return m.errors.length ? 1 : 0;
    }
    case "rules": {
      const fam = (opt("family") ?? "IPv4") as Family;
      const m = mapCluster(read(pos[0]), { node, config, families: [fam] });
      for (const e of m.errors) err.write(`wasmvs k8s: ${e.message}\n`);
      const mode = opt("mode") ?? "ipvs";
      if (mode === "ipvs") out.write(m.ipvs[fam]!.iptablesInstall);
      else if (mode === "ipset") out.write(m.ipvs[fam]!.ipsetRestore);
      else if (mode === "iptables") out.write(iptablesFor(m.index, fam, iptablesOpts).text);
      else out.write(nftablesFor(m.index, fam, serviceCIDRs, version).text);
      return m.errors.length ? 1 : 0;
    }
    case "synth": {
      const n = Number(opt("services") ?? "1000");
      const e = opt("endpoints");
      out.write(
        JSON.stringify(
          generateCluster({
            services: n,
            endpoints: e === undefined ? "realistic" : Number(e),
            seed: Number(opt("seed") ?? "1"),
            dualStackFraction: Number(opt("dual-stack") ?? "0"),
          }),
        ) + "\n",
      );
      return 0;
    }
    case "watch": {
      const { KubeWatcher } = await import("../k8s/watch.ts");
      const w = new KubeWatcher({
        kubeconfig: opt("kubeconfig") ?? (config.kubeconfig || undefined),
        node,
        config,
        onSync: (u) =>
          out.write(
            `${new Date().toISOString()} ${u.reason}: ${u.desired.services.length} virtual services, ` +
              `${u.changes.reduce((n, c) => n + c.added.length + c.updated.length + c.removed.length, 0)} ` +
              `changed\n`,
          ),
        onError: (e, what) => err.write(`wasmvs k8s: ${what}: ${String(e)}\n`),
      });
      await w.start();
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
      await w.stop();
      return 0;
    }
    default:
      return 0;
  }
}
