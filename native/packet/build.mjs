// Builds the packet-mode I/O addon (native/packet/build/Release/wasmvs_packet.node) with node-gyp against
// the running Node's own headers, offline. Run by `npm install`/`npm ci` (the "install" script) and by hand:
// node native/packet/build.mjs. A failed build never fails the install: socket mode needs no addon, and
// `wasmvs proxy --mode packet` then says why packet mode is unavailable (native/packet/build/status.json).
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeGyp, rebuildArgs } from "../gyp.mjs";

const here = dirname(fileURLToPath(import.meta.url));

// AF_XDP (--packet-io xdp) goes in when libxdp's and libbpf's headers are installed (binding.gyp asks the same
// script); without them the addon is built as before, and packet mode says why xdp is not there.
const xdp =
  process.platform === "linux" &&
  spawnSync("sh", [join(here, "has-xdp.sh")], { encoding: "utf8" }).stdout?.trim() === "1";
const xdpNote = xdp
  ? "with AF_XDP"
  : "without AF_XDP: libxdp-dev and libbpf-dev are not installed (apt-get install libxdp-dev libbpf-dev)";

function record(ok, detail) {
  mkdirSync(join(here, "build"), { recursive: true });
  writeFileSync(
    join(here, "build", "status.json"),
    JSON.stringify({ ok, detail, xdp: ok && xdp, node: process.version, at: new Date().toISOString() }, null, 2) + "\n",
  );
}

if (process.platform !== "linux") {
  record(false, `packet mode needs Linux (AF_PACKET); this is ${process.platform}`);
  console.log("wasmvs: packet-mode addon not built (not Linux); socket mode is unaffected");
  process.exit(0);
}
const [cmd, ...pre] = nodeGyp();
const args = [...pre, ...rebuildArgs()];
const r = spawnSync(cmd, args, { cwd: here, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
if (r.status === 0) {
  record(true, "built");
  // wasmvs_packet_plain.node beside it, without AF_XDP: loaded where libxdp or libbpf is missing at run time
  console.log(`wasmvs: packet-mode addon built (native/packet/build/Release/wasmvs_packet.node), ${xdpNote}`);
} else {
  const why =
    (r.error?.message ?? `${r.stderr}\n${r.stdout}`)
      .trim()
      .split("\n")
      .filter((l) => /error|Error|not found/.test(l))
      .slice(-6)
      .join("\n") || `node-gyp exited with ${r.status}`;
  record(false, why);
  console.log(`wasmvs: packet-mode addon NOT built (socket mode is unaffected):\n${why}`);
}
