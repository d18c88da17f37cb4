export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * Where the worker's log lines go. Same shape as @zkgrid/core's logger, so one function serves both.
 * Task lines always carry `task` (and `attempt`) in `fields`.
 */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

/** Formats one `key=value` log line: `2024-05-01T10:00:00.000Z info worker=w1 task=t1 started`. */
export function formatLogLine(level: LogLevel, msg: string, fields?: Record<string, unknown>): string {
  const parts = [new Date().toISOString(), level];
  for (const [key, value] of Object.entries(fields ?? {})) {
    if (value !== undefined) parts.push(`${key}=${formatValue(value)}`);
  }
  parts.push(msg);
  return parts.join(" ");
}

/** A logger writing one line per event to stderr, dropping levels below `level` (default "info"). */
export function createStderrLogger(
  options: { level?: LogLevel; fields?: Record<string, unknown> } = {},
): Logger {
  const min = LEVELS[options.level ?? "info"];
  const base = options.fields ?? {};
  return (level, msg, fields) => {
    if (LEVELS[level] < min) return;
    process.stderr.write(`${formatLogLine(level, msg, { ...base, ...fields })}\n`);
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = () => {};
