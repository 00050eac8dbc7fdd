// Kubernetes mapping at scale: 10k Services × 10 endpoints mapped to kube-proxy's IPVS tables (virtual
// services, ipsets, kube-ipvs0 addresses), then single changes at 10k through the incremental index: one
// EndpointSlice update, and adding one Service with its slice. Time, peak memory, and the ratio of one change
// to the full mapping, beside kube-proxy nftables' published 141 ms to add one Service at 10k Services.
//   node --import tsx bench/k8s.ts [--services=10000] [--endpoints=10] [--quick] [--out=report]
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ClusterIndex, generateCluster, iptablesFor, nftablesFor } from "../src/k8s/index.ts";
import { statOf, type Stat } from "./lib/measure.ts";
import { barChartSvg, type Figure, type Target } from "./lib/report.ts";
import type { GroupResult } from "./lib/context.ts";
import { fmtStat } from "./lib/progress.ts";

export interface K8sBenchOptions {
  services?: number;
  endpoints?: number;
  quick?: boolean;
  log?: (s: string) => void;
}

// kube-proxy nftables, one Service added at 10k Services (KEP-3866 / kubernetes.io blog)
const NFT_PUBLISHED_ADD_ONE_MS = 141;

type Obj = ReturnType<typeof generateCluster>["items"][number];

// A fresh index fed every object, then the whole desired state read out, fullRuns times; the last index is kept.
function timeFullMapping(
  objs: Obj[],
  node: { nodeName: string; addresses: string[] },
  config: { clusterCIDRs: string[] },
  fullRuns: number,
  log: (s: string) => void,
) {
  const gc = (globalThis as { gc?: () => void }).gc;
  const fullMs: number[] = [];
  let index: ClusterIndex | undefined;
  let heapDelta = 0,
    vsCount = 0;
  for (let r = 0; r < fullRuns; r++) {
    index = undefined;
    gc?.();
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    index = new ClusterIndex({ node, config, families: ["IPv4"] });
    for (const x of objs) index.apply(x);
    vsCount = index.desiredState().services.length;
    fullMs.push(performance.now() - t0);
    gc?.();
    heapDelta = process.memoryUsage().heapUsed - heap0;
    log(`k8s: full mapping run ${r + 1}/${fullRuns}: ${fullMs.at(-1)!.toFixed(0)} ms, ${vsCount} virtual services`);
  }
  return { fullMs, index, heapDelta, vsCount };
}

// `changes` EndpointSlice updates, each flipping (every other time) an endpoint's readiness.
function timeSliceChanges(index: ClusterIndex, objs: Obj[], changes: number) {
  const slices = objs.filter((x) => x.kind === "EndpointSlice") as {
    metadata: { name: string; namespace: string };
    endpoints: { conditions: { ready: boolean } }[];
  }[];
  const sliceMs: number[] = [];
  let changed = 0;
  for (let i = 0; i < changes; i++) {
    const s = structuredClone(slices[(i * 7919) % slices.length]);
    if (!s.endpoints.length) continue;
    s.endpoints[0].conditions.ready = i % 2 === 0 ? !s.endpoints[0].conditions.ready : s.endpoints[0].conditions.ready;
    const t = performance.now();
    const ch = index.applyEndpointSlice(s as never);
    sliceMs.push(performance.now() - t);
    changed += ch.updated.length;
  }
  return { sliceMs, changed };
}

// One Service and its slice added at the full table's size, then removed again, `adds` times.
function timeAddService(index: ClusterIndex, eps: number, adds: number): number[] {
  const extra = generateCluster({ services: 1, endpoints: eps, seed: 99 }).items;
  const addMs: number[] = [];
  for (let i = 0; i < adds; i++) {
    const [svc, sl] = structuredClone(extra) as {
      metadata: { name: string; namespace: string };
      spec?: { clusterIP: string; clusterIPs: string[] };
    }[];
    svc.metadata.name = sl.metadata.name = `bench-add-${i}`;
    (sl.metadata as unknown as { labels: Record<string, string> }).labels["kubernetes.io/service-name"] =
      `bench-add-${i}`;
    svc.spec!.clusterIP = svc.spec!.clusterIPs[0] = `10.100.${(i >> 8) & 255}.${i & 255}`;
    const t = performance.now();
    index.applyService(svc as never);
    index.applyEndpointSlice(sl as never);
    addMs.push(performance.now() - t);
    index.deleteEndpointSlice(sl.metadata.namespace, sl.metadata.name);
    index.deleteService(svc.metadata.namespace, svc.metadata.name);
  }
  return addMs;
}

// The issue's target for a slice change, and the add beside kube-proxy nftables' published figure.
function k8sTargets(services: number, slice: Stat, add: Stat): Target[] {
  const ms = (s: Stat) => s.median / 1e6;
  return [
    {
      id: "k8s-slice-change",
      target: "one EndpointSlice change at 10k ≤ 1 ms",
      measured: `${ms(slice).toFixed(3)} ms (p75 ${(slice.p75 / 1e6).toFixed(3)} ms)`,
      status: services >= 10_000 ? (ms(slice) <= 1 ? "PASS" : "MISS") : "REF",
    },
    {
      id: "k8s-add-vs-nft",
      target: `add one Service at 10k vs kube-proxy nftables ${NFT_PUBLISHED_ADD_ONE_MS} ms`,
      measured: `${ms(add).toFixed(3)} ms (${(NFT_PUBLISHED_ADD_ONE_MS / ms(add)).toFixed(0)}× less)`,
      status: "REF",
      note: "theirs includes running nft; ours is the table computation only",
    },
  ];
}

function k8sChart(services: number, eps: number, full: Stat, slice: Stat, add: Stat): string {
  return barChartSvg({
    title: `Kubernetes mapping at ${services} Services × ${eps} endpoints`,
    subtitle: "median, whiskers p25–p75, log scale",
    yLabel: "time per operation",
    categories: ["full mapping", "one slice change", "add one Service"],
    series: [{ name: "wasmvs ClusterIndex", color: "#3465a4", values: [full, slice, add] }],
    refs: [
      {
        label: `kube-proxy nftables: add one Service (${NFT_PUBLISHED_ADD_ONE_MS} ms, published)`,
        ns: NFT_PUBLISHED_ADD_ONE_MS * 1e6,
        color: "#cc0000",
      },
    ],
  });
}

export async function benchK8s(o: K8sBenchOptions = {}): Promise<GroupResult & { extra: Record<string, unknown> }> {
  const services = o.services ?? 10_000,
    eps = o.endpoints ?? 10;
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const node = { nodeName: "node-0", addresses: ["192.168.1.10", "10.0.2.15"] };
  const config = { clusterCIDRs: ["10.128.0.0/9"] };
  log(`k8s: generating ${services} Services × ${eps} endpoints`);
  const cluster = generateCluster({ services, endpoints: eps, seed: 1 });
  const objs = cluster.items;
  const svcCount = objs.filter((x) => x.kind === "Service").length,
    sliceCount = objs.length - svcCount;
  const gc = (globalThis as { gc?: () => void }).gc;
  const { fullMs, index, heapDelta, vsCount } = timeFullMapping(objs, node, config, o.quick ? 2 : 5, log);
  const full = statOf(fullMs, 1);
  // the texts kube-proxy would write from the same objects (context for the scaling benchmark)
  if (!index) throw new Error("no runs");
  const t1 = performance.now();
  const ipvsText = index.ipvsState("IPv4");
  const ipvsTextMs = performance.now() - t1;
  const t2 = performance.now();
  const ipt = iptablesFor(index);
  const iptMs = performance.now() - t2;
  const t3 = performance.now();
  const nft = nftablesFor(index);
  const nftMs = performance.now() - t3;
  // one EndpointSlice change: an endpoint flips readiness (a pod going unready and back)
  const { sliceMs, changed } = timeSliceChanges(index, objs, o.quick ? 200 : 2000);
  const slice = statOf(sliceMs, 1);
  // adding one Service with its slice at 10k, then removing it (the figure kube-proxy nftables published)
  const addMs = timeAddService(index, eps, o.quick ? 100 : 1000);
  const add = statOf(addMs, 1);
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;
  const ms = (s: Stat) => s.median / 1e6;
  const ratio = ms(slice) / ms(full);
  log(
    `k8s: full ${fmtStat(full)}, one slice change ${fmtStat(slice)}, add one Service ${fmtStat(add)}, peak RSS ` +
      `${maxRssMiB.toFixed(0)} MiB`,
  );
  const figures: Figure[] = [
    {
      group: "k8s",
      name: `map ${services / 1000}k Services × ${eps}`,
      params: { services: svcCount, slices: sliceCount, endpoints: eps, virtualServices: vsCount },
      unit: "full mapping",
      ours: full,
      oursLabel: "ClusterIndex",
      baselines: [],
      note: `heap retained ${(heapDelta / 2 ** 20).toFixed(0)} MiB`,
    },
    {
      group: "k8s",
      name: `one EndpointSlice change at ${services / 1000}k`,
      params: { changes: sliceMs.length, vsUpdated: changed },
      unit: "change",
      ours: slice,
      oursLabel: "ClusterIndex",
      baselines: [],
      note: `${(ratio * 100).toFixed(4)}% of the full mapping`,
    },
    {
      group: "k8s",
      name: `add one Service at ${services / 1000}k`,
      params: { adds: addMs.length },
      unit: "change",
      ours: add,
      oursLabel: "ClusterIndex",
      baselines: [],
      note: `kube-proxy nftables published ${NFT_PUBLISHED_ADD_ONE_MS} ms`,
    },
  ];
  const targets = k8sTargets(services, slice, add);
  const svg = k8sChart(services, eps, full, slice, add);
  return {
    figures,
    targets,
    svgs: { "k8s.svg": svg },
    extra: {
      services: svcCount,
      slices: sliceCount,
      virtualServices: vsCount,
      endpointsPerService: eps,
      fullMappingMs: fullMs,
      sliceChangeMedianMs: ms(slice),
      addServiceMedianMs: ms(add),
      ratioSliceToFull: ratio,
      heapRetainedMiB: heapDelta / 2 ** 20,
      gcExposed: !!gc,
      peakRssMiB: maxRssMiB,
      texts: {
        ipvsMs: ipvsTextMs,
        ipvsIpsetLines: ipvsText.ipsetRestore.split("\n").length,
        iptablesMs: iptMs,
        iptablesNatRules: ipt.natRules,
        nftablesMs: nftMs,
        nftablesRules: nft.rules,
      },
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const num = (k: string) => {
    const a = argv.find((x) => x.startsWith(`--${k}=`));
    return a ? Number(a.split("=")[1]) : undefined;
  };
  const out = resolve(
    fileURLToPath(new URL("..", import.meta.url)),
    argv.find((a) => a.startsWith("--out="))?.slice(6) ?? "report",
  );
  const r = await benchK8s({ services: num("services"), endpoints: num("endpoints"), quick: argv.includes("--quick") });
  for (const f of r.figures)
    console.log(`${f.name.padEnd(36)} ${fmtStat(f.ours ?? undefined).padEnd(28)} ${f.note ?? ""}`);
  for (const t of r.targets) console.log(`[${t.status}] ${t.target}: ${t.measured}${t.note ? ` (${t.note})` : ""}`);
  const x = r.extra as Record<string, any>;
  console.log(
    `ratio one slice change / full mapping: ${x.ratioSliceToFull.toExponential(2)}; heap retained ` +
      `${x.heapRetainedMiB.toFixed(0)} MiB${x.gcExposed ? "" : " (run with --expose-gc for an exact figure)"}; ` +
      `peak RSS ${x.peakRssMiB.toFixed(0)} MiB`,
  );
  console.log(
    `texts at this size: IPVS ipsets+iptables ${x.texts.ipvsMs.toFixed(0)} ms, iptables mode ` +
      `${x.texts.iptablesMs.toFixed(0)} ms (${x.texts.iptablesNatRules} nat rule` +
      `s), nftables mode ${x.texts.nftablesMs.toFixed(0)} ms (${x.texts.nftablesRules} rules)`,
  );
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, "k8s.json"),
    JSON.stringify({ figures: r.figures, targets: r.targets, extra: r.extra }, null, 2),
  );
  writeFileSync(join(out, "k8s.svg"), r.svgs["k8s.svg"]);
  console.log(`wrote ${join(out, "k8s.json")} and k8s.svg`);
}
