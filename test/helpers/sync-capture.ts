// The kernel's sync datagrams captured in the VM (test/kernel-vm/sync-capture.ts; its master ran with
// --syncid 7), as the tests read them: the whole capture, and its version 1 datagrams.
import { readFileSync } from "node:fs";
import type { SyncCapture } from "../kernel-vm/sync-capture.ts";

export const syncCapture: SyncCapture = JSON.parse(
  readFileSync(new URL("../fixtures/sync/kernel-capture.json", import.meta.url), "utf8"),
);

/** The capture's version 1 datagrams, in the order they were sent. */
export const captureV1Datagrams = (): Buffer[] =>
  syncCapture.phases
    .filter((p) => String(p.version) === "1")
    .flatMap((p) => p.datagrams.map((d) => Buffer.from(d.hex, "hex")));
