// The scratch area's layout: the one description of where each argument and result sits, read by both
// sides of the boundary. asc compiles it into assembly/index.ts (i32 constants, folded into the loads and
// stores); tsc and tsx read the same file from src/core/index.ts (numbers; src/model/as-types.d.ts gives
// tsc the i32 name). Keep it to plain `export const NAME: i32 = <integer>` lines so both can.
//
// All values little-endian; addresses are 16 network-order bytes (IPv4 in the first 4).

export const SCRATCH_SIZE: i32 = 1024;

// ---- arguments: the addresses a call reads (svcAdd, svcFind, destAdd/Edit/Del, schedule, packet, setSnatAddr)
export const ARG_ADDR: i32 = 0; // the address (service, destination, full-NAT source) or packet source
export const ARG_DST: i32 = 16; // schedule() and packet(): the destination address

// ---- svcInfo(id): one service
export const SVC_ADDR: i32 = 0;
export const SVC_AF: i32 = 16; // i32
export const SVC_PROTO: i32 = 20; // i32
export const SVC_PORT: i32 = 24; // u32
export const SVC_FWMARK: i32 = 28; // u32
export const SVC_SCHED: i32 = 32; // i32, an id of assembly/sched/list.ts
export const SVC_FLAGS: i32 = 36; // u32
export const SVC_TIMEOUT: i32 = 40; // u32, seconds
export const SVC_NETMASK: i32 = 44; // u32
export const SVC_CONNS: i32 = 48; // u64
export const SVC_INPKTS: i32 = 56; // u64
export const SVC_OUTPKTS: i32 = 64; // u64
export const SVC_INBYTES: i32 = 72; // u64
export const SVC_OUTBYTES: i32 = 80; // u64
export const SVC_END: i32 = 88;

// ---- destInfo(id): one destination
export const DEST_ADDR: i32 = 0;
export const DEST_AF: i32 = 16; // i32
export const DEST_PORT: i32 = 20; // u32
export const DEST_WEIGHT: i32 = 24; // i32
export const DEST_LAST_WEIGHT: i32 = 28; // i32
export const DEST_UTHRESHOLD: i32 = 32; // u32
export const DEST_LTHRESHOLD: i32 = 36; // u32
export const DEST_FLAGS: i32 = 40; // u32
export const DEST_FWD: i32 = 44; // u32
export const DEST_ACTIVE: i32 = 48; // u32
export const DEST_INACTIVE: i32 = 52; // u32
export const DEST_PERSIST: i32 = 56; // u32
export const DEST_SVC: i32 = 60; // i32
export const DEST_CONNS: i32 = 64; // u64
export const DEST_INPKTS: i32 = 72; // u64
export const DEST_OUTPKTS: i32 = 80; // u64
export const DEST_INBYTES: i32 = 88; // u64
export const DEST_OUTBYTES: i32 = 96; // u64
export const DEST_END: i32 = 104;

// ---- connInfo(i): one connection-table entry
export const CONN_CADDR: i32 = 0; // client
export const CONN_VADDR: i32 = 16; // virtual service
export const CONN_DADDR: i32 = 32; // destination
export const CONN_LADDR: i32 = 48; // local (full-NAT source)
export const CONN_AF: i32 = 64; // i32
export const CONN_PROTO: i32 = 68; // i32
export const CONN_STATE: i32 = 72; // i32
export const CONN_FLAGS: i32 = 76; // u32 (CONN_F_*)
export const CONN_CPORT: i32 = 80; // u32
export const CONN_VPORT: i32 = 84; // u32
export const CONN_DPORT: i32 = 88; // u32
export const CONN_LPORT: i32 = 92; // u32
export const CONN_DEST: i32 = 96; // i32, destination id
export const CONN_CONTROLLER: i32 = 100; // i32, the controlling template's index, -1 none
export const CONN_CHILDREN: i32 = 104; // u32, connections this template controls
export const CONN_TIMEOUT: i32 = 108; // u32, ms
export const CONN_EXPIRES: i32 = 112; // f64, ms on the data plane's clock
export const CONN_INPKTS: i32 = 120; // u32
export const CONN_LIVE: i32 = 124; // u32, 0 for a free entry
export const CONN_END: i32 = 128;

// connInfo's flag bit for a persistence template (the kernel's IP_VS_CONN_F_TEMPLATE)
export const CONN_F_TEMPLATE: i32 = 0x1000;

// ---- the key area of lookupBatch/lookupChain (keyBatchInit): KEY_SIZE bytes per key
export const KEY_SIZE: i32 = 48;
export const KEY_AF: i32 = 0; // u8
export const KEY_PROTO: i32 = 1; // u8
export const KEY_CPORT: i32 = 4; // u32
export const KEY_VPORT: i32 = 8; // u32
export const KEY_CADDR: i32 = 16;
export const KEY_VADDR: i32 = 32;

// ---- syncRecords(): one decoded sync entry per SYNC_REC_SIZE bytes (assembly/sync/codec.ts, mode 1)
export const SYNC_REC_SIZE: i32 = 96;
export const SYNC_REC_CADDR: i32 = 0; // client
export const SYNC_REC_VADDR: i32 = 16; // virtual (a fwmark template: the mark)
export const SYNC_REC_DADDR: i32 = 32; // destination
export const SYNC_REC_LADDR: i32 = 48; // full-NAT local (our option), else zero
export const SYNC_REC_AF: i32 = 64; // u8
export const SYNC_REC_PROTO: i32 = 65; // u8
export const SYNC_REC_STATE: i32 = 66; // u16
export const SYNC_REC_FLAGS: i32 = 68; // u32, as a backup keeps them (IP_VS_CONN_F_BACKUP_MASK | SYNC)
export const SYNC_REC_CPORT: i32 = 72; // u16
export const SYNC_REC_VPORT: i32 = 74; // u16
export const SYNC_REC_DPORT: i32 = 76; // u16
export const SYNC_REC_LPORT: i32 = 78; // u16
export const SYNC_REC_FWMARK: i32 = 80; // u32
export const SYNC_REC_TIMEOUT: i32 = 84; // u32, seconds (0: version 0, none sent)
export const SYNC_REC_OPTS: i32 = 88; // u32: 1 sequence data, 2 persistence-engine data, 4 its name, 8 full-NAT local
export const SYNC_REC_VERDICT: i32 = 92; // i32: 0 usable, else the reason it is skipped (SR_* in sync/codec.ts)

// ---- countersWrite(from, budget, withDests): every service's and destination's counters in one pass, into the
// counters area at countersPtr() (not scratch): a header, then per service a CTR_SVC record followed by its
// destinations' CTR_DEST records in the kernel's list order. Counters are f64 (exact up to 2^53).
export const CTR_HEAD_SERVICES: i32 = 0; // i32, service records in the area
export const CTR_HEAD_DESTS: i32 = 4; // i32, destination records in the area (0 without them)
export const CTR_HEAD_END: i32 = 8;
export const CTR_SVC_ID: i32 = 0; // i32
export const CTR_SVC_DESTS: i32 = 4; // i32, its destinations (their records follow it when written)
export const CTR_SVC_CONNS: i32 = 8; // f64
export const CTR_SVC_INPKTS: i32 = 16; // f64
export const CTR_SVC_OUTPKTS: i32 = 24; // f64
export const CTR_SVC_INBYTES: i32 = 32; // f64
export const CTR_SVC_OUTBYTES: i32 = 40; // f64
export const CTR_SVC_END: i32 = 48;
export const CTR_DEST_ID: i32 = 0; // i32
export const CTR_DEST_AF: i32 = 4; // i32
export const CTR_DEST_PORT: i32 = 8; // u32
export const CTR_DEST_WEIGHT: i32 = 12; // i32
export const CTR_DEST_ACTIVE: i32 = 16; // u32
export const CTR_DEST_INACTIVE: i32 = 20; // u32
export const CTR_DEST_PERSIST: i32 = 24; // u32
export const CTR_DEST_SVC: i32 = 28; // i32
export const CTR_DEST_ADDR: i32 = 32; // 16 network-order bytes (IPv4 in the first 4)
export const CTR_DEST_CONNS: i32 = 48; // f64
export const CTR_DEST_INPKTS: i32 = 56; // f64
export const CTR_DEST_OUTPKTS: i32 = 64; // f64
export const CTR_DEST_INBYTES: i32 = 72; // f64
export const CTR_DEST_OUTBYTES: i32 = 80; // f64
export const CTR_DEST_END: i32 = 88;
