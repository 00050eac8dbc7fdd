// The teaching page (src/ui, served by `wasmvs ui`) in Debian's headless chromium, driven by playwright-core:
// clicks change the data plane's state, the decisions the page shows equal the core's own (replayed here on
// an untraced Core), the page makes no request outside its own server, and screenshots of each view are
// taken (WASMVS_UI_SHOTS names the folder; default $TMPDIR/wasmvs-ui-shots) and checked for key elements.
// Skips, saying why, when /usr/bin/chromium is absent (apt-get install -y chromium).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, mkdirSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Core, TCP_FLAGS } from "../src/core/index.ts";
import { startUi, type UiServer } from "../src/cli/ui.ts";
import { guardedBefore, skip } from "./helpers/skip.ts";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = process.env.WASMVS_UI_SHOTS ?? join(tmpdir(), "wasmvs-ui-shots");

if (!existsSync(CHROMIUM)) {
  skip(import.meta.url, "the teaching page in headless chromium (every test of this file)", `${CHROMIUM} is absent (as root: apt-get update && apt-get install -y chromium)`);
  test.run();
} else {
  const { chromium } = await import("playwright-core");
  type Ctx = Awaited<ReturnType<typeof chromium.launchPersistentContext>>;
  type Page = Awaited<ReturnType<Ctx["newPage"]>>;
  let ui: UiServer, ctx: Ctx, profile: string;
  const foreign: string[] = [];

  guardedBefore(test, async () => {
    mkdirSync(SHOTS, { recursive: true });
    ui = await startUi({ port: 0 });
    profile = mkdtempSync(join(tmpdir(), "wasmvs-chromium-"));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1366, height: 800 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"],
    });
    await ctx.route("**/*", (route) => {
      const u = route.request().url();
      if (u.startsWith(ui.url) || u.startsWith("data:")) return route.continue();
      foreign.push(u);
      return route.abort();
    });
  });
  test.after(async () => {
    await ctx?.close();
    await ui?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function open(hash: string): Promise<Page> {
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(ui.url + "#" + hash);
    await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
    (page as any).errors = errors;
    return page;
  }
  interface Shown { n: number; client: string; sport: number; at: number; dest: string; destAddr: string; how: string }
  const decisions = (page: Page) => page.evaluate(() => (window as any).wasmvs.decisions()) as Promise<Shown[]>;

  async function shot(page: Page, name: string, keys: string[]): Promise<void> {
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path });
    const png = readFileSync(path);
    assert.is(png.subarray(1, 4).toString(), "PNG");
    assert.ok(png.readUInt32BE(16) >= 1000 && png.readUInt32BE(20) >= 600, "a laptop-sized screenshot");
    for (const sel of keys) {
      const box = await page.locator(sel).first().boundingBox();
      assert.ok(box && box.width > 0 && box.height > 0 && box.y < 800, `${name}: ${sel} is visible in the screenshot`);
    }
  }

  // the same service on an untraced core in Node, fed the page's connections
  async function replay(steps: (Shown | { edit: { addr: string; weight: number } })[], sched: string): Promise<string[]> {
    const core = await Core.load({ connCapacity: 1 << 14 });
    core.seedRandom(1);
    const svc = core.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: sched });
    for (const [a, w] of [["10.1.0.1", 4], ["10.1.0.2", 3], ["10.1.0.3", 2]] as const) core.addDest(svc, { addr: a, port: 80, weight: w });
    core.advance(1000);
    const out: string[] = [];
    for (const s of steps) {
      if ("edit" in s) { core.editDest(svc, { addr: s.edit.addr, port: 80, weight: s.edit.weight }); continue; }
      core.advance(1000 + s.at);
      const r = core.packet("in", "tcp", s.client, s.sport, "10.0.0.1", 80, { flags: TCP_FLAGS.SYN, now: 1000 + s.at });
      out.push(r.verdict === "forward" ? core.conn(r.conn)!.daddr : "-");
    }
    return out;
  }

  test("explore: sends, drains and switches scheduler; every decision shown is the core's", async () => {
    const page = await open("view=explore&s=wlc&c=5&h=0&r=4");
    for (let i = 0; i < 6; i++) await page.click("#send");
    let shown = await decisions(page);
    assert.is(shown.length, 6);
    assert.equal(shown.map((d) => d.destAddr), await replay(shown, "wlc"), "the page's choices are the core's");
    assert.is(await page.locator("#log li").count(), 6);
    assert.is(await page.locator("#log li").first().getAttribute("data-dest"), shown[5].destAddr);
    assert.match(await page.locator("#log li").first().innerText(), /wlc picks the least overhead per weight/);
    // drain A: its weight becomes 0 on the live service, and the link says so
    await page.click('tr[data-addr="10.1.0.1"] button[data-act="drain"]');
    assert.is(await page.locator('tr[data-addr="10.1.0.1"] input[data-act="weight"]').inputValue(), "0");
    assert.match(page.url(), /d=10\.1\.0\.1%3A0%2C/);
    for (let i = 0; i < 4; i++) await page.keyboard.press("n");
    shown = await decisions(page);
    assert.is(shown.length, 10);
    assert.ok(shown.slice(6).every((d) => d.destAddr !== "10.1.0.1"), "a drained server gets no new connection under wlc");
    const want = await replay([...shown.slice(0, 6), { edit: { addr: "10.1.0.1", weight: 0 } }, ...shown.slice(6)], "wlc");
    assert.equal(shown.map((d) => d.destAddr), want);
    // reweight B through its input
    await page.fill('tr[data-addr="10.1.0.2"] input[data-act="weight"]', "7");
    await page.press('tr[data-addr="10.1.0.2"] input[data-act="weight"]', "Enter");
    await page.locator("#reason").filter({ hasText: "Edited 10.1.0.2" }).waitFor();
    const w = await page.evaluate(() => (window as any).wasmvs.session().service().dests.map((d: any) => `${d.addr}:${d.weight}`));
    assert.equal(w, ["10.1.0.3:2", "10.1.0.2:7", "10.1.0.1:0"], "the WASM service holds the edited weights (list order)");
    await shot(page, "explore", ["#stage", "#log li", "#dests tbody tr", "#chart", "#reason"]);
    // the link reproduces the scenario
    const link = page.url();
    const again = await open(link.split("#")[1]);
    const w2 = await again.evaluate(() => (window as any).wasmvs.session().service().dests.map((d: any) => `${d.addr}:${d.weight}`));
    assert.equal(w2, w);
    await again.close();
    // switching to rr starts a new service
    await page.selectOption("#sched", "rr");
    await page.waitForFunction(() => (window as any).wasmvs.decisions().length === 0);
    for (let i = 0; i < 3; i++) await page.click("#send");
    const rr = await decisions(page);
    assert.equal(rr.map((d) => d.dest), ["C", "B", "C"], "the new service keeps the edits: A is drained, so rr skips it");
    assert.match(await page.locator("#log li").first().innerText(), /Round robin/);
    assert.equal((page as any).errors, []);
    await page.close();
  });

  test("explore: a stream runs on its own and stops with the key", async () => {
    const page = await open("view=explore&s=mh&c=50&h=500&r=40");
    await page.keyboard.press("s");
    await page.waitForFunction(() => (window as any).wasmvs.decisions().length >= 15, null, { timeout: 10000 });
    await page.keyboard.press("s");
    assert.is(await page.getAttribute("#stream", "aria-pressed"), "false");
    const shown = await decisions(page);
    const core = await Core.load();
    const svc = core.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "mh" });
    const ids = [["10.1.0.1", 4], ["10.1.0.2", 3], ["10.1.0.3", 2]].map(([a, w]) => core.addDest(svc, { addr: a as string, port: 80, weight: w as number }));
    // mh depends on the client only: Core.schedule agrees with every streamed decision
    for (const d of shown) assert.is(core.dest(core.schedule(svc, d.client, d.sport)).addr, d.destAddr);
    void ids;
    await page.close();
  });

  test("compare: the same flows; removing a backend moves few flows under mh, most under sh/dh/rr", async () => {
    const page = await open("view=compare&cmp=mh,sh,dh,rr&fl=1000&cn=5");
    await page.waitForSelector('.card[data-sched="mh"]');
    assert.is(await page.locator(".card").count(), 4);
    await page.selectOption("#cmp-victim", "1");
    await page.click("#cmp-remove");
    await page.locator('.card[data-sched="mh"] [data-m="moved"]').waitFor();
    const moved = async (s: string) => parseFloat(await page.locator(`.card[data-sched="${s}"] [data-m="moved"]`).innerText());
    const mh = await moved("mh"), sh = await moved("sh"), dh = await moved("dh"), rr = await moved("rr");
    assert.ok(mh < 25, `mh moved ${mh}%`);
    assert.ok(sh > 50 && dh > 50 && rr > 50, `sh ${sh}%, dh ${dh}%, rr ${rr}%`);
    assert.match(await page.locator('.card[data-sched="mh"]').innerText(), /after removing B: moved/);
    await shot(page, "compare", ['.card[data-sched="mh"] svg', '.card[data-sched="rr"] [data-m="moved"]', "#cmp-scheds"]);
    await page.close();
  });

  test("many nodes: per-node lc piles every node's first connection on one backend; mh agrees everywhere", async () => {
    const page = await open("view=nodes&nn=4&nb=2&ns=lc&nh=60000");
    await page.waitForSelector('.card[data-sched="lc"]');
    await page.click("#nd-each");
    const imb = async (s: string) => parseFloat(await page.locator(`.card[data-sched="${s}"] [data-m="imbalance"]`).innerText());
    assert.is(await imb("lc"), 2, "4 connections, all on one of 2 backends");
    assert.match(await page.locator('.card[data-sched="lc"]').innerText(), /b1: 0|b2: 0/);
    assert.is(await page.locator('.card[data-sched="mh"] [data-m="agree"]').innerText(), "100%");
    await shot(page, "nodes", ['.card[data-sched="lc"] svg', '.card[data-sched="mh"] [data-m="agree"]', "#nd-each"]);
    for (let i = 0; i < 5; i++) await page.keyboard.press("n");
    assert.match(await page.locator('.card[data-sched="lc"]').innerText(), /active 2\d/);
    await page.close();
  });

  test("keyboard and links: views switch with 1-3 and the hash follows; no request leaves the page's server", async () => {
    const page = await open("view=explore&s=sh&f=sh-port");
    assert.is(await page.isChecked('#flags input[value="sh-port"]'), true);
    await page.keyboard.press("2");
    assert.match(page.url(), /view=compare/);
    assert.is(await page.isVisible("#view-compare"), true);
    await page.keyboard.press("3");
    assert.is(await page.getAttribute("#tab-nodes", "aria-selected"), "true");
    await page.keyboard.press("1");
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.tagName);
    assert.ok(focused && focused !== "BODY", "Tab reaches a control");
    assert.equal(foreign, [], "no request outside 127.0.0.1");
    await page.close();
  });

  test.run();
}
