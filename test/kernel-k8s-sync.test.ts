// wasmvs sync --kubeconfig against the real kernel: boots Linux 6.1 with IPVS and runs
// test/kernel-vm/k8s-sync.ts inside, where a local API server lists a Service and its EndpointSlice;
// the sync maps them as kube-proxy's IPVS proxier would into kernel IPVS, then follows an EndpointSlice
// update on the watch (the old real server drained and removed, the new one added), and stops on SIGTERM.
// Beside the table it keeps kube-proxy's node state: the ClusterIP on kube-ipvs0, the ipsets and KUBE-*
// chains; a real connection to the ClusterIP reaches the endpoint.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runInVm, vmEnv } from "../bench/kernel-sync.ts";
import { projectRoot, vmShare } from "./helpers/vm-share.ts";

const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));

test("wasmvs sync --kubeconfig programs kernel IPVS and follows the watch (in the VM)", async () => {
  assert.ok(existsSync(vm), `${vm} is missing: the kernel VM from ../shared is needed`);
  const { code, stdout } = await runInVm(
    `cd ${projectRoot} && node --import tsx test/kernel-vm/k8s-sync.ts`,
    { ...vmEnv(), IPVSVM_SHARE: vmShare() },
    () => true,
  );
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  assert.ok(line, `no result from the VM (exit ${code}):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9));
  assert.ok(r.first, `the ClusterIP service never appeared:\n${r.firstTable}\n${r.log}`);
  assert.match(r.firstTable, /-A -t 10\.96\.0\.10:80 -s rr\n-a -t 10\.96\.0\.10:80 -r 10\.1\.0\.5:8080 -m -w 1/);
  assert.ok(r.nodeReady, `ipsets or kube-ipvs0 address missing:\n${r.ipset}\n${r.addrs}\n${r.log}`);
  assert.match(r.addrs, /kube-ipvs0\s+inet 10\.96\.0\.10\/32/);
  assert.match(r.route, /^local 10\.96\.0\.10 dev lo/);
  assert.match(r.nat, /-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
  assert.match(r.nat, /-A KUBE-SERVICES .*--match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT/);
  assert.is(r.reply, "endpoint 10.1.0.5\n", "a connection to the ClusterIP reaches its endpoint through kernel IPVS");
  // the connection made above left an entry on 10.1.0.5: it drains at weight 0 (graceful termination)
  assert.ok(r.second, `the EndpointSlice update was not followed:\n${r.secondTable}\n${r.log}`);
  assert.match(r.secondTable, /-r 10\.1\.0\.5:8080 -m -w 0\n/);
  assert.match(r.log, /drain \(weight 0\) real server 10\.1\.0\.5:8080/);
  assert.is(r.exit, 0, `sync exits 0 on SIGTERM:\n${r.log}`);
});

test.run();
