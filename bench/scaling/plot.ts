// Line charts on log-log axes for the scaling report: one line per mode, measured points filled, modelled
// points hollow on a dashed line.
export interface PlotSeries {
  name: string;
  color: string;
  points: { x: number; y: number; measured: boolean }[];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const fmt = (v: number) => (v >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`);

export function lineChartSvg(o: {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  refs?: { x: number; y: number; label: string }[];
}): string {
  const pts = o.series
    .flatMap((s) => s.points)
    .concat((o.refs ?? []).map((r) => ({ ...r, measured: true })))
    .filter((p) => p.x > 0 && p.y > 0 && Number.isFinite(p.y));
  const W = 760,
    H = 460,
    L = 80,
    T = 56,
    PW = 600,
    PH = 300;
  const lx0 = Math.floor(Math.log10(Math.min(...pts.map((p) => p.x), 1000))),
    lx1 = Math.ceil(Math.log10(Math.max(...pts.map((p) => p.x), 10000)));
  const ly0 = Math.floor(Math.log10(Math.min(...pts.map((p) => p.y), 1))),
    ly1 = Math.ceil(Math.log10(Math.max(...pts.map((p) => p.y), 10)));
  const X = (x: number) => L + ((Math.log10(x) - lx0) / (lx1 - lx0 || 1)) * PW;
  const Y = (y: number) => T + PH - ((Math.log10(y) - ly0) / (ly1 - ly0 || 1)) * PH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="san` +
      `s-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="20" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
  ];
  if (o.subtitle) out.push(`<text x="${L}" y="38" fill="#555">${esc(o.subtitle)}</text>`);
  for (let d = lx0; d <= lx1; d++)
    for (const m of [1, 2, 5]) {
      const x = m * 10 ** d;
      if (Math.log10(x) > lx1) continue;
      out.push(
        `<line x1="${X(x).toFixed(1)}" x2="${X(x).toFixed(1)}" y1="${T}" y2="${T + PH}" stroke="` +
          `${m === 1 ? "#ddd" : "#f3f3f3"}"/>`,
      );
      out.push(`<text x="${X(x).toFixed(1)}" y="${T + PH + 14}" text-anchor="middle">${fmt(x)}</text>`);
    }
  for (let d = ly0; d <= ly1; d++)
    for (const m of [1, 2, 5]) {
      const y = m * 10 ** d;
      if (Math.log10(y) > ly1) continue;
      out.push(
        `<line x1="${L}" x2="${L + PW}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="` +
          `${m === 1 ? "#ddd" : "#f3f3f3"}"/>`,
      );
      out.push(
        `<text x="${L - 6}" y="${Y(y).toFixed(1)}" text-anchor="end" dominant-baseline="middle">${fmt(y)}</text>`,
      );
    }
  out.push(`<text x="${L + PW / 2}" y="${T + PH + 32}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${T + PH / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  o.series.forEach((s, si) => {
    const ps = s.points.filter((p) => p.x > 0 && p.y > 0 && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    for (let i = 1; i < ps.length; i++) {
      const dash = ps[i].measured && ps[i - 1].measured ? "" : ` stroke-dasharray="5 4"`;
      out.push(
        `<line x1="${X(ps[i - 1].x).toFixed(1)}" y1="${Y(ps[i - 1].y).toFixed(1)}" x2="` +
          `${X(ps[i].x).toFixed(1)}" y2="${Y(ps[i].y).toFixed(1)}" stroke="${s.color}" stroke-` +
          `width="2"${dash}/>`,
      );
    }
    for (const p of ps)
      out.push(
        `<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="4" ` +
          `fill="${p.measured ? s.color : "white"}" stroke="${s.color}" stroke-width="2">` +
          `<title>${esc(`${s.name} N=${p.x}: ${+p.y.toPrecision(4)} (${p.measured ? "measured" : "modelled"})`)}` +
          `</title></circle>`,
      );
    const ly = T + PH + 52 + Math.floor(si / 3) * 16,
      lx = L + (si % 3) * 200;
    out.push(
      `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/><text x="` +
        `${lx + 24}" y="${ly}" dominan` +
        `t-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  for (const r of o.refs ?? []) {
    out.push(
      `<path d="M ${X(r.x) - 5} ${Y(r.y)} l 5 -5 l 5 5 l -5 5 z" fill="#999"><title>${esc(r.label)}</title></path>`,
    );
    out.push(`<text x="${X(r.x) + 8}" y="${Y(r.y) - 6}" fill="#777" font-size="9">${esc(r.label)}</text>`);
  }
  out.push(
    `<text x="${L}" y="${H - 6}" fill="#777" font-size="10">filled: measured on this machine · hollow, dashed: ` +
      `modelled · grey diamonds: published figures · log-log</text>`,
    "</svg>",
  );
  return out.join("\n");
}
