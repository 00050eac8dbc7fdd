// Run inside a network namespace by test/vips.test.ts: VipBinder over rtnetlink on the namespace's loopback
// (this machine's kernel has no dummy driver; the VM test covers kube-ipvs0 itself). Prints "@@RESULT {json}".
import { execFileSync } from "node:child_process";
import { VipBinder } from "../../src/kernel/vips.ts";

const addrs = () =>
  execFileSync("ip", ["-o", "addr", "show", "dev", "lo"], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[3])
    .sort();
const b = new VipBinder("lo");
const out: Record<string, unknown> = {};
out.first = await b.sync(["10.96.0.1", "fd00:0::10", "10.96.0.2"]);
out.afterFirst = addrs();
out.second = await b.sync(["10.96.0.2", "10.96.0.1", "fd00::10"]);
out.third = await b.sync(["10.96.0.2", "not-an-address"]);
out.afterThird = addrs();
b.close();
console.log("@@RESULT " + JSON.stringify(out));
