// `wasmvs -R` against kernel IPVS (Linux 6.1 in ../shared/ipvs-vm): runs test/kernel-vm/restore.ts inside.
// The real ipvsadm there says what was applied: nothing when a line is refused up front, exactly the lines
// before a refusal only the kernel knows (issue 15 item 9), and the kernel's own choice of addresses (item 11).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { runInVm, vmEnv } from "../bench/kernel-sync.ts";

const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));

const restoreAllOrNothing =
  "-R against Linux 6.1 (in the VM): a refused input applies nothing; a kernel refusal names what was applied";
test(restoreAllOrNothing, async () => {
  assert.ok(existsSync(vm), `${vm} is missing: the kernel VM from ../shared is needed`);
  const env = vmEnv();
  // a worktree's node_modules may be a link into another checkout: share their common parent with the VM
  const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
  const modules = realpathSync(`${root}/node_modules`);
  if (!modules.startsWith(root + "/")) {
    let common = root;
    while (!modules.startsWith(common + "/")) common = dirname(common);
    env.IPVSVM_SHARE = common;
  }
  const { code, stdout } = await runInVm(`cd ${root} && node --import tsx test/kernel-vm/restore.ts`, env, () => true);
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  assert.ok(line, `no result from the VM (exit ${code}):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9)) as { checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[] };
  const bad = r.checks.filter((c) => !c.ok);
  assert.equal(
    bad.map((c) => `${c.name}: want ${JSON.stringify(c.want)} got ${JSON.stringify(c.got)}`),
    [],
  );
  assert.ok(r.checks.length >= 16, `${r.checks.length} checks ran`);
  assert.is(code, 0);
});

test.run();
