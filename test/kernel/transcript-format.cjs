// The transcripts' file layout, shared by record.cjs and merge-corpus.cjs.
// JSON with one choice / close per line, so the file diffs well
function format(doc) {
  const scen = (r) => {
    const lines = Object.entries(r).map(([k, v]) => {
      if (Array.isArray(v) && (k === "choices" || k === "closes" || k === "obs")) {
        return `  ${JSON.stringify(k)}: [\n${v.map((x) => `    ${JSON.stringify(x)}`).join(",\n")}\n  ]`;
      }
      return `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`;
    });
    return `{\n${lines.join(",\n")}\n}`;
  };
  const head = Object.entries(doc)
    .filter(([k]) => k !== "scenarios")
    .map(([k, v]) => `"${k}": ${JSON.stringify(v)}`);
  return `{${head.join(",\n")},\n"scenarios": [\n${doc.scenarios.map(scen).join(",\n")}\n]}\n`;
}

module.exports = { format };
