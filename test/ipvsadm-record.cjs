#!/usr/bin/env node
"use strict";
// Regenerates test/fixtures/ipvsadm/*.json from the REAL ipvsadm 1.31 on Linux 6.1 in the ipvs-vm:
//
//   node test/ipvsadm-record.cjs [SCENARIO_REGEX]
//
// Boots the VM once (IPVSVM_DIR, default /tmp/ipvsvm-adm; IPVSVM_SH, default ../shared/ipvs-vm/ipvs-vm.sh)
// and runs test/ipvsadm-vm.cjs inside, which builds each state with ipvsadm, drives real traffic through
// some, and captures every listing (-Sn, -S, -Ln, -L, --nosort, --stats [--exact], --rate [--exact],
// --thresholds, --persistent-conn, --tun-info, -Lnc, -L --timeout) plus the raw state (/proc/net/ip_vs,
// /proc/net/ip_vs_conn, /proc/net/ip_vs_stats). Also records ipvsadm's error messages and exit codes for
// bad command lines (errors.json). The tests (test/ipvsadm*.test.ts) read only the JSON; no VM needed.
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");

const repo = path.resolve(__dirname, "..");
const outDir = path.join(repo, "test/fixtures/ipvsadm");
const vmScript = process.env.IPVSVM_SH || path.resolve(repo, "../shared/ipvs-vm/ipvs-vm.sh");
const filter = process.argv[2] || "";
const MODULES = [
  "ip_vs",
  "ip_vs_rr",
  "ip_vs_wrr",
  "ip_vs_lc",
  "ip_vs_wlc",
  "ip_vs_sed",
  "ip_vs_nq",
  "ip_vs_fo",
  "ip_vs_ovf",
  "ip_vs_dh",
  "ip_vs_sh",
  "ip_vs_mh",
  "ip_vs_lblc",
  "ip_vs_lblcr",
  "ip_vs_pe_sip",
  "nf_conntrack",
  "nf_conntrack_sip",
  "xt_mark",
  "iptable_mangle",
  "dummy",
  "veth",
].join(" ");

fs.mkdirSync(outDir, { recursive: true });
const env = {
  ...process.env,
  IPVSVM_DIR: process.env.IPVSVM_DIR || "/tmp/ipvsvm-adm",
  IPVSVM_SHARE: repo,
  IPVSVM_MODULES: MODULES,
  IPVSVM_TIMEOUT: process.env.IPVSVM_TIMEOUT || "1200",
};
const t0 = Date.now();
const p = spawn(vmScript, [`node ${path.join(repo, "test/ipvsadm-vm.cjs")} '${filter}'`], {
  env,
  stdio: ["ignore", "pipe", "pipe"],
});
const errors = [];
let kernel = "";
readline.createInterface({ input: p.stderr }).on("line", (l) => {
  process.stderr.write(`[vm] ${l}\n`);
  if (l.startsWith("kernel ")) kernel = l.slice(7);
});
readline.createInterface({ input: p.stdout }).on("line", (l) => {
  if (l.startsWith("@@FIX ")) {
    const f = JSON.parse(l.slice(6));
    f.recordedWith = kernel;
    fs.writeFileSync(path.join(outDir, `${f.name}.json`), JSON.stringify(f, null, 1) + "\n");
    process.stderr.write(`wrote ${f.name}.json\n`);
  } else if (l.startsWith("@@ERR ")) errors.push(JSON.parse(l.slice(6)));
  else if (l.startsWith("@@ETC "))
    fs.writeFileSync(path.join(outDir, "etc.json"), JSON.stringify(JSON.parse(l.slice(6))) + "\n");
  else process.stderr.write(`[vm] ${l}\n`);
});
p.on("exit", (code) => {
  if (errors.length) {
    fs.writeFileSync(
      path.join(outDir, "errors.json"),
      JSON.stringify({ recordedWith: kernel, program: "ipvsadm", cases: errors }, null, 1) + "\n",
    );
    process.stderr.write(`wrote errors.json (${errors.length} cases)\n`);
  }
  process.stderr.write(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s, VM exit ${code}\n`);
  process.exit(code ?? 1);
});
