// Run by netlink.ts as an unprivileged user: an IPVS change without CAP_NET_ADMIN. Prints "CODE: meaning".
import { IpvsClient, IpvsError } from "../../src/kernel/client.ts";
try {
  const c = await IpvsClient.open({ timeoutMs: 5000 });
  await c.addService({ protocol: "tcp", addr: "10.0.0.99", port: 80, scheduler: "rr", flags: [], realServers: [] });
  console.log("no error");
  c.close();
} catch (e) {
  console.log(e instanceof IpvsError ? `${e.code}: ${e.meaning}` : String(e));
}
