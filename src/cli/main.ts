// The wasmvs command line. Today: the demo and the version; the ipvsadm-compatible verbs, proxy,
// sync, sim, bench, trace and ui arrive with their issues.
import { readFileSync } from "node:fs";
import { demo } from "./demo.ts";

const USAGE = `usage: wasmvs <command>

commands:
  demo       every IPVS scheduler choosing for the same burst of connections (what npm start runs)
  version    print the version
  help       this text

Benchmarks: npm run bench   Fuzzing: npm run fuzz   Tests: npm test
`;

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? "demo";
  switch (cmd) {
    case "demo":
      return demo();
    case "version":
    case "--version":
    case "-V": {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
      process.stdout.write(`wasmvs ${pkg.version}\n`);
      return 0;
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`wasmvs: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}
