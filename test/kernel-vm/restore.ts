// Run inside the VM by test/kernel-restore.test.ts: `wasmvs -R` against kernel IPVS, the real ipvsadm as
// the arbiter of what was applied. Prints "@@RESULT {checks: [{name, ok, want?, got?}]}".
import { runIpvsadm } from "../../src/cli/ipvsadm.ts";
import { KernelTarget } from "../../src/kernel/target.ts";
import { numericResolver } from "../../src/model/names.ts";
import { ipvsadm, result } from "./rules.ts";

const checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[] = [];
const eq = (name: string, got: unknown, want: unknown) => {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  checks.push(ok ? { name, ok } : { name, ok, want, got });
};
const t = await KernelTarget.open();
async function run(argv: string[], stdin = "") {
  const out = {
      s: "",
      write(x: string) {
        this.s += x;
        return true;
      },
    },
    err = {
      s: "",
      write(x: string) {
        this.s += x;
        return true;
      },
    };
  const status = await runIpvsadm(argv, t, out, err, { resolver: numericResolver, stdin: async () => stdin });
  return { status, stdout: out.s, stderr: err.s };
}
try {
  ipvsadm(["-C"]);
  // issue 15 item 9: ipvsadm -R applies the first two lines of this (it takes weight 70000); wasmvs applies nothing
  let r = await run(
    ["-R"],
    "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.9.0.1:80 -r 10.1.0.2:80 -m -w 70000\n",
  );
  eq("weight 70000 on line 3: exit 2", r.status, 2);
  eq(
    "weight 70000 on line 3: the message says nothing was applied",
    /-R refused, nothing applied:\n {2}line 3 /.test(r.stderr),
    true,
  );
  eq("weight 70000 on line 3: the kernel has nothing (ipvsadm -Sn)", ipvsadm(["-Sn"]), "");
  // what the kernel refuses as a destination (0.0.0.0, multicast, broadcast): refused before anything
  r = await run(
    ["-R"],
    "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 224.0.0.5:80 -m\n-a -t 10.9.0.1:80 -r 10.1.0.3:80 -m\n",
  );
  eq(
    "multicast real server: refused, nothing applied",
    [r.status, /224\.0\.0\.5' is a multicast address/.test(r.stderr), ipvsadm(["-Sn"])],
    [2, true, ""],
  );
  // a refusal only the kernel knows (6.1 has no twos scheduler): stops there, names what was applied
  r = await run(
    ["-R"],
    "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.1.0.1:80 -m\n-A -t 10.9.0.2:80 -s twos\n-A -t " +
      "10.9.0.3:80 -s rr\n",
  );
  eq("kernel refusal on line 3: exit 255", r.status, 255);
  eq(
    "kernel refusal on line 3: the message",
    r.stderr,
    "Scheduler or persistence engine not found\nwasmvs: -R stopped at line 3 (-A -t 10.9.0.2:80 -s twos): the 2 " +
      "lines before it were applied, the rest not\n",
  );
  eq(
    "kernel refusal on line 3: exactly lines 1-2 in the kernel",
    ipvsadm(["-Sn"]),
    "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.1.0.1:80 -m -w 1\n",
  );
  // refused against the current table (exists): nothing applied, as the kernel would have said
  r = await run(["-R"], "-A -t 10.9.0.5:80 -s rr\n-A -t 10.9.0.1:80 -s rr\n");
  eq(
    "existing service on line 2: refused up front",
    [r.status, r.stderr],
    [255, "wasmvs: -R refused, nothing applied:\n  line 2 (-A -t 10.9.0.1:80 -s rr): Service already exists\n"],
  );
  eq("existing service on line 2: nothing applied", ipvsadm(["-Sn"]).includes("10.9.0.5"), false);
  // the kernel takes any service address; single commands leave destinations to the kernel's own message
  ipvsadm(["-C"]);
  for (const vip of ["255.255.255.255", "224.0.0.1", "0.0.0.0"])
    eq(`VIP ${vip} taken as the kernel takes it`, (await run(["-A", "-t", `${vip}:80`])).status, 0);
  r = await run(["-a", "-t", "0.0.0.0:80", "-r", "0.0.0.0:80", "-m"]);
  eq(
    "real server 0.0.0.0: the kernel's message",
    [r.status, r.stderr],
    [255, "Invalid operation.  Possibly wrong module version, address not unicast, ...\n"],
  );
  r = await run(["-a", "-t", "0.0.0.0:80", "-r", "10.1.0.1:80", "-m"]);
  eq("a unicast real server on it", r.status, 0);
  ipvsadm(["-C"]);
  // a large restore: every line applied (the kernel line by line)
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) {
    lines.push(`-A -t 10.8.${i >> 8}.${i & 255}:80 -s rr`);
    for (let j = 1; j <= 3; j++) lines.push(`-a -t 10.8.${i >> 8}.${i & 255}:80 -r 10.1.0.${j}:80 -m`);
  }
  r = await run(["-R"], lines.join("\n") + "\n");
  eq("1200 lines: exit 0", [r.status, r.stderr], [0, ""]);
  eq("1200 lines: the kernel's save has them all", ipvsadm(["-Sn"]).trim().split("\n").length, 1200);
  ipvsadm(["-C"]);
} catch (e) {
  checks.push({ name: "fatal", ok: false, got: String((e as Error).stack ?? e) });
}
await t.close();
result({ checks });
