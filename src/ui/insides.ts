// Drawings of a scheduler's insides for the page's "Inside the scheduler" panel, from the views
// src/ui/sched-state.ts reads out of the data plane: the least-loaded schedulers' winner tree with the
// decision's path, lblc/lblcr's locality table and sets, and mh's table filling claim by claim.
// Every drawing carries data-* attributes with what it shows, for the page's tests.
import type { LocalityView, MhFillView, TreeView } from "./sched-state.ts";
import { winnerPath } from "./sched-state.ts";

export interface Paint {
  name(id: number): string; // a destination's name, "-" for none
  color(name: string): string;
  esc(s: string): string;
}
// a destination's figures as the decision saw them
export interface DestLoad {
  act: number;
  inact: number;
  weight: number;
  overloaded: boolean;
}

const tag = (p: Paint, name: string) => `<span class="s-dest" style="color:${p.color(name)}">${p.esc(name)}</span>`;

// What each least-loaded scheduler compares, as text for a leaf (the tree's own order decides).
function loadText(sched: string, x: DestLoad): string {
  const oh = `${x.act}×256+${x.inact}`;
  if (sched === "lc") return oh;
  if (sched === "wlc") return `(${oh})/${x.weight}`;
  if (sched === "sed" || sched === "nq") return `${x.act + 1}/${x.weight}`;
  if (sched === "fo") return `w${x.weight}`;
  return `a${x.act} w${x.weight}`; // ovf: active ≤ weight, then the highest weight
}

// The tournament tree as an SVG: its top four levels (the whole tree up to 8 leaves; below that, each node
// of the bottom row is the winner of its part of the list), list order left to right (newest first), each
// node holding the winner of the two below; the decision's path down from the root is drawn thick. Small
// enough for a phone at full size; the loads compared go in a line of text below.
const TREE_ROWS = 4;
export function treeSvg(t: TreeView, loads: Map<number, DestLoad>, sched: string, p: Paint): string {
  const L = t.leaves;
  const rows = Math.min(TREE_ROWS, Math.log2(L) + 1);
  const bottom = 1 << (rows - 1); // nodes in the bottom row drawn
  const col = 44,
    rowH = 50,
    W = bottom * col,
    H = rows * rowH;
  const onPath = new Set(winnerPath(t));
  // node -> x: a row's nodes run right child first (earlier in list order) from the left
  const x = (node: number): number => {
    const level = Math.floor(Math.log2(node)),
      first = 1 << level;
    const k = 2 * first - 1 - node; // 0 = the earliest in list order
    return (k + 0.5) * (W / first);
  };
  const y = (node: number) => 20 + Math.floor(Math.log2(node)) * rowH;
  const parts: string[] = [];
  for (let node = 2; node < 2 * bottom; node++) {
    const hot = onPath.has(node) && onPath.has(node >> 1);
    parts.push(
      `<line x1="${x(node >> 1)}" y1="${y(node >> 1) + 13}" x2="${x(node)}" y2="${y(node) - 13}" ` +
        `stroke="${hot ? "#1d2125" : "#8a939c"}" stroke-width="${hot ? 3 : 1}"/>`,
    );
  }
  for (let node = 1; node < 2 * bottom; node++) {
    const w = t.win[node];
    const nm = w >= 0 ? p.name(t.leaf[w]) : "";
    const free = node >= L && t.leaf[node - L] < 0;
    const hot = onPath.has(node);
    parts.push(
      `<g data-node="${node}" data-win="${p.esc(nm)}"${hot ? ' data-path="1"' : ""}>` +
        `<circle cx="${x(node)}" cy="${y(node)}" r="13" fill="${nm ? p.color(nm) : "#ffffff"}" ` +
        `stroke="${hot ? "#1d2125" : "#5f6870"}" stroke-width="${hot ? 3 : 1}"` +
        `${free ? ' stroke-dasharray="3 2"' : ""}/>` +
        `<text x="${x(node)}" y="${y(node) + 5}" text-anchor="middle" font-size="14" font-weight="700" ` +
        `fill="${nm ? "#ffffff" : "#3d454d"}">${p.esc(nm || (free ? "" : "–"))}</text></g>`,
    );
  }
  const winId = t.win[1] >= 0 ? t.leaf[t.win[1]] : -1;
  const pathNames = [...onPath].sort((a, b) => a - b).map((n) => p.name(t.leaf[t.win[n]]));
  const listed = [...t.leaf.entries()].filter(([, id]) => id >= 0).reverse();
  const loadLine = listed
    .map(([, id]) => {
      const ld = loads.get(id);
      return `${p.esc(p.name(id))} ${
        ld
          ? p.esc(loadText(sched, ld)) + (ld.overloaded ? " overloaded" : "") + (ld.weight <= 0 ? " (weight 0)" : "")
          : ""
      }`;
    })
    .join(" · ");
  return (
    `<svg id="tree" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" ` +
    `data-leaves="${L}" data-winner="${winId >= 0 ? p.esc(p.name(winId)) : ""}" ` +
    `data-nodes="${t.win
      .slice(1)
      .map((w) => (w >= 0 ? p.esc(p.name(t.leaf[w])) : ""))
      .join(",")}" ` +
    `data-path="${pathNames.map(p.esc).join(",")}" ` +
    `aria-label="the index tree: each node holds the better of the two below it; ` +
    `the root, ${winId >= 0 ? p.esc(p.name(winId)) : "nobody"}, is the choice">${parts.join("")}</svg>` +
    `<p class="state-info" id="tree-loads">${
      L > bottom ? `The bottom row: the winners of ${L / bottom} list ` + `positions each (${L} in all). ` : ""
    }Compared, in list order: ${loadLine}</p>`
  );
}

export function treeCaption(t: TreeView, p: Paint): string {
  const path = winnerPath(t);
  const winId = t.win[1] >= 0 ? t.leaf[t.win[1]] : -1;
  if (winId < 0) return "The tree's root holds nobody: no destination may be chosen.";
  const beaten = path
    .slice(1)
    .map((n) => t.win[n ^ 1])
    .filter((w) => w >= 0)
    .map((w) => tag(p, p.name(t.leaf[w])));
  return (
    `The index tree as this decision found it: every node holds the better of the two below it, so the ` +
    `root holds the choice, ${tag(p, p.name(winId))}` +
    (beaten.length ? `, which beat ${beaten.reverse().join(", then ")} on its way up.` : ".") +
    (t.irregular > 0 ? " (A load past the int range: the kernel's scan chose instead.)" : "")
  );
}

// lblc: address -> server; lblcr: address -> set (head first). The decision's address is marked.
export function localityHtml(v: LocalityView, sched: string, now: number, dst: string, p: Paint): string {
  const secs = (ms: number) => (ms / 1000).toFixed(1);
  const rows = [...v.entries]
    .sort((a, b) => a.bucket - b.bucket)
    .map((e) => {
      const who =
        sched === "lblcr"
          ? `{${e.set.map((id) => tag(p, p.name(id))).join(" ")}}`
          : e.dest >= 0
            ? tag(p, p.name(e.dest))
            : "–";
      const idle = now - e.lastuse;
      return (
        `<tr data-addr="${p.esc(e.addr)}" data-who="${p.esc(
          sched === "lblcr" ? e.set.map(p.name).join(" ") : p.name(e.dest),
        )}"${e.addr === dst ? ' class="lit"' : ""}><td>${p.esc(e.addr)}</td><td>${e.bucket}</td>` +
        `<td>${who}</td><td>${secs(idle)} s</td>` +
        (sched === "lblcr" ? `<td>${secs(now - e.lastmod)} s</td>` : "") +
        "</tr>"
      );
    });
  const head = `<tr><th>address</th><th>bucket</th><th>${
    sched === "lblcr" ? "set (head first)" : "server"
  }</th><th>idle</th>${sched === "lblcr" ? "<th>unchanged</th>" : ""}</tr>`;
  const full = 30 - (v.counter % 30);
  return (
    `<div class="scroll"><table id="locality" aria-label="the locality table" data-rows="${v.entries.length}">` +
    `<thead>${head}</thead><tbody>${rows.join("")}</tbody></table></div>` +
    `<p class="state-info" id="locality-timer">The timer runs every 60 s ` +
    `(next in ${secs(Math.max(0, v.nextCheck - now))} s); ` +
    `every 30th run (${full === 30 ? "this one" : `in ${full} runs`}) drops entries idle for ` +
    `${sched}_expiration (${secs(v.expiration)} s)` +
    (sched === "lblcr"
      ? "; a set of two or more unchanged that " + "long loses its most loaded member at its next use."
      : ".") +
    "</p>"
  );
}

// mh's population up to claim k (0 = empty table): the slots claimed so far in their owner's colour, the
// k-th claim framed, and each member's permutation.
export function mhFillDraw(canvas: HTMLCanvasElement, v: MhFillView, k: number, p: Paint): string {
  const size = v.size;
  const cols = size <= 256 ? 32 : 128,
    cell = size <= 256 ? 10 : 3,
    rows = Math.ceil(size / cols);
  canvas.width = cols * cell;
  canvas.height = rows * cell;
  const g = canvas.getContext("2d")!;
  g.fillStyle = "#d5d8dc";
  g.fillRect(0, 0, canvas.width, canvas.height);
  const gap = cell > 4 ? 1 : 0;
  for (let c = 0; c < k && c < v.claims.length; c++) {
    const cl = v.claims[c];
    g.fillStyle = p.color(p.name(v.members[cl.member].id));
    g.fillRect((cl.slot % cols) * cell, Math.floor(cl.slot / cols) * cell, cell - gap, cell - gap);
  }
  const last = k > 0 ? v.claims[k - 1] : undefined;
  if (last) {
    g.strokeStyle = "#000";
    g.lineWidth = 2;
    const cx = (last.slot % cols) * cell,
      cy = Math.floor(last.slot / cols) * cell;
    g.strokeRect(cx - 1, cy - 1, cell + 1, cell + 1);
    // a ring as well where a slot is only a few pixels wide, so the eye finds it
    if (cell < 6) {
      g.beginPath();
      g.arc(cx + cell / 2, cy + cell / 2, 9, 0, 2 * Math.PI);
      g.stroke();
    }
  }
  canvas.dataset.claimed = String(k);
  canvas.dataset.slot = last ? String(last.slot) : "";
  canvas.dataset.owner = last ? p.name(v.members[last.member].id) : "";
  const n = v.members.filter((m) => m.turns > 0).length;
  const perRound = v.members.reduce((a, m) => a + m.turns, 0);
  const round = perRound ? Math.floor((k - 1) / perRound) + 1 : 0;
  const members = v.members
    .map((m) => `${tag(p, p.name(m.id))} offset ${m.offset}, skip ${m.skip}, ` + `${m.turns} per round`)
    .join(" · ");
  const claim = last
    ? `Claim ${k} of ${size} (round ${round}): ${tag(p, p.name(v.members[last.member].id))} ` +
      `takes slot <b>${last.slot}</b>` +
      (last.passed
        ? `, after passing ${last.passed} slot${
            last.passed === 1 ? "" : "s"
          } already taken (each time + skip, mod ${size})`
        : ", the next place of its permutation, free") +
      "."
    : `An empty table of ${size} slots: round after round each of the ${n} members, in list order, claims its ` +
      `turns' worth of slots, each at the next free place of offset, offset + skip, … (mod ${size}).`;
  return `<p class="state-info">${members}</p><p class="state-info" id="mh-claim">${claim}</p>`;
}

// ---- the same, as text for `wasmvs trace --insides` ----------------------------------------------------
// The tree level by level (leaves in list order), the decision's path in brackets; "·" a free leaf, "–" a
// node with nobody eligible below.
export function treeText(t: TreeView, name: (id: number) => string): string[] {
  const onPath = new Set(winnerPath(t));
  const L = t.leaves;
  const cell = (node: number) => {
    const w = t.win[node];
    const leafFree = node >= L && t.leaf[node - L] < 0;
    const nm = leafFree ? "·" : w >= 0 ? name(t.leaf[w]) : "–";
    return onPath.has(node) ? `[${nm}]` : nm;
  };
  const lines: string[] = [];
  for (let first = 1; first < 2 * L; first <<= 1) {
    const row: string[] = [];
    for (let node = 2 * first - 1; node >= first; node--) row.push(cell(node)); // list order: right child first
    lines.push(row.join(" "));
  }
  return lines;
}

export function localityText(v: LocalityView, sched: string, now: number, name: (id: number) => string): string[] {
  const rows = [...v.entries]
    .sort((a, b) => a.bucket - b.bucket)
    .map(
      (e) =>
        `${e.addr} → ` +
        (sched === "lblcr" ? `{${e.set.map(name).join(" ")}}` : e.dest >= 0 ? name(e.dest) : "-") +
        ` (bucket ${e.bucket}, idle ${((now - e.lastuse) / 1000).toFixed(1)} s)`,
    );
  return rows.length ? rows : ["(empty)"];
}

// the members' permutations and the first `count` claims of the population
export function mhFillText(v: MhFillView, name: (id: number) => string, count: number): string[] {
  const out = v.members.map((m) => `${name(m.id)}: offset ${m.offset}, skip ${m.skip}, ${m.turns} per round`);
  const claims = v.claims
    .slice(0, count)
    .map((c) => `${name(v.members[c.member].id)}→${c.slot}` + (c.passed ? ` (+${c.passed} taken)` : ""));
  out.push(`claims 1-${claims.length} of ${v.size}: ${claims.join(", ")}`);
  return out;
}
