// Fragments, forwarded by their first fragment's connection.
//
// IPVS never sees a fragment: conntrack's defragmentation (nf_defrag_ipv4/ipv6) reassembles the datagram
// before the IPVS hooks, and the output path fragments it again if it is too big for the route. Packet
// mode receives before the kernel's defragmentation, and reassembling here would mean holding up to 64 KiB
// per datagram in the data plane and sending datagrams larger than a batch slot. So it forwards each
// fragment as it comes, the way stateless balancers do: the first fragment (offset 0, more to come)
// carries the ports, is decided like any packet, and files its (source, destination, identification,
// protocol) here with its connection; the later fragments find the connection by that key and get the
// same address rewrite (and TTL), their bytes otherwise untouched. The first fragment's L4 checksum is
// updated incrementally: it covers the whole datagram, and the change is the same.
//
// What this gives up against reassembly, and says: a later fragment that arrives before its first is
// dropped (reason "fragment", counted); SCTP fragments are dropped (its CRC covers the whole datagram);
// under full-NAT two clients' datagrams with the same identification could meet at one real server
// from the same local address (the kernel would pick a new identification when it refragments). The
// table is direct-mapped: a newer datagram that hashes to a slot in use takes it over.
const SLOTS: u32 = 4096; // a power of two
const WORDS: u32 = 10; // af|proto, id, source (4), destination (4)
const keys = new StaticArray<u32>(<i32>(SLOTS * WORDS));
const conns = new StaticArray<i32>(<i32>SLOTS);
const expires = new StaticArray<i64>(<i32>SLOTS);
const TTL_MS: i64 = 2000; // the fragments of one datagram follow each other closely

export let fragmentsForwarded: u64 = 0; // later fragments forwarded by their first one's connection (path.ts counts)

// key words, filled by the caller before fragFile / fragFind
export let kAf: u32 = 0,
  kProto: u32 = 0,
  kId: u32 = 0;
export let kS0: u32 = 0,
  kS1: u32 = 0,
  kS2: u32 = 0,
  kS3: u32 = 0;
export let kD0: u32 = 0,
  kD1: u32 = 0,
  kD2: u32 = 0,
  kD3: u32 = 0;

export function fragKey(
  af: u32,
  proto: u32,
  id: u32,
  s0: u32,
  s1: u32,
  s2: u32,
  s3: u32,
  d0: u32,
  d1: u32,
  d2: u32,
  d3: u32,
): void {
  kAf = af;
  kProto = proto;
  kId = id;
  kS0 = s0;
  kS1 = s1;
  kS2 = s2;
  kS3 = s3;
  kD0 = d0;
  kD1 = d1;
  kD2 = d2;
  kD3 = d3;
}

function slotOf(): u32 {
  let h = (kId * 0x9e3779b1) ^ kS3 ^ (kD3 * 0x85ebca6b) ^ kS2 ^ kD2 ^ (kProto << 24);
  h ^= h >> 15;
  return h & (SLOTS - 1);
}

function matches(k: usize): bool {
  return (
    load<u32>(k) == ((kAf << 8) | kProto) &&
    load<u32>(k, 4) == kId &&
    load<u32>(k, 8) == kS0 &&
    load<u32>(k, 12) == kS1 &&
    load<u32>(k, 16) == kS2 &&
    load<u32>(k, 20) == kS3 &&
    load<u32>(k, 24) == kD0 &&
    load<u32>(k, 28) == kD1 &&
    load<u32>(k, 32) == kD2 &&
    load<u32>(k, 36) == kD3
  );
}

// The first fragment of a datagram went to connection conn: its later fragments will follow it.
export function fragFile(conn: i32, now: i64): void {
  const s = slotOf();
  const k = changetype<usize>(keys) + ((<usize>(s * WORDS)) << 2);
  store<u32>(k, (kAf << 8) | kProto);
  store<u32>(k, kId, 4);
  store<u32>(k, kS0, 8);
  store<u32>(k, kS1, 12);
  store<u32>(k, kS2, 16);
  store<u32>(k, kS3, 20);
  store<u32>(k, kD0, 24);
  store<u32>(k, kD1, 28);
  store<u32>(k, kD2, 32);
  store<u32>(k, kD3, 36);
  unchecked((conns[s] = conn));
  unchecked((expires[s] = now + TTL_MS));
}

// The connection of the datagram a later fragment belongs to, or -1.
export function fragFind(now: i64): i32 {
  const s = slotOf();
  if (unchecked(expires[s]) < now) return -1;
  if (!matches(changetype<usize>(keys) + ((<usize>(s * WORDS)) << 2))) return -1;
  return unchecked(conns[s]);
}
