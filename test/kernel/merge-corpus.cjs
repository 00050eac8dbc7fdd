#!/usr/bin/env node
// Merges recordings of seeded random scenarios into one corpus (default: the committed random-observed.json):
//   node test/kernel/merge-corpus.cjs [--into FILE] RECORDING.json [...]
// A scenario recorded again replaces the older transcript of the same name (the newest file wins), a scenario
// a recording left out stays out unless another recording has it, and the counts are taken afresh. Use it to
// add seeds recorded in several runs, or to put back a scenario recorded again after a fix.
const fs = require("node:fs");
const path = require("node:path");
const { load } = require("./random-scenarios.cjs");
const { format } = require("./transcript-format.cjs");

const args = process.argv.slice(2);
const at = args.indexOf("--into");
const into = path.resolve(
  at >= 0 ? args.splice(at, 2)[1] : path.join(__dirname, "../fixtures/kernel/random-observed.json"),
);
if (!args.length || args.some((a) => a.startsWith("-"))) {
  console.error("usage: node test/kernel/merge-corpus.cjs [--into FILE] RECORDING.json [...]");
  process.exit(2);
}
const docs = [into, ...args]
  .filter((f) => fs.existsSync(f))
  .map((f) => ({ f, doc: JSON.parse(fs.readFileSync(f, "utf8")) }));
const kernels = new Set(docs.map(({ doc }) => doc.kernel));
if (kernels.size !== 1) {
  console.error(`recordings from different kernels: ${[...kernels].join(", ")}`);
  process.exit(1);
}

const byName = new Map();
const leftOut = new Map(); // name -> why
for (const { doc } of docs) {
  for (const r of doc.scenarios) {
    if (!r.obs) throw new Error(`${r.name}: not a seeded random transcript`);
    byName.set(r.name, r);
  }
  for (const why of doc.leftOut || []) leftOut.set(why.split(":")[0], why);
}
for (const name of byName.keys()) leftOut.delete(name);
const list = [...byName.values()].sort((a, b) => a.seed - b.seed);
const connects = list.reduce(
  (n, r) => n + load(`random:${r.seed}:1`)[0].steps.filter((s) => s.op === "connect").length,
  0,
);
const seeds = list.map((r) => r.seed);
const doc = {
  kernel: [...kernels][0],
  date: new Date().toISOString(),
  recordedWith:
    `test/kernel/record.cjs (driver.cjs inside shared/ipvs-vm); scenarios from test/kernel/random-scenarios.cjs ` +
    `(seeds ${seeds[0]}..${seeds[seeds.length - 1]}), merged by test/kernel/merge-corpus.cjs from: ` +
    docs
      .map(({ doc: d }) => d.recordedWith.replace(/^.*?scenarios from test\/kernel\/random-scenarios\.cjs,? ?/, ""))
      .join("; "),
  seconds: docs.reduce((n, { doc: d }) => n + (d.seconds || 0), 0),
  scenarioCount: list.length,
  connectCount: connects,
  ...(leftOut.size ? { leftOut: [...leftOut.values()] } : {}),
  scenarios: list,
};
fs.writeFileSync(into, format(doc));
console.log(
  `wrote ${into}: ${list.length} scenarios, ${connects} connections${leftOut.size ? `, ${leftOut.size} left out` : ""}`,
);
