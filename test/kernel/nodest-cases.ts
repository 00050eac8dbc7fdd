// The cases test/kernel-vm/nodest.ts runs in the kernel VM (recorded in test/fixtures/kernel/nodest-observed.json)
// and test/nodest.test.ts replays through the core: an old connection from a client port is brought to a
// TCP state and abandoned (IPVS hears nothing more of it); its real server stays, is quiesced (weight 0) or
// deleted; then a new SYN comes from the same port (from the next port, for a persistent service).

export type OldState = "SYN_RECV" | "ESTABLISHED" | "CLOSE_WAIT" | "FIN_WAIT" | "TIME_WAIT" | "CLOSE";
export interface NodestCase {
  name: string;
  state: OldState;
  dest: "alive" | "quiesced" | "deleted";
  persistent: boolean;
  expireNodestConn: number;
  connReuseMode: number;
  expireQuiescentTemplate: number;
}

/** What the kernel did: who answered the new SYN within 2.5 s; where the real servers' packet counters say it
 * went (the old connection's real server, the other one, or nowhere: dropped; they lag by up to 2 s, so they
 * decide only for an unanswered SYN: one sent to the old real server on the old entry meets the old socket
 * there and is not answered); and the port's entries after the change and after the SYN. */
export interface NodestObserved {
  name: string;
  oldDest: string | null;
  oldState: string | null;
  afterChange: string[];
  sentTo: "old" | "other" | "none";
  answered: "old" | "other" | "none";
  ms: number;
  afterSyn: string[];
}

const STATES: OldState[] = ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT", "TIME_WAIT", "CLOSE"];
const DESTS = ["alive", "quiesced", "deleted"] as const;

function cases(): NodestCase[] {
  const out: NodestCase[] = [];
  for (const [nodest, reuse] of [
    [0, 1],
    [1, 1],
    [0, 0],
    [1, 0],
  ])
    for (const state of STATES)
      for (const dest of DESTS)
        out.push({
          name: `${state}-${dest}-nodest${nodest}-reuse${reuse}`,
          state,
          dest,
          persistent: false,
          expireNodestConn: nodest,
          connReuseMode: reuse,
          expireQuiescentTemplate: 0,
        });
  for (const quiescent of [0, 1])
    for (const nodest of [0, 1])
      for (const dest of DESTS)
        out.push({
          name: `persistent-${dest}-quiescent${quiescent}-nodest${nodest}`,
          state: "ESTABLISHED",
          dest,
          persistent: true,
          expireNodestConn: nodest,
          connReuseMode: 1,
          expireQuiescentTemplate: quiescent,
        });
  return out;
}

export const NODEST_CASES = cases();
