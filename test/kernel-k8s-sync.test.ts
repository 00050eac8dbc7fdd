// wasmvs sync --kubeconfig against the real kernel: boots Linux 6.1 with IPVS and runs
// test/kernel-vm/k8s-sync.ts inside, where a local API server lists a Service and its EndpointSlice;
// the sync maps them as kube-proxy's IPVS proxier would into kernel IPVS, then follows an EndpointSlice
// update on the watch (the old real server drained and removed, the new one added), and stops on SIGTERM.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runInVm, vmEnv } from "../bench/kernel-sync.ts";

const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));

test("wasmvs sync --kubeconfig programs kernel IPVS and follows the watch (in the VM)", async () => {
  assert.ok(existsSync(vm), `${vm} is missing: the kernel VM from ../shared is needed`);
  const { code, stdout } = await runInVm("node --import tsx test/kernel-vm/k8s-sync.ts", vmEnv(), () => true);
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  assert.ok(line, `no result from the VM (exit ${code}):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9));
  assert.ok(r.first, `the ClusterIP service never appeared:\n${r.firstTable}\n${r.log}`);
  assert.match(r.firstTable, /-A -t 10\.96\.0\.10:80 -s rr\n-a -t 10\.96\.0\.10:80 -r 10\.1\.0\.5:8080 -m -w 1/);
  assert.ok(r.second, `the EndpointSlice update was not followed:\n${r.secondTable}\n${r.log}`);
  assert.is(r.exit, 0, `sync exits 0 on SIGTERM:\n${r.log}`);
});

test.run();
