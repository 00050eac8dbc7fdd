// Shared constants: the kernel's numbers (include/uapi/linux/ip_vs.h) plus a few of our own.

export const AF_INET: i32 = 2;
export const AF_INET6: i32 = 10;

export const IPPROTO_IP: i32 = 0;
export const IPPROTO_TCP: i32 = 6;
export const IPPROTO_UDP: i32 = 17;
export const IPPROTO_SCTP: i32 = 132;

// Service flags (IP_VS_SVC_F_*). SCHED1/2/3 mean sh-fallback/sh-port or mh-fallback/mh-port.
export const SVC_F_PERSISTENT: u32 = 0x0001;
export const SVC_F_HASHED: u32 = 0x0002;
export const SVC_F_ONEPACKET: u32 = 0x0004;
export const SVC_F_SCHED1: u32 = 0x0008;
export const SVC_F_SCHED2: u32 = 0x0010;
export const SVC_F_SCHED3: u32 = 0x0020;
export const SVC_F_USER_MASK: u32 = SVC_F_PERSISTENT | SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

// Destination flags (IP_VS_DEST_F_*).
export const DEST_F_AVAILABLE: u32 = 0x1;
export const DEST_F_OVERLOAD: u32 = 0x2;

// Forwarding methods (IP_VS_CONN_F_FWD_MASK values). FULLNAT is ours: masq plus source rewrite.
export const FWD_MASQ: u32 = 0;
export const FWD_LOCALNODE: u32 = 1;
export const FWD_TUNNEL: u32 = 2;
export const FWD_DROUTE: u32 = 3;
export const FWD_BYPASS: u32 = 4;
export const FWD_FULLNAT: u32 = 5;

// Error codes returned (negated) by every configuration call. src/core/errors.ts holds the messages.
export const OK: i32 = 0;
export const E_NO_SERVICE: i32 = -1;
export const E_SERVICE_EXISTS: i32 = -2;
export const E_NO_DEST: i32 = -3;
export const E_DEST_EXISTS: i32 = -4;
export const E_BAD_SCHEDULER: i32 = -5;
export const E_BAD_WEIGHT: i32 = -6;
export const E_BAD_THRESHOLD: i32 = -7;
export const E_BAD_AF: i32 = -8;
export const E_BAD_PROTOCOL: i32 = -9;
export const E_BAD_NETMASK: i32 = -10;
export const E_BAD_FLAGS: i32 = -11;
export const E_BAD_FWD: i32 = -12;
export const E_TABLE_FULL: i32 = -13;
export const E_BAD_PORT: i32 = -14;
export const E_BAD_TIMEOUT: i32 = -15;
export const E_BAD_SETTING: i32 = -16;
export const E_TOO_MANY_DESTS: i32 = -17;

export const MAX_WEIGHT: i32 = 65535;
