// The WASM module's exports as the host sees them: every function with its AssemblyScript signature,
// written as in assembly/ ("i32 u32 f64" → "i32"), and the types the host calls them with derived from
// that. test/boundary.test.ts reads the compiled module's own type section and fails when a name, an
// arity or a value type differs, or when the module exports something not listed here.
//
// Adding an export: write it in assembly/ (assembly/index.ts or a module it re-exports), then one line
// here with the same parameter and result types; the host then calls it as core.x.name(...).

// 64-bit integers cross as BigInt; everything else (i32, u32, bool, usize on wasm32, f64) as a number.
type Value<T extends string> = T extends "i64" | "u64" ? bigint : number;
type Args<S extends string> = S extends ""
  ? []
  : S extends `${infer A} ${infer B}`
    ? [Value<A>, ...Args<B>]
    : [Value<S>];
type Result<R extends string> = R extends "void" ? undefined : Value<R>;

export const CORE_FUNCTIONS = {
  // scratch area (assembly/layout.ts)
  scratchPtr: ["", "usize"],
  // services
  svcAdd: ["i32 i32 u32 u32 i32 u32 u32 u32", "i32"],
  svcEdit: ["i32 i32 u32 u32 u32", "i32"],
  svcDel: ["i32", "i32"],
  svcFlush: ["", "void"],
  svcFind: ["i32 i32 u32 u32", "i32"],
  svcCapacity: ["", "i32"],
  svcInfo: ["i32", "i32"],
  svcDestAt: ["i32 i32", "i32"],
  // destinations
  destAdd: ["i32 i32 u32 i32 u32 u32 u32", "i32"],
  destEdit: ["i32 i32 u32 i32 u32 u32 u32", "i32"],
  destDel: ["i32 i32 u32", "i32"],
  destInfo: ["i32", "i32"],
  destSetLoad: ["i32 u32 u32", "i32"],
  // scheduling without a connection
  schedule: ["i32 i32 i32 u32 u32 f64", "i32"],
  schedFailReason: ["", "i32"],
  // settings
  setSetting: ["i32 i64", "i32"],
  setRandomSeed: ["u64", "void"],
  setTimeouts: ["u32 u32 u32", "void"],
  getTimeout: ["i32", "u32"],
  setSnatAddr: ["i32", "void"],
  // connections
  connInit: ["u32", "i32"],
  connCapacity: ["", "u32"],
  connLive: ["", "u32"],
  connTemplates: ["", "u32"],
  connRefusedFull: ["", "f64"],
  connEvicted: ["bool", "f64"],
  connExpireOrphan: ["i32 f64", "bool"],
  advance: ["f64", "i32"],
  packet: ["i32 i32 i32 u32 u32 u32 u32 u32 f64", "i32"],
  packetReplyTo: ["i32 i32 u32 u32 u32 u32 f64", "i32"],
  lastConn: ["", "i32"],
  lastDropReason: ["", "i32"],
  lastWasNew: ["", "bool"],
  connNext: ["i32", "i32"],
  connInfo: ["i32", "i32"],
  // every service's and destination's counters in one pass (src/core/counters.ts)
  countersWrite: ["i32 i32 bool", "i32"],
  countersPtr: ["", "usize"],
  // batches for benchmarks (src/core/bench-api.ts)
  keyBatchInit: ["i32", "usize"],
  keyResultsPtr: ["", "usize"],
  lookupBatch: ["i32", "i32"],
  lookupChain: ["i32 i32 i32", "i32"],
  scheduleBatch: ["i32 i32 u32 bool f64", "i32"],
  hsiphashSelfTest: ["", "i32"],
  benchChaseInit: ["u32 u64", "usize"],
  benchChase: ["i32", "u32"],
  benchChaseMulti: ["i32 i32", "u32"],
  benchChaseFree: ["", "void"],
  // the packet path (src/core/packets.ts)
  packetSetPrefetch: ["i32", "void"],
  batchInit: ["u32 u32", "usize"],
  batchDataPtr: ["", "usize"],
  processBatch: ["i32 f64", "i32"],
  packetDropCount: ["i32", "f64"],
  packetVerdictCount: ["i32", "f64"],
  packetResetCounters: ["", "void"],
  packetReasonLimit: ["", "i32"],
  packetSetTtlMode: ["i32", "void"],
  packetSetFwmarkTwins: ["i32", "void"],
  packetFragmentCount: ["", "f64"],
  // tracing (src/core/trace.ts)
  traceEnable: ["i32", "void"],
  traceEnabled: ["", "i32"],
  traceBuf: ["", "usize"],
  traceWords: ["", "i32"],
  traceCapacity: ["", "i32"],
  traceCount: ["", "i32"],
  traceReset: ["", "void"],
  traceQuery: ["i32 i32 i32", "i32"],
  // the simulator's traffic generator (src/core/sim.ts)
  simInit: ["u32 f64 f64 f64 u32 u32 f64 u32 u32 u32", "usize"],
  simRun: ["i32 bool", "i32"],
  simMade: ["", "f64"],
  simPackets: ["", "f64"],
  simTicks: ["", "f64"],
  simOpenPeak: ["", "u32"],
  simPerServicePtr: ["", "usize"],
  simRecordPtr: ["", "usize"],
  simRecorded: ["", "u32"],
  // connection synchronisation in the kernel's wire format (src/proxy/sync.ts)
  syncRxBuffer: ["", "usize"],
  syncRecords: ["", "usize"],
  syncReceive: ["u32 u32 u32 i32 f64", "i32"],
  syncRxBatch: ["u32 u32", "usize"],
  syncRxBatchData: ["", "usize"],
  syncReceiveBatch: ["u32 u32 u32 f64", "i32"],
  syncOutList: ["", "usize"],
  syncStat: ["i32", "f64"],
  syncStatsReset: ["", "void"],
  syncMasterStart: ["u32 u32", "i32"],
  syncMasterStop: ["", "void"],
  syncFlush: ["f64 f64", "u32"],
  syncOutPtr: ["u32", "usize"],
  syncOutLen: ["u32", "u32"],
  syncOutDone: ["u32", "void"],
  syncEmitAll: ["f64", "u32"],
  syncEmitFrom: ["f64 u32 u32", "u32"],
  // AssemblyScript's runtime: collects garbage between calls (Core.collect)
  __collect: ["", "void"],
} as const satisfies Record<string, readonly [string, string]>;

// Constants the module exports as immutable i32 globals, read with .value.
export const CORE_GLOBALS = ["DESC_SIZE", "SIM_DONE", "SIM_E_SLOTS", "SIM_E_NOT_READY"] as const;

// AssemblyScript's runtime exports that the host never calls (exportRuntime gives them to any host).
export const RUNTIME_EXPORTS = ["__new", "__pin", "__unpin", "__rtti_base"] as const;

type Functions = typeof CORE_FUNCTIONS;
type Fn<S extends readonly [string, string]> = (...args: Args<S[0]>) => Result<S[1]>;
export type CoreExports = { readonly [K in keyof Functions]: Fn<Functions[K]> } & {
  readonly [K in (typeof CORE_GLOBALS)[number]]: WebAssembly.Global;
} & { readonly memory: WebAssembly.Memory };
