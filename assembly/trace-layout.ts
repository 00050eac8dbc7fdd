// The trace record's layout and codes: one description read by both sides. asc compiles it into the
// schedulers (through ./trace.ts); src/core/trace.ts imports the same file to decode the records. Keep it
// to plain `export const NAME: i32 = <integer>` lines so both compilers can.

export const TRACE_WORDS: i32 = 64; // i32 words per record
export const TRACE_CAP: i32 = 256; // records in the ring

// traceQuery codes
export const Q_TABLE_SIZE: i32 = 0; // sh, dh, mh: buckets / slots
export const Q_SLOT_DEST: i32 = 1; // sh, dh, mh: destination id in slot i (-1 empty)
export const Q_MH_MEMBERS: i32 = 2; // mh: destinations the table was built from
export const Q_MH_MEMBER: i32 = 3; // mh: member i's destination id
export const Q_MH_OFFSET: i32 = 4; // mh: member i's permutation offset
export const Q_MH_SKIP: i32 = 5; // mh: member i's permutation skip
export const Q_MH_TURNS: i32 = 6; // mh: member i's slots per population round
export const Q_SLOT_MEMBER: i32 = 7; // mh: member index in slot i
export const Q_ENTRIES: i32 = 8; // lblc, lblcr: table entries
export const Q_EXPIRED: i32 = 9; // lblc, lblcr: entries the timer has collected so far

// ---- the record layout ---------------------------------------------------------------------------------
// common
export const W_KIND: i32 = 0; // scheduler id (assembly/sched/list.ts)
export const W_SVC: i32 = 1;
export const W_DEST: i32 = 2; // chosen destination id, -1 for none
export const W_SEQ: i32 = 3;
export const W_HKEY: i32 = 4; // hash schedulers: the folded address hashed
export const W_HPORT: i32 = 5; // hash schedulers: the port added to it (sh-port / mh-port), else 0
// rr, wrr
export const W_CUR0: i32 = 6; // cursor (list index, -1 = head) before
export const W_CUR1: i32 = 7; // and after
export const W_N: i32 = 8; // list length
export const W_CW0: i32 = 9; // wrr: current weight before
export const W_CW1: i32 = 10; // and after
export const W_MW: i32 = 11; // wrr: max weight - (gcd - 1)
export const W_DI: i32 = 12; // wrr: gcd of positive weights
export const W_RESTART: i32 = 13; // wrr: cw wrapped to mw during this call
export const W_FAIL: i32 = 14; // wrr: fail reason
// lc, wlc, sed, nq, fo, ovf
export const W_SCAN: i32 = 6; // 1: the kernel's scan ran (int overflow corner), else the tree's root
export const W_A_ACT: i32 = 7; // winner's active, inactive, weight at decision time
export const W_A_INACT: i32 = 8;
export const W_A_W: i32 = 9;
export const W_R_ID: i32 = 10; // runner-up (best other eligible destination), -1 none
export const W_R_ACT: i32 = 11;
export const W_R_INACT: i32 = 12;
export const W_R_W: i32 = 13;
// twos
export const W_TOTAL: i32 = 6; // W: sum of usable weights
export const W_R1: i32 = 7;
export const W_R2: i32 = 8;
export const W_C1: i32 = 9;
export const W_C2: i32 = 10;
export const W_C1_ACT: i32 = 11;
export const W_C1_INACT: i32 = 12;
export const W_C1_W: i32 = 13;
export const W_C2_ACT: i32 = 14;
export const W_C2_INACT: i32 = 15;
export const W_C2_W: i32 = 16;
// dh, sh, mh
export const W_BUCKET: i32 = 6; // the first bucket / slot the hash picked
export const W_TSIZE: i32 = 7;
export const W_BDEST: i32 = 8; // destination id in it (-1 empty)
export const W_PROBES: i32 = 9; // fallback probes made (0: none)
export const W_FALLBACK: i32 = 10; // the service has the fallback flag
export const W_REJECT: i32 = 11; // why the first bucket's destination was not used (REJ_*)
export const W_MEMBER: i32 = 12; // mh: member index in the first slot
export const W_PATHLEN: i32 = 13; // probe path entries recorded (at most PATH_MAX)
export const W_PATH: i32 = 14; // pairs (slot, destination id)
export const PATH_MAX: i32 = 16;
export const REJ_NONE: i32 = 0;
export const REJ_EMPTY: i32 = 1;
export const REJ_WEIGHT0: i32 = 2;
export const REJ_OVERLOADED: i32 = 3;
export const REJ_UNAVAILABLE: i32 = 4;
// lblc, lblcr
export const W_LBUCKET: i32 = 6;
export const W_FOUND: i32 = 7; // an entry for the packet's destination address existed
export const W_PREV: i32 = 8; // lblc: the entry's destination before; lblcr: the set's least loaded member
export const W_OUTCOME: i32 = 9; // OUT_*
export const W_HALFIDLE: i32 = 10; // destinations with activeconns * 2 < weight
export const W_PREV_ACT: i32 = 11;
export const W_PREV_W: i32 = 12;
export const W_WLC: i32 = 13; // wlc's choice when it was asked, else -1
export const W_ENTRIES: i32 = 14;
export const W_ERASED: i32 = 15; // lblcr: member dropped from an old set, else -1
export const W_EXPIRED: i32 = 16; // entries collected by the timer so far
export const W_SETLEN: i32 = 17; // lblcr: set size after the decision
export const W_SET: i32 = 18; // lblcr: member ids, kernel order (head first), at most SET_MAX
export const SET_MAX: i32 = 16;
export const OUT_NEW: i32 = 1; // no entry: wlc chose, a new entry
export const OUT_KEPT: i32 = 2; // entry's destination (lblcr: least loaded member) used
export const OUT_UNAVAILABLE: i32 = 3; // entry's destination deleted: wlc chose again
export const OUT_QUIESCED: i32 = 4; // entry's destination has weight 0
export const OUT_OVERLOADED: i32 = 5; // active > weight while some destination is under half its weight
export const OUT_NO_MEMBER: i32 = 6; // lblcr: no usable member in the set
export const OUT_NONE: i32 = 7; // wlc found nothing
