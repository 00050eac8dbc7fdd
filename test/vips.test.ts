// VipBinder over real rtnetlink, inside a network namespace made here: the wanted addresses are added as
// /32 and /128, whatever else is on the interface is removed (whatever its prefix length: loopback's own
// 127.0.0.1/8 and ::1/128 here), a second pass changes nothing, a bad address is refused by name.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";

import { needs, skip } from "./helpers/skip.ts";

const NAME = "VipBinder: adds what is wanted, removes the rest, converges, refuses a bad address";
const why = needs(["ip"], "apt-get install -y iproute2");
if (why) skip(import.meta.url, NAME, why);
else
  test(NAME, () => {
    const ns = `wasmvs-vips-${process.pid}`;
    execFileSync("ip", ["netns", "add", ns]);
    let out: string;
    try {
      execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
      out = execFileSync("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", "test/helpers/vips-run.ts"], {
        encoding: "utf8",
      });
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
    const line = out.split("\n").find((l) => l.startsWith("@@RESULT "));
    assert.ok(line, out);
    const r = JSON.parse(line!.slice(9));
    assert.equal([...r.first.added].sort(), ["10.96.0.1", "10.96.0.2", "fd00::10"]);
    assert.equal([...r.first.removed].sort(), ["127.0.0.1", "::1"]);
    assert.equal(r.afterFirst, ["10.96.0.1/32", "10.96.0.2/32", "fd00::10/128"]);
    assert.equal({ a: r.second.added, d: r.second.removed, f: r.second.failures }, { a: [], d: [], f: [] });
    assert.equal(r.third.removed.sort(), ["10.96.0.1", "fd00::10"]);
    assert.equal(r.third.failures, [{ addr: "not-an-address", error: "not an IP address" }]);
    assert.equal(r.afterThird, ["10.96.0.2/32"]);
  });

test.run();
