// The connector in plain Node, used when no C compiler is present (adds the event loop's overhead to
// every figure: compare figures taken with one connector only). Same arguments and output as connector.c.
import net from "node:net";
const [count, ...targets] = process.argv.slice(2);
const readMode = Number(process.env.CONNECTOR_READ ?? 0) > 0; // wait for the far end's first byte (see connector.c)
const ts = targets.map((t) => {
  const i = t.lastIndexOf(":");
  return { host: t.slice(0, i), port: Number(t.slice(i + 1)) };
});
const c0 = process.cpuUsage(),
  w0 = process.hrtime.bigint();
let fails = 0;
const out = [];
for (let k = 0; k < Number(count); k++) {
  const i = k % ts.length,
    t0 = process.hrtime.bigint();
  const r = await new Promise((res) => {
    const s = net.connect(ts[i]);
    const done = () => {
      const d = process.hrtime.bigint() - t0;
      s.resetAndDestroy();
      res(String(d));
    };
    if (readMode) {
      s.once("data", done);
      s.once("end", () => {
        s.destroy();
        res("-104");
      });
    } else s.once("connect", done);
    s.on("error", (e) => res(String(-(e.errno ?? 1))));
  });
  if (r.startsWith("-")) fails++;
  out.push(`${i} ${r}`);
}
const c = process.cpuUsage(c0);
out.push(`#cpu ${c.user} ${c.system} ${Number((process.hrtime.bigint() - w0) / 1000n)} ${fails}`);
process.stdout.write(out.join("\n") + "\n");
