// The sysctl-like knobs (/proc/sys/net/ipv4/vs/*) and the few compile-time choices the kernel makes,
// settable from the host. Defaults are Linux 6.1's.

export class Settings {
  expireNodestConn: i32 = 0;
  expireQuiescentTemplate: i32 = 0;
  connReuseMode: i32 = 1;
  sloppyTcp: i32 = 0;
  conntrack: i32 = 0; // with 1, a rescheduled SYN on a reused entry is dropped (the 1 s delay)
  lblcExpirationMs: i64 = 24 * 3600 * 1000;
  lblcrExpirationMs: i64 = 24 * 3600 * 1000;
  mhTableIndex: i32 = 12; // CONFIG_IP_VS_MH_TAB_INDEX: M = primes[index - 8] = 4093
  shTableBits: i32 = 8; // CONFIG_IP_VS_SH_TAB_BITS
  // TCP timeouts (ms), indexed by TCP state; ESTABLISHED, FIN_WAIT and UDP are settable (ipvsadm --set)
  udpTimeoutMs: i64 = 300 * 1000;
  sctpTimeoutMs: i64 = 300 * 1000;
}

export const settings = new Settings();

// Setting ids for setSetting()/getSetting() (src/core/settings.ts names them).
export const SET_EXPIRE_NODEST_CONN: i32 = 0;
export const SET_EXPIRE_QUIESCENT_TEMPLATE: i32 = 1;
export const SET_CONN_REUSE_MODE: i32 = 2;
export const SET_SLOPPY_TCP: i32 = 3;
export const SET_CONNTRACK: i32 = 4;
export const SET_LBLC_EXPIRATION: i32 = 5;
export const SET_LBLCR_EXPIRATION: i32 = 6;
export const SET_MH_TABLE_INDEX: i32 = 7;
export const SET_SH_TABLE_BITS: i32 = 8;
export const SET_UDP_TIMEOUT: i32 = 9;
