// Protocol states and timeouts (ip_vs_proto_tcp.c, ip_vs_proto_udp.c, ip_vs_proto_sctp.c).

export const TCP_S_NONE: u8 = 0;
export const TCP_S_ESTABLISHED: u8 = 1;
export const TCP_S_SYN_SENT: u8 = 2;
export const TCP_S_SYN_RECV: u8 = 3;
export const TCP_S_FIN_WAIT: u8 = 4;
export const TCP_S_TIME_WAIT: u8 = 5;
export const TCP_S_CLOSE: u8 = 6;
export const TCP_S_CLOSE_WAIT: u8 = 7;
export const TCP_S_LAST_ACK: u8 = 8;
export const TCP_S_LISTEN: u8 = 9;
export const TCP_S_SYNACK: u8 = 10;
export const TCP_S_LAST: i32 = 11;

export const UDP_S_NORMAL: u8 = 0;

// Directions (IP_VS_DIR_*)
export const DIR_INPUT: i32 = 0;
export const DIR_OUTPUT: i32 = 1;
export const DIR_INPUT_ONLY: i32 = 2;

// TCP flag bits as on the wire
export const TH_FIN: u32 = 0x01;
export const TH_SYN: u32 = 0x02;
export const TH_RST: u32 = 0x04;
export const TH_ACK: u32 = 0x10;

// Since Linux 4.7 ("count pre-established TCP states as active") SYN_SENT, SYN_RECV and SYNACK count as
// active like ESTABLISHED; observed on 6.1 in the VM (a SYN_RECV connection shows in ActiveConn).
@inline export function tcpStateActive(s: u8): bool {
  return s == TCP_S_ESTABLISHED || s == TCP_S_SYN_SENT || s == TCP_S_SYN_RECV || s == TCP_S_SYNACK;
}

// Default timeouts in ms per TCP state; ESTABLISHED and FIN_WAIT are settable (ipvsadm --set).
export const tcpTimeoutMs = new StaticArray<u32>(TCP_S_LAST);
tcpTimeoutMs[TCP_S_NONE] = 2000;
tcpTimeoutMs[TCP_S_ESTABLISHED] = 900000;
tcpTimeoutMs[TCP_S_SYN_SENT] = 120000;
tcpTimeoutMs[TCP_S_SYN_RECV] = 60000;
tcpTimeoutMs[TCP_S_FIN_WAIT] = 120000;
tcpTimeoutMs[TCP_S_TIME_WAIT] = 120000;
tcpTimeoutMs[TCP_S_CLOSE] = 10000;
tcpTimeoutMs[TCP_S_CLOSE_WAIT] = 60000;
tcpTimeoutMs[TCP_S_LAST_ACK] = 30000;
tcpTimeoutMs[TCP_S_LISTEN] = 120000;
tcpTimeoutMs[TCP_S_SYNACK] = 120000;

export let udpTimeoutMs: u32 = 300000;
export function setUdpTimeoutMs(ms: u32): void {
  udpTimeoutMs = ms;
}

// The normal (not secure_tcp) transition table of Linux 6.1: [direction block*4 + class][state].
// Classes: 0 syn, 1 fin, 2 ack, 3 rst. Blocks: INPUT, OUTPUT, INPUT_ONLY.
const NO: u8 = 0,
  ES: u8 = 1,
  SS: u8 = 2,
  SR: u8 = 3,
  FW: u8 = 4,
  TW: u8 = 5,
  CL: u8 = 6,
  CW: u8 = 7,
  LA: u8 = 8,
  LI: u8 = 9,
  SA: u8 = 10;
const T = new StaticArray<u8>(12 * 11);
function row(r: i32, a: StaticArray<u8>): void {
  for (let i = 0; i < 11; i++) T[r * 11 + i] = a[i];
}
//                sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
row(0, [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR]); // INPUT syn
row(1, [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW]); // INPUT fin
row(2, [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES]); // INPUT ack
row(3, [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR]); // INPUT rst
row(4, [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR]); // OUTPUT syn
row(5, [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW]); // OUTPUT fin
row(6, [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES]); // OUTPUT ack
row(7, [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL]); // OUTPUT rst
row(8, [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR]); // INPUT_ONLY syn
row(9, [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW]); // INPUT_ONLY fin
row(10, [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES]); // INPUT_ONLY ack
row(11, [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL]); // INPUT_ONLY rst

// The next TCP state; a packet with none of RST/SYN/FIN/ACK moves to CLOSE.
@inline export function tcpNextState(block: i32, tcpFlags: u32, state: u8): u8 {
  let cls: i32;
  if (tcpFlags & TH_RST) cls = 3;
  else if (tcpFlags & TH_SYN) cls = 0;
  else if (tcpFlags & TH_FIN) cls = 1;
  else if (tcpFlags & TH_ACK) cls = 2;
  else return TCP_S_CLOSE;
  return unchecked(T[(block * 4 + cls) * 11 + <i32>state]);
}

export const TCP_STATE_NAMES: string[] = [
  "NONE",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "SYNACK",
];
