"use strict";
// What a random corpus covers: connections per scheduler and per sh/mh flag combination, and the features.
//   node test/kernel/corpus-stats.cjs [test/fixtures/kernel/random-observed.json]
const fs = require("node:fs");
const path = require("node:path");
const { generate } = require("./random-scenarios.cjs");

const file = process.argv[2] || path.join(__dirname, "../fixtures/kernel/random-observed.json");
const d = JSON.parse(fs.readFileSync(file, "utf8"));
const per = {},
  combo = {};
const feat = {
  v6: 0,
  udp: 0,
  onePacket: 0,
  persistent: 0,
  netmask: 0,
  answered: 0,
  closes: 0,
  config: 0,
  refusedConfig: 0,
  refusedConnects: 0,
  waits: 0,
  steps: 0,
};
const add = (o, k, n) => {
  o[k] = (o[k] || 0) + n;
};
for (const t of d.scenarios) {
  const sc = generate(t.seed),
    s = sc.service;
  const n = sc.steps.filter((x) => x.op === "connect").length;
  add(per, s.scheduler, n);
  const hashFlags = s.flags.filter((f) => f !== "ops");
  if (s.scheduler === "sh" || s.scheduler === "mh") add(combo, `${s.scheduler}[${hashFlags}]`, n);
  if (s.vip.includes(":")) feat.v6 += n;
  if (s.proto === "udp") feat.udp += n;
  if (s.flags.includes("ops")) feat.onePacket += n;
  if (s.persistent) feat.persistent += n;
  if (s.netmask != null) feat.netmask += n;
  feat.answered += sc.steps.filter((x) => x.answer).length;
  feat.closes += sc.steps.filter((x) => x.op === "close").length;
  feat.config += sc.steps.filter((x) => ["add", "edit", "del"].includes(x.op)).length;
  feat.refusedConfig += t.obs.filter((o) => o.startsWith("refused")).length;
  feat.refusedConnects += t.obs.filter((o, i) => sc.steps[i].op === "connect" && o.startsWith("- ")).length;
  feat.waits += sc.steps.filter((x) => x.op === "wait").length;
  feat.steps += sc.steps.length;
}
console.log(
  JSON.stringify(
    {
      scenarios: d.scenarios.length,
      connects: d.connectCount,
      recordingSeconds: d.seconds,
      perScheduler: per,
      shMhFlags: combo,
      features: feat,
    },
    null,
    1,
  ),
);
