// /proc/net/ip_vs_conn as the kernel prints it: connections and persistence templates in both of a
// template's states (NONE, and ASSURED once a connection it controls is established).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseIpVsConn } from "../src/kernel/target.ts";

const PROC = `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 0A020001 9C40 0A000001 0050 0A010002 0050 ESTABLISHED 899
TCP 0A020001 0000 0A000001 0050 0A010002 0050 ASSURED     299
TCP 0A020002 0000 0A000001 0050 0A010003 0050 NONE        299
IP  0A020003 0000 0A000001 0000 0A010001 0000 NONE        299
`;

test("parseIpVsConn: templates in NONE and ASSURED are templates; connections are not", () => {
  const e = parseIpVsConn(PROC);
  assert.equal(
    e.map((x) => [x.state, x.client.addr, x.client.port, x.dest.addr, !!x.template]),
    [
      ["ESTABLISHED", "10.2.0.1", 40000, "10.1.0.2", false],
      ["ASSURED", "10.2.0.1", 0, "10.1.0.2", true],
      ["NONE", "10.2.0.2", 0, "10.1.0.3", true],
      ["NONE", "10.2.0.3", 0, "10.1.0.1", true],
    ],
  );
  assert.is(e[0].expiresMs, 899_000);
});

test.run();
