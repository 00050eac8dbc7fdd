// Records what the kernel does with a new SYN on an old entry (test/kernel-vm/nodest.ts, in the kernel VM)
// into test/fixtures/kernel/nodest-observed.json, which test/nodest.test.ts replays through the core.
//   node --import tsx test/kernel/record-nodest.ts [--out FILE] [FILTER]
import { writeFileSync } from "node:fs";
import { runInVm, vmEnv } from "../../bench/kernel-sync.ts";
import { scaledLimitS } from "../helpers/director-pair-host.ts";

const args = process.argv.slice(2);
const outAt = args.indexOf("--out");
const out = outAt >= 0 ? args.splice(outAt, 2)[1] : "test/fixtures/kernel/nodest-observed.json";
const filter = args[0] ?? "";
// quiet machine: boot 20 s, 84 cases of about 2 s (the dropped SYNs wait 2.5 s)
const limitS = scaledLimitS(200);
const env = { ...vmEnv(), IPVSVM_TIMEOUT: String(limitS) };
const { code, stdout } = await runInVm(`node --import tsx test/kernel-vm/nodest.ts '${filter}'`, env);
const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
if (!line) {
  console.error(`no result from the VM (exit ${code}, limit ${limitS} s):\n${stdout.slice(-3000)}`);
  process.exit(1);
}
const r = JSON.parse(line.slice(9));
if (r.fatal) {
  console.error(r.fatal);
  process.exit(1);
}
writeFileSync(out, `${JSON.stringify(r, null, 1)}\n`);
console.log(`${r.observed.length} cases, kernel ${r.kernel}: ${out}`);
