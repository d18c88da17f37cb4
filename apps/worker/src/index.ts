/**
 * The zkgrid worker as a library: registers under a name, runs the tasks the leader assigns to it
 * (shell commands, programs or in-process handlers) and reports their status. The `zkgrid-worker` bin
 * only parses flags and calls `startWorker`.
 *
 * @example
 * ```ts
 * import { defineHandlers, startWorker } from "@zkgrid/worker";
 *
 * export const handlers = defineHandlers({
 *   add: (input: { a: number; b: number }) => input.a + input.b,
 * });
 *
 * const worker = await startWorker({ name: "worker1", connectString: "127.0.0.1:2181", handlers });
 * worker.on((event) => {
 *   if (event.type === "update") console.log(event.update.id, event.update.state);
 * });
 * process.once("SIGTERM", () => void worker.stop({ graceMs: 10_000 }));
 * await worker.closed();
 * ```
 *
 * @module
 */

export {
  errors,
  WorkerError,
  WorkerLockedError,
  WorkerNameTakenError,
  WorkerOptionError,
  WorkerStoppedError,
} from "./errors.js";
export { defineHandlers, loadHandlers } from "./handlers.js";
export { silentLogger } from "@zkgrid/log";
export { taskOutputDir } from "./task-run.js";
export { UnrecoverableError } from "./unrecoverable.js";
export { startWorker } from "./worker.js";
export {
  DEFAULT_CONNECT_STRING,
  DEFAULT_CUTOFF_STOP_SHARE,
  DEFAULT_GRACE_MS,
  DEFAULT_KILL_GRACE_MS,
  DEFAULT_ROOT,
  DEFAULT_SESSION_TIMEOUT_MS,
  VERSION,
} from "./worker-options.js";

export type { NameHolder } from "./errors.js";
export type { HandlerContext, HandlerInput, HandlerMap, HandlerOutput, TaskHandler } from "./handlers.js";
export type { LauncherMode } from "./launcher.js";
export type { Logger, LogLevel } from "@zkgrid/core";
export type { StopOptions, Worker } from "./worker.js";
export type { WorkerEvent, WorkerState } from "./worker-events.js";
export type { WorkerOptions } from "./worker-options.js";
