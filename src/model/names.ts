// Name resolution for ipvsadm's non-numeric forms (-L without -n, "-t myhost:http"). ipvsadm asks the C
// library (gethostbyaddr/getservbyport and the reverse); wasmvs reads the same files (/etc/hosts,
// /etc/services) and never asks DNS, so `-L` shows a name only where those files have one.
import { canonicalAddr, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from "./inet.ts";

export interface NameResolver {
  /** gethostbyaddr: a host name for the address, or undefined (print the address) */
  addrToHost(af: number, addr: string): string | undefined;
  /** getservbyport: a service name for the port and protocol number, or undefined (print the number) */
  portToService(port: number, proto: number): string | undefined;
  /** gethostbyname for IPv4 (ipvsadm's host_to_addr) */
  hostToAddr(name: string): string | undefined;
  /** getservbyname */
  serviceToPort(name: string, proto: number): number | undefined;
}

export const numericResolver: NameResolver = {
  addrToHost: () => undefined,
  portToService: () => undefined,
  hostToAddr: () => undefined,
  serviceToPort: () => undefined,
};

const protoName = (p: number) =>
  p === IPPROTO_TCP ? "tcp" : p === IPPROTO_UDP ? "udp" : p === IPPROTO_SCTP ? "sctp" : "";

/** A resolver over the text of /etc/services and /etc/hosts (first match wins, as the files backend does). */
export function filesResolver(servicesText: string, hostsText: string): NameResolver {
  const byPort = new Map<string, string>();
  const byName = new Map<string, number>();
  for (const raw of servicesText.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [name, pp, ...aliases] = line.split(/\s+/);
    const m = /^(\d+)\/(\w+)$/.exec(pp ?? "");
    if (!m) continue;
    const port = Number(m[1]),
      proto = m[2];
    const k = `${port}/${proto}`;
    if (!byPort.has(k)) byPort.set(k, name);
    for (const n of [name, ...aliases]) if (!byName.has(`${n}/${proto}`)) byName.set(`${n}/${proto}`, port);
  }
  const hostByAddr = new Map<string, string>();
  const addrByHost = new Map<string, string>();
  for (const raw of hostsText.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [addr, ...names] = line.split(/\s+/);
    if (!names.length) continue;
    const a = canonicalAddr(addr);
    if (!hostByAddr.has(a)) hostByAddr.set(a, names[0]);
    if (!a.includes(":")) for (const n of names) if (!addrByHost.has(n)) addrByHost.set(n, a);
  }
  return {
    addrToHost: (_af, addr) => hostByAddr.get(canonicalAddr(addr)),
    portToService: (port, proto) => (protoName(proto) ? byPort.get(`${port}/${protoName(proto)}`) : undefined),
    hostToAddr: (name) => addrByHost.get(name),
    serviceToPort: (name, proto) => (protoName(proto) ? byName.get(`${name}/${protoName(proto)}`) : undefined),
  };
}
