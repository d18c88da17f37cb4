// The worker logs through the shape every zkgrid library takes; by default to @zkgrid/log's logger.
export type { Logger, LogLevel } from "@zkgrid/log";
export { silentLogger } from "@zkgrid/log";
