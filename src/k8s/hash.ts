// The chain-name hashes kube-proxy uses: SHA-256, RFC 4648 base32 (standard alphabet), truncated.
import { createHash } from "node:crypto";

const ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function base32(bytes: Uint8Array): string {
  let out = "",
    bits = 0,
    value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHA[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHA[(value << (5 - bits)) & 31];
  while (out.length % 8) out += "=";
  return out;
}

export function sha256base32(s: string): string {
  return base32(createHash("sha256").update(s).digest());
}
