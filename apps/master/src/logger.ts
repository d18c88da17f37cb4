export type LogLevel = "debug" | "info" | "warn" | "error";

/** Same shape as @zkgrid/core's logger, so one function serves both. Task lines carry `task`. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;
