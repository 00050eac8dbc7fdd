#!/usr/bin/env node
// The wasmvs command: registers the TypeScript loader, then runs src/cli/main.ts.
import { register } from "tsx/esm/api";

register();
// a closed pipe (wasmvs ... | head) ends the output quietly, as other CLIs do
process.stdout.on("error", (e) => { if (e.code === "EPIPE") process.exit(0); throw e; });
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
