// `wasmvs sync` under faults, in the VM against Linux 6.1's IPVS (test/kernel-vm/sync-faults.ts runs
// there): EPERM as an unprivileged user, the IPVS modules unloaded and reloaded under a running loop,
// the node's addresses ordered around the table pass, and a cluster loop whose watch gets malformed
// events and then goes silent while the EndpointSlice moves.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runInVm, vmEnv } from "../bench/kernel-sync.ts";
import { testOrSkip } from "./helpers/skip.ts";
import { projectRoot, vmShare } from "./helpers/vm-share.ts";

const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));
const root = projectRoot,
  share = vmShare();
let r: Record<string, any> | undefined;
let why = "";
let vmError = "";
if (!existsSync(vm)) why = `${vm} is missing: the kernel VM from ../shared is needed`;
else {
  // bundled here first: transpiling TypeScript inside the emulated VM costs minutes
  const { build } = await import("esbuild");
  await build({
    entryPoints: [`${root}/test/kernel-vm/sync-faults.ts`],
    outfile: `${root}/dist/test/sync-faults.mjs`,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
  // runInVm boots again after a panic at boot; a run with no result then fails every test below with the
  // reason, instead of aborting the whole test run at import
  let line: string | undefined;
  try {
    const { code, stdout } = await runInVm(
      `cd ${root} && node dist/test/sync-faults.mjs`,
      { ...vmEnv(), IPVSVM_SHARE: share, IPVSVM_TIMEOUT: "2400" },
      (l) => {
        if (l.includes("# ")) console.error(l);
        return true;
      },
    );
    line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
    if (!line) vmError = `no result from the VM (exit ${code}):\n${stdout.slice(-3000)}`;
  } catch (e) {
    vmError = `the VM run failed: ${(e as Error).message}`;
  }
  if (line) {
    vmError = "";
    r = JSON.parse(line.slice(9));
    // kept for reading after a failure (the VM run is long)
    try {
      mkdirSync(`${root}/report`, { recursive: true });
      writeFileSync(`${root}/report/kernel-sync-faults.json`, JSON.stringify(r, null, 1));
    } catch {
      /* read-only */
    }
  }
}
const file = import.meta.url;

testOrSkip(file, why, "EPERM: every kernel-talking command says so in one line and exits 1 (VM)", () => {
  assert.ok(r, vmError);
  assert.not.ok(r!.epermFatal, r!.epermFatal);
  for (const [name, run] of Object.entries(r!.eperm as Record<string, { status: number; stderr: string }>)) {
    assert.ok(
      run.status === 1 || (name.startsWith("-") && run.status !== 0),
      `${name}: exit ${run.status}\n${run.stderr}`,
    );
    // (the ipvsadm verbs say it as ipvsadm does)
    assert.match(
      run.stderr,
      name.startsWith("-") ? /Permission denied \(you must be root\)/ : /needs CAP_NET_ADMIN/,
      `${name}: ${run.stderr}`,
    );
    assert.is(run.stderr.trim().split("\n").length, 1, `${name}: one line, no stack trace:\n${run.stderr}`);
    assert.not.match(run.stderr, /\n\s+at /);
  }
  assert.is(r!.eperm["sync --once"].status, 1);
  assert.is(r!.eperm["sync --check"].status, 1);
});

testOrSkip(
  file,
  why,
  "ip_vs unloaded and reloaded under the loop: the family is named, the loop backs off and repairs (VM)",
  () => {
    assert.ok(r, vmError);
    assert.not.ok(r!.reloadFatal, r!.reloadFatal);
    assert.ok(r!.reloadFirst >= 0, "the loop programmed the table first");
    assert.ok(r!.reloadUnloaded, "rmmod ip_vs succeeded");
    const gone = String(r!.reloadWhileGone);
    // (module autoloading was blocked while it was gone: the kernel reloads ip_vs when the family is asked for)
    assert.match(
      gone,
      /list services: the kernel's IPVS generic netlink family is gone \(the ip_vs module was unloaded\) \(ENOENT\)/,
      gone,
    );
    assert.not.match(gone, /no such destination/, gone);
    assert.match(
      gone,
      /retrying as a full sync in \d+\.\d s \(attempt \d+; backing off exponentially, at most 30 s\)/,
      gone,
    );
    assert.ok(
      r!.reloadRepairedMs >= 0,
      `the table was not repaired after modprobe:\n${r!.reloadTable}\n${r!.reloadAfterModprobe}`,
    );
    assert.is(r!.reloadExit, 0, `the loop kept running and exits 0 on SIGTERM:\n${r!.reloadAfterModprobe}`);
  },
);

testOrSkip(
  file,
  why,
  "a virtual server never exists without its address on the dummy interface, adding or removing (VM)",
  () => {
    assert.ok(r, vmError);
    assert.not.ok(r!.orderFatal, r!.orderFatal);
    assert.ok(
      r!.orderFirst >= 0 && r!.orderAdded >= 0 && r!.orderRemoved >= 0,
      `the loop did not follow the file:\n${r!.orderLog}`,
    );
    assert.ok(r!.orderSamples > 200, `only ${r!.orderSamples} samples`);
    // the log of the two passes: the addresses bound before the services are added, removed after they go
    const log = String(r!.orderPassLog);
    const bound = log.indexOf("addresses +19 -0"),
      added = log.indexOf("add service tcp 10.98.0.20:80");
    const deleted = log.indexOf("delete service tcp 10.98.0.20:80"),
      unbound = log.indexOf("addresses +0 -19");
    assert.ok(bound >= 0 && added > bound, `bind before add:\n${log}`);
    assert.ok(deleted >= 0 && unbound > deleted, `unbind after delete:\n${log}`);
    assert.equal(
      r!.orderViolations,
      [],
      `virtual servers without their address:\n${r!.orderViolations.join("\n")}\n${r!.orderLog}`,
    );
    assert.is(r!.orderExit, 0);
  },
);

testOrSkip(
  file,
  why,
  "a cluster loop survives malformed events and follows a silent watch within its idle deadline (VM)",
  () => {
    assert.ok(r, vmError);
    assert.not.ok(r!.watchFatal, `${r!.watchFatal}\n${r!.watchLog}`);
    assert.ok(r!.watchFirst >= 0, `the first endpoint never appeared:\n${r!.watchLog}`);
    assert.ok(r!.watchAliveAfterBad, `the loop ended on malformed events:\n${r!.watchLog}`);
    assert.match(r!.watchTableAfterBad, /-r 10\.1\.0\.2:8080 -m -w 1/, "the last good state stays in the kernel");
    assert.match(r!.watchLog, /refused \(metadata missing or not an object\)|refused \(metadata\.name missing/);
    // deadline 8 s, then a relist and a triggered pass (under emulation: a few seconds more)
    assert.ok(
      r!.watchFollowedMs >= 0,
      `the kernel still has the old endpoint after ${r!.watchWaitedMs} ms:\n${r!.watchTable}\n${r!.watchLog}`,
    );
    assert.ok(r!.watchFollowedMs <= 8000 + 12_000, `followed after ${r!.watchFollowedMs} ms (deadline 8 s)`);
    assert.match(r!.watchLog, /no event and no bookmark for 8 s: aborted, relisting/);
    assert.is(r!.watchCheck.status, 0, `${r!.watchCheck.stdout}${r!.watchCheck.stderr}`);
    // (open, or closed for a moment between an idle abort and the next watch: the fake server sends no bookmarks)
    assert.match(
      r!.watchCheck.stdout,
      new RegExp(
        /EndpointSlice watch: (open|closed), .*last event or bookmark .*, /.source +
          /last relist \d+\.\d s ago, \d+ relist\(s\), [1-9]\d* idle abort/.source,
      ),
    );
    assert.match(r!.watchMetrics, /wasmvs_sync_watch_last_relist_age_seconds\{kind="EndpointSlice"\} \d/);
    assert.match(
      r!.watchMetrics,
      /wasmvs_sync_watch_events_refused_total\{kind="EndpointSlice",reason="bad object"\} [1-9]/,
    );
    assert.is(r!.watchExit, 0);
    assert.is(r!.watchCheckAfterExit.status, 1, "no loop running: --check exits 1");
  },
);

test.run();
