// Runs inside the VM (test/kernel-k8s-sync.test.ts): a local API server lists one Service and its
// EndpointSlice; `wasmvs sync --kubeconfig` maps them as kube-proxy's IPVS proxier would and programs the
// real kernel; an EndpointSlice update on the watch moves the real server. Prints @@RESULT {json}.
import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import { startFakeKubeApi } from "../helpers/fake-kube-api.ts";

const api = await startFakeKubeApi({
  vip: "10.96.0.10",
  vport: 80,
  targetPort: 8080,
  endpoint: "10.1.0.5",
  kubeconfig: "/tmp/kc.yaml",
});
const sn = () => execFileSync("ipvsadm", ["-Sn"], { encoding: "utf8" });
async function until(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}
const sync = spawn(
  process.execPath,
  [
    "bin/wasmvs.js",
    "sync",
    "--kubeconfig",
    "/tmp/kc.yaml",
    "--node-name",
    "n1",
    "--node-ip",
    "192.0.2.1",
    "--sync-period",
    "5",
  ],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let log = "";
sync.stdout.on("data", (d) => (log += d));
sync.stderr.on("data", (d) => (log += d));
const result: Record<string, unknown> = {};
// tsx compiles the CLI first: slow under emulation
result.first = await until(() => sn().includes("-a -t 10.96.0.10:80 -r 10.1.0.5:8080 -m -w 1"), 240_000);
result.firstTable = sn();
// beside the table, as kube-proxy keeps them: the ClusterIP on kube-ipvs0 (so the node takes its packets),
// the ipsets and the KUBE-* chains; then a real connection to the ClusterIP reaches the endpoint
const text = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" });
  } catch (e) {
    return `FAILED: ${(e as Error).message}`;
  }
};
// (the address and ipset entry come before the table pass, the chains after it, as kube-proxy writes them)
result.nodeReady = await until(
  () =>
    text("ipset", ["list", "KUBE-CLUSTER-IP"]).includes("10.96.0.10,tcp:80") &&
    text("ip", ["-o", "addr", "show", "dev", "kube-ipvs0"]).includes("10.96.0.10/32") &&
    text("iptables-save", ["-t", "nat"]).includes("-j KUBE-SERVICES"),
  60_000,
);
result.addrs = text("ip", ["-o", "addr", "show", "dev", "kube-ipvs0"]);
result.route = text("ip", ["route", "get", "10.96.0.10"]);
result.ipset = text("ipset", ["list", "KUBE-CLUSTER-IP"]);
result.nat = text("iptables-save", ["-t", "nat"]);
execFileSync("ip", ["addr", "add", "10.1.0.5/32", "dev", "lo"]);
const server = net.createServer((c) => c.end("endpoint 10.1.0.5\n")).listen(8080, "10.1.0.5");
await new Promise((r) => server.once("listening", r));
result.reply = await new Promise<string>((resolve) => {
  const c = net.connect({ host: "10.96.0.10", port: 80 });
  let got = "";
  c.setTimeout(10_000, () => {
    c.destroy();
    resolve(`timeout after '${got}'`);
  });
  c.on("data", (d) => (got += d))
    .on("end", () => resolve(got))
    .on("error", (e) => resolve(`error ${e.message}`));
});
server.close();
api.pushSlice("10.1.0.6", "11");
// 10.1.0.5 keeps the connection made above (TIME_WAIT), so it is drained at weight 0, not deleted at once
result.second = await until(() => {
  const t = sn();
  return (
    t.includes("-r 10.1.0.6:8080 -m -w 1") && (t.includes("-r 10.1.0.5:8080 -m -w 0") || !t.includes("10.1.0.5:8080"))
  );
}, 90_000);
result.secondTable = sn();
sync.kill("SIGTERM");
result.exit = await new Promise((r) => sync.once("exit", (code) => r(code)));
result.log = log.slice(-2000);
api.close();
console.log("@@RESULT " + JSON.stringify(result));
process.exit(0);
