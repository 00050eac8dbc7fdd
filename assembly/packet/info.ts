// The packet (or connection attempt) a scheduler decides for. One instance, filled in place per packet:
// the data plane allocates nothing per packet.

export class PacketInfo {
  af: i32 = 2;
  proto: i32 = 6;
  // Addresses as four host-order words of the network-order address; IPv4 lives in word 3, the rest 0.
  // This makes the kernel's IPv6 XOR fold (s0^s1^s2^s3) equal the IPv4 ntohl(addr) for free.
  s0: u32 = 0;
  s1: u32 = 0;
  s2: u32 = 0;
  s3: u32 = 0;
  d0: u32 = 0;
  d1: u32 = 0;
  d2: u32 = 0;
  d3: u32 = 0;
  sport: u32 = 0;
  dport: u32 = 0;
  mark: u32 = 0;
  tcpFlags: u32 = 0;

  @inline srcFold(): u32 {
    return this.s0 ^ this.s1 ^ this.s2 ^ this.s3;
  }
  @inline dstFold(): u32 {
    return this.d0 ^ this.d1 ^ this.d2 ^ this.d3;
  }
}

export const pkt = new PacketInfo();
