// SCTP association states as IPVS tracks them (ip_vs_proto_sctp.c, Linux 6.1). The packet path passes
// the deciding chunk type in pkt.tcpFlags (a COOKIE ECHO/ACK bundled with an ABORT counts as ABORT).

export const SCTP_S_NONE: u8 = 0;
export const SCTP_S_ESTABLISHED: u8 = 8;
export const SCTP_S_CLOSED: u8 = 13;
export const SCTP_S_LAST: i32 = 14;

export const SCTP_CHUNK_INIT: u32 = 1;
export const SCTP_CHUNK_ABORT: u32 = 6;
export const SCTP_CHUNK_COOKIE_ECHO: u32 = 10;
export const SCTP_CHUNK_COOKIE_ACK: u32 = 11;

// chunk type -> event: 0 data, 1 init, 2 init-ack, 3 cookie-echo, 4 cookie-ack, 5 shutdown,
// 6 shutdown-ack, 7 shutdown-complete, 8 error, 9 abort; unknown chunk types count as data
const EVENT_OF = new StaticArray<u8>(15);
EVENT_OF[1] = 1;
EVENT_OF[2] = 2;
EVENT_OF[6] = 9;
EVENT_OF[7] = 5;
EVENT_OF[8] = 6;
EVENT_OF[9] = 8;
EVENT_OF[10] = 3;
EVENT_OF[11] = 4;
EVENT_OF[14] = 7;

const NO: u8 = 0,
  I1: u8 = 1,
  IN: u8 = 2,
  CS: u8 = 3,
  CR: u8 = 4,
  CW: u8 = 5,
  CO: u8 = 6,
  CE: u8 = 7,
  ES: u8 = 8,
  SS: u8 = 9,
  SR: u8 = 10,
  SA: u8 = 11,
  RJ: u8 = 12,
  CL: u8 = 13;
const T = new StaticArray<u8>(3 * 10 * 14);
function row(dir: i32, ev: i32, a: StaticArray<u8>): void {
  for (let i = 0; i < 14; i++) T[(dir * 10 + ev) * 14 + i] = a[i];
}
//                  sNO sI1 sIN sCS sCR sCW sCO sCE sES sSS sSR sSA sRJ sCL
row(0, 0, [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT data
row(0, 1, [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN]); // INPUT init
row(0, 2, [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT init-ack
row(0, 3, [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT cookie-echo
row(0, 4, [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL]); // INPUT cookie-ack
row(0, 5, [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL]); // INPUT shutdown
row(0, 6, [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL]); // INPUT shutdown-ack
row(0, 7, [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL]); // INPUT shutdown-complete
row(0, 8, [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL]); // INPUT error
row(0, 9, [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL]); // INPUT abort
row(1, 0, [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // OUTPUT data
row(1, 1, [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW]); // OUTPUT init
row(1, 2, [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // OUTPUT init-ack
row(1, 3, [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL]); // OUTPUT cookie-echo
row(1, 4, [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL]); // OUTPUT cookie-ack
row(1, 5, [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL]); // OUTPUT shutdown
row(1, 6, [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL]); // OUTPUT shutdown-ack
row(1, 7, [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // OUTPUT shutdown-complete
row(1, 8, [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // OUTPUT error
row(1, 9, [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL]); // OUTPUT abort
row(2, 0, [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT_ONLY data
row(2, 1, [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN]); // INPUT_ONLY init
row(2, 2, [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT_ONLY init-ack
row(2, 3, [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT_ONLY cookie-echo
row(2, 4, [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL]); // INPUT_ONLY cookie-ack
row(2, 5, [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL]); // INPUT_ONLY shutdown
row(2, 6, [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL]); // INPUT_ONLY shutdown-ack
row(2, 7, [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL]); // INPUT_ONLY shutdown-complete
row(2, 8, [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL]); // INPUT_ONLY error
row(2, 9, [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL]); // INPUT_ONLY abort

// dir: 0 input, 1 output, 2 input-only (the caller maps NOOUTPUT like TCP)
export function sctpNextState(dir: i32, chunkType: u32, state: u8): u8 {
  const ev = chunkType < 15 ? <i32>unchecked(EVENT_OF[chunkType]) : 0;
  return unchecked(T[(dir * 10 + ev) * 14 + <i32>state]);
}

const RTO: u32 = 61000;
export const sctpTimeoutMs = new StaticArray<u32>(SCTP_S_LAST);
sctpTimeoutMs[0] = 2000;
sctpTimeoutMs[1] = 4000;
sctpTimeoutMs[2] = RTO;
sctpTimeoutMs[3] = RTO;
sctpTimeoutMs[4] = RTO;
sctpTimeoutMs[5] = RTO;
sctpTimeoutMs[6] = RTO;
sctpTimeoutMs[7] = RTO;
sctpTimeoutMs[8] = 900000;
sctpTimeoutMs[9] = RTO;
sctpTimeoutMs[10] = RTO;
sctpTimeoutMs[11] = RTO;
sctpTimeoutMs[12] = 4000;
sctpTimeoutMs[13] = RTO;

export const SCTP_STATE_NAMES: string[] = [
  "NONE",
  "INIT1",
  "INIT",
  "C-SENT",
  "C-REPLIED",
  "C-WAIT",
  "COOKIE",
  "C-ECHOED",
  "ESTABLISHED",
  "S-SENT",
  "S-RECEIVED",
  "S-ACK-SENT",
  "REJECTED",
  "CLOSED",
];
