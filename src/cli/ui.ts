// `wasmvs ui`: a local web server for the teaching page. Static files only, on 127.0.0.1: src/ui's page,
// its script bundled for the browser from src/ui/app.ts (which imports src/core, the same host code the
// command line uses), and build/core.wasm itself. Nothing is fetched from anywhere else.
import { createServer, type Server } from "node:http";
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { wasmPath } from "../core/index.ts";
import { checks, parseOrExit, type CommandSpec } from "./args.ts";

// from the project root, so that the built command (dist/cli/) finds the same files
const UI_DIR = fileURLToPath(new URL("../../src/ui/", import.meta.url));

export const UI_USAGE = `usage: wasmvs ui [--port PORT]

Serves the scheduler visualiser on http://127.0.0.1:PORT/ (default 8377; 0 picks a free port): the
page loads build/core.wasm, the same data plane the command line and the tests run.
`;

// The page's script: src/ui/app.ts and what it imports from src/core, as one browser module. node:net
// (used by src/core/addr.ts for isIPv4/isIPv6) becomes a few lines; node:fs is only reached by Core.load,
// which the page never calls.
export async function bundleApp(): Promise<string> {
  const esbuild = await import("esbuild");
  const netShim = `
    const v4 = /^(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}$/;
    export function isIPv4(s) { return v4.test(s); }
    export function isIPv6(s) {
      if (!s.includes(":") || /[^0-9a-fA-F:.]/.test(s)) return false;
      const m = s.match(/(\\d+\\.\\d+\\.\\d+\\.\\d+)$/);
      if (m && !v4.test(m[1])) return false;
      const body = m ? s.slice(0, -m[1].length) + "0:0" : s;
      const dbl = body.split("::");
      if (dbl.length > 2) return false;
      const groups = dbl.flatMap((p) => (p ? p.split(":") : []));
      if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return false;
      return dbl.length === 2 ? groups.length < 8 : groups.length === 8;
    }`;
  const r = await esbuild.build({
    entryPoints: [fileURLToPath(new URL("../../src/ui/app.ts", import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    minify: false,
    external: ["node:fs"],
    logLevel: "silent",
    plugins: [
      {
        name: "node-net-shim",
        setup(b) {
          b.onResolve({ filter: /^node:net$/ }, () => ({ path: "node-net", namespace: "shim" }));
          b.onLoad({ filter: /.*/, namespace: "shim" }, () => ({ contents: netShim, loader: "js" }));
        },
      },
    ],
  });
  return r.outputFiles[0].text;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  wasm: "application/wasm",
};
const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; connect-src " +
  "'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

export interface UiServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function startUi(opts: { port?: number; wasm?: string } = {}): Promise<UiServer> {
  const wasm = opts.wasm ?? wasmPath(false);
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run 'npm run build' first`);
  const app = await bundleApp();
  const files: Record<string, () => Buffer | string> = {
    "/": () => readFileSync(UI_DIR + "index.html"),
    "/index.html": () => readFileSync(UI_DIR + "index.html"),
    "/style.css": () => readFileSync(UI_DIR + "style.css"),
    "/app.js": () => app,
    "/core.wasm": () => readFileSync(wasm),
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const f = files[path];
    if ((req.method !== "GET" && req.method !== "HEAD") || !f) {
      res.writeHead(req.method === "GET" || req.method === "HEAD" ? 404 : 405, { "content-type": "text/plain" });
      res.end("not found\n");
      return;
    }
    const body = f();
    const ext = path === "/" ? "html" : path.split(".").pop()!;
    res.writeHead(200, {
      "content-type": TYPES[ext] ?? "application/octet-stream",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
    });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 8377, "127.0.0.1", () => ok());
  });
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/`, port, server, close: () => new Promise((ok) => server.close(() => ok())) };
}

const UI: CommandSpec = {
  name: "wasmvs ui",
  usage: UI_USAGE,
  flags: { "--port": { kind: "value", aliases: ["-p"], check: checks.int(0, 65535) } },
};

export async function runUi(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const a = parseOrExit(argv, UI, { out, err });
  if (typeof a === "number") return a;
  const port = Number(a.get("--port") ?? 8377);
  try {
    const ui = await startUi({ port });
    out.write(`wasmvs ui: ${ui.url}  (127.0.0.1 only; Ctrl-C stops)\n`);
    await new Promise<void>((ok) => {
      process.once("SIGINT", () => {
        void ui.close().then(ok);
      });
      process.once("SIGTERM", () => {
        void ui.close().then(ok);
      });
    });
    return 0;
  } catch (e) {
    err.write(`wasmvs ui: ${(e as Error).message}\n`);
    return 1;
  }
}
