// `wasmvs k8s …`: the Kubernetes front end from the command line, one function for src/cli/main.ts to call.
//   wasmvs k8s map   OBJECTS [--config=KPC.yaml] --node-name=N --node-ip=IP[,IP…] [--json]
//   wasmvs k8s rules OBJECTS --mode=ipvs|iptables|nftables [--family=IPv4|IPv6] [--config=…] --node-name=N --node-ip=…
//   wasmvs k8s synth --services=N [--endpoints=N] [--seed=S] [--dual-stack=0.2]
//   wasmvs k8s watch [--kubeconfig=PATH] [--config=…] --node-name=N --node-ip=…     (prints each sync)
// OBJECTS is a file of `kubectl get services,endpointslices -A -o json|yaml` output, or "-" for stdin.
import { readFileSync } from "node:fs";
import type { Family } from "./ip.ts";
import { mapCluster, iptablesFor, nftablesFor, readProxyConfig, generateCluster, KUBE_PROXY_VERSIONS, DEFAULT_KUBE_PROXY_VERSION, type ProxyConfig, type KubeProxyVersion } from "./index.ts";
import { parseCIDR } from "./ip.ts";

const USAGE = `usage: wasmvs k8s map|rules|synth|watch …
  map   OBJECTS --node-name=N --node-ip=IP[,IP] [--config=KPC.yaml] [--json]   virtual services as ipvsadm -Sn lines (or JSON)
  rules OBJECTS --mode=ipvs|ipset|iptables|nftables [--family=IPv4|IPv6] …    the text kube-proxy would restore
        [--kube-proxy-version=${KUBE_PROXY_VERSIONS.join("|")}] (nftables; default ${DEFAULT_KUBE_PROXY_VERSION})
        [--service-cidrs=CIDR[,CIDR]] (nftables: traffic to unallocated ClusterIPs in them is dropped)
        [--cluster-cidr=CIDR[,CIDR]] [--nodeport-addresses=primary|CIDR[,CIDR]] (override --config's)
        [--nfacct=on|off] (iptables: kube-proxy's nfacct counters exist; default off)
        [--random-fully=on|off] (iptables: MASQUERADE --random-fully; default on)
  synth --services=N [--endpoints=N] [--seed=S] [--dual-stack=F]              a synthetic cluster as kubectl JSON
  watch [--kubeconfig=PATH] --node-name=N --node-ip=IP[,IP] [--config=…]       follow a cluster, one line per sync
`;

class UsageError extends Error {}

// every flag some subcommand reads; anything else is a usage error, not silently ignored
const FLAGS = new Set(["config", "node-name", "node-ip", "json", "family", "mode", "kube-proxy-version",
  "service-cidrs", "cluster-cidr", "nodeport-addresses", "nfacct", "random-fully", "services", "endpoints", "seed",
  "dual-stack", "kubeconfig"]);

function onOff(name: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === "on" || v === "off") return v === "on";
  throw new UsageError(`--${name}: ${JSON.stringify(v.slice(0, 20))} is not on or off`);
}

export async function k8sCommand(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const [sub, ...rest] = argv;
  const opt = (k: string) => rest.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
  const pos = rest.filter((a) => !a.startsWith("--"));
  let config: Partial<ProxyConfig> = {};
  const cfgPath = opt("config");
  if (cfgPath) {
    const r = readProxyConfig(readFileSync(cfgPath, "utf8"), cfgPath);
    for (const e of r.errors) err.write(`wasmvs k8s: ${e.message}\n`);
    config = r.config;
  }
  // flags that reproduce a node's kube-proxy: checked before anything is read
  const cidrs = (name: string): string[] | undefined => {
    const v = opt(name);
    if (v === undefined) return undefined;
    const list = v.split(",").map((x) => x.trim()).filter(Boolean);
    const bad = list.filter((c) => !parseCIDR(c));
    if (!list.length || bad.length) throw new UsageError(`--${name}: ${bad.length ? `not a CIDR: ${bad.join(", ")}` : "empty"}`);
    return list;
  };
  let serviceCIDRs: string[] | undefined, version: KubeProxyVersion = DEFAULT_KUBE_PROXY_VERSION;
  let iptablesOpts = {};
  try {
    const unknown = rest.filter((a) => a.startsWith("--") && !FLAGS.has(a.slice(2).split("=")[0]));
    if (unknown.length) throw new UsageError(`unknown flag ${JSON.stringify(unknown[0].slice(0, 40))}`);
    iptablesOpts = {
      nfacct: onOff("nfacct", opt("nfacct"), false),
      randomFully: onOff("random-fully", opt("random-fully"), true),
    };
    serviceCIDRs = cidrs("service-cidrs");
    const cc = cidrs("cluster-cidr");
    if (cc) config = { ...config, clusterCIDRs: cc };
    const npa = opt("nodeport-addresses");
    if (npa !== undefined) config = { ...config, nodePortAddresses: npa === "primary" ? ["primary"] : cidrs("nodeport-addresses")! };
    const v = opt("kube-proxy-version");
    if (v !== undefined) {
      if (!(KUBE_PROXY_VERSIONS as readonly string[]).includes(v)) throw new UsageError(`--kube-proxy-version: ${JSON.stringify(v.slice(0, 20))} is not one of ${KUBE_PROXY_VERSIONS.join(", ")}`);
      version = v as KubeProxyVersion;
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`wasmvs k8s: ${e.message}\n${USAGE}`);
    return 2;
  }
  const node = { nodeName: opt("node-name") ?? config.hostnameOverride ?? "", addresses: (opt("node-ip") ?? "").split(",").filter(Boolean) };
  const read = (p: string | undefined) => readFileSync(p === undefined || p === "-" ? 0 : p, "utf8");
  switch (sub) {
    case "map": {
      const m = mapCluster(read(pos[0]), { node, config });
      for (const e of m.errors) err.write(`wasmvs k8s: ${e.message}\n`);
      if (rest.includes("--json")) out.write(JSON.stringify({ desired: m.desired, sysctls: m.sysctls, excludeCIDRs: m.excludeCIDRs, bind: Object.fromEntries(Object.entries(m.ipvs).map(([f, s]) => [f, s!.bindAddrs])) }, null, 2) + "\n");
      else for (const s of m.desired.services) {
        const a = s.addr!.includes(":") ? `[${s.addr}]:${s.port}` : `${s.addr}:${s.port}`;
        const flag = s.protocol === "tcp" ? "-t" : s.protocol === "udp" ? "-u" : "--sctp-service";
        out.write(`-A ${flag} ${a} -s ${s.scheduler}${s.flags.length ? ` -b ${s.flags.join(",")}` : ""}${s.persistent !== undefined ? ` -p ${s.persistent} -M ${s.netmask}` : ""}\n`);
        for (const r of s.realServers) out.write(`-a ${flag} ${a} -r ${r.addr.includes(":") ? `[${r.addr}]:${r.port}` : `${r.addr}:${r.port}`} -m -w ${r.weight}\n`);
      }
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
      else if (mode === "nftables") out.write(nftablesFor(m.index, fam, serviceCIDRs, version).text);
      else { err.write(`wasmvs k8s: unknown --mode '${mode}' (ipvs, ipset, iptables, nftables)\n`); return 2; }
      return m.errors.length ? 1 : 0;
    }
    case "synth": {
      const n = Number(opt("services") ?? "1000");
      const e = opt("endpoints");
      out.write(JSON.stringify(generateCluster({ services: n, endpoints: e === undefined ? "realistic" : Number(e), seed: Number(opt("seed") ?? "1"), dualStackFraction: Number(opt("dual-stack") ?? "0") })) + "\n");
      return 0;
    }
    case "watch": {
      const { KubeWatcher } = await import("./watch.ts");
      const w = new KubeWatcher({ kubeconfig: opt("kubeconfig") ?? (config.kubeconfig || undefined), node, config,
        onSync: (u) => out.write(`${new Date().toISOString()} ${u.reason}: ${u.desired.services.length} virtual services, ${u.changes.reduce((n, c) => n + c.added.length + c.updated.length + c.removed.length, 0)} changed\n`),
        onError: (e, what) => err.write(`wasmvs k8s: ${what}: ${String(e)}\n`) });
      await w.start();
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
      await w.stop();
      return 0;
    }
    default:
      (sub ? err : out).write(USAGE);
      return sub ? 2 : 0;
  }
}
