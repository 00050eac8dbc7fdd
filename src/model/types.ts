// The desired state every front end produces (ipvsadm rules, config files, Kubernetes objects) and every
// back end consumes (the WASM core, kernel IPVS over netlink, the userspace proxy): one shape for all.

export type Protocol = "tcp" | "udp" | "sctp";
export type ForwardingMethod = "masq" | "route" | "tunnel" | "local" | "bypass" | "fullnat";
export type TunnelType = "ipip" | "gue" | "gre";

export interface RealServer {
  addr: string; // IPv4 or IPv6 literal
  port: number; // 0..65535 (0: use the packet's port)
  weight: number; // 0..65535 (0: quiesced)
  fwd: ForwardingMethod; // ipvsadm -m / -g / -i
  upperThreshold: number; // -x, 0 = unlimited
  lowerThreshold: number; // -y, 0 = unset
  tunType?: TunnelType; // with fwd "tunnel" (--tun-type)
  tunPort?: number; // gue port (--tun-port)
  tunFlags?: string[]; // --tun-nocsum / --tun-csum / --tun-remcsum
}

export interface VirtualService {
  // identity: (protocol, addr, port), or a firewall mark with its address family
  protocol?: Protocol;
  addr?: string;
  port?: number;
  fwmark?: number;
  family?: "inet" | "inet6"; // for fwmark services (-6); otherwise from addr
  scheduler: string; // rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos
  flags: string[]; // ipvsadm -b names (sh-fallback, sh-port, mh-fallback, mh-port, flag-N) and "ops" (-o)
  persistent?: number; // -p seconds; absent = not persistent
  netmask?: string; // -M: IPv4 dotted mask or IPv6 prefix length as a string
  pe?: string; // --pe (persistence engine, e.g. "sip")
  connectTimeout?: number; // wasmvs proxy (socket mode): seconds for a backend connect; absent: proxy.connectTimeout
  // wasmvs proxy (socket mode): seconds a TCP connection may move no byte; absent: proxy.idleTimeout
  idleTimeout?: number;
  realServers: RealServer[];
}

export interface IpvsTimeouts {
  tcp: number;
  tcpfin: number;
  udp: number;
} // ipvsadm --set (seconds)

export interface DesiredState {
  services: VirtualService[];
  timeouts?: IpvsTimeouts;
}

// A stable identity string: "tcp 10.0.0.1:80", "udp [fd00::1]:53", "fwmark 7 inet"
export function serviceKey(s: Pick<VirtualService, "protocol" | "addr" | "port" | "fwmark" | "family">): string {
  if (s.fwmark) return `fwmark ${s.fwmark} ${s.family ?? "inet"}`;
  const a = s.addr ?? "";
  return `${s.protocol ?? "tcp"} ${a.includes(":") ? `[${a}]` : a}:${s.port ?? 0}`;
}

/** The identity fields back from a serviceKey() string (for a service known only by its key, e.g. removed). */
export function parseServiceKey(
  key: string,
): Pick<VirtualService, "protocol" | "addr" | "port" | "fwmark" | "family"> | null {
  let m = /^fwmark (\d+) (inet6?)$/.exec(key);
  if (m) return { fwmark: Number(m[1]), family: m[2] as "inet" | "inet6" };
  m = /^(tcp|udp|sctp) (?:\[([^\]]+)\]|([^:\s]+)):(\d+)$/.exec(key);
  if (m) return { protocol: m[1] as Protocol, addr: m[2] ?? m[3], port: Number(m[4]) };
  return null;
}

export function realServerKey(r: Pick<RealServer, "addr" | "port">): string {
  return r.addr.includes(":") ? `[${r.addr}]:${r.port}` : `${r.addr}:${r.port}`;
}
