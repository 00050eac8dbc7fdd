// Structured logs: one JSON object per line on stderr (or a given stream), with a level filter.
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  level: Level;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  enabled(l: Level): boolean;
}

export function jsonLogger(
  level: Level = "info",
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const log = {
    level,
    enabled(l: Level) {
      return RANK[l] >= RANK[log.level];
    },
    emit(l: Level, msg: string, fields?: Record<string, unknown>) {
      if (RANK[l] < RANK[log.level]) return;
      write(
        JSON.stringify({ ts: new Date().toISOString(), level: l, msg, ...fields }, (_k, v) =>
          typeof v === "bigint" ? v.toString() : v instanceof Error ? v.message : v,
        ) + "\n",
      );
    },
    debug(msg: string, f?: Record<string, unknown>) {
      log.emit("debug", msg, f);
    },
    info(msg: string, f?: Record<string, unknown>) {
      log.emit("info", msg, f);
    },
    warn(msg: string, f?: Record<string, unknown>) {
      log.emit("warn", msg, f);
    },
    error(msg: string, f?: Record<string, unknown>) {
      log.emit("error", msg, f);
    },
  };
  return log;
}

export const silentLogger = (): Logger => jsonLogger("error", () => {});
