/**
 * @module @zkgrid/log
 *
 * Structured logs for zkgrid's processes, through pino: one JSON object a line when the output is
 * piped (for log shippers), readable coloured lines on a terminal. Every line about a task carries a
 * `task` field; the grid's libraries take a plain {@link Logger} function, so any other logging
 * library can stand in.
 *
 * ```ts
 * import { createLogger } from "@zkgrid/log";
 *
 * const log = createLogger({ name: "worker", base: { worker: "worker1" } });
 * log("info", "task finished", { task: "01J…", state: "succeeded" });
 * ```
 */
import pino, { type DestinationStream } from "pino";
import pretty from "pino-pretty";
import type { Logger, LogLevel } from "@zkgrid/core";

// One definition of the logger every zkgrid library accepts: @zkgrid/core's (a type-only import).
export type { Logger, LogLevel } from "@zkgrid/core";

export interface LoggerOptions {
  /** The process's role, e.g. "master" or "worker" (pino's `name`). */
  name: string;
  /** Lines below this level are dropped; default "info". */
  level?: LogLevel;
  /** "json" (one object a line), "pretty", or "auto": pretty on a TTY, JSON otherwise (default). */
  format?: "json" | "pretty" | "auto";
  /** Where lines go; default stderr (stdout stays free for a command's own output). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Fields on every line, e.g. `{ worker: "worker1" }`. */
  base?: Record<string, unknown>;
}

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (LOG_LEVELS as readonly string[]).includes(value);
}

/** A pino-backed {@link Logger}. Lines are written synchronously, so none is lost at exit. */
export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream ?? process.stderr;
  const format = options.format ?? "auto";
  const usePretty = format === "pretty" || (format === "auto" && stream.isTTY === true);
  const destination: DestinationStream = usePretty
    ? pretty({
        destination: stream,
        sync: true,
        colorize: stream.isTTY === true,
        translateTime: "SYS:HH:MM:ss.l",
        ignore: "pid,hostname",
      })
    : (stream as DestinationStream);
  const log = pino(
    {
      name: options.name,
      level: options.level ?? "info",
      base: { pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
  return (level, msg, fields) => {
    if (fields === undefined) log[level](msg);
    else log[level](fields, msg);
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = () => {};
