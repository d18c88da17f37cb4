/**
 * Submits tasks to a zkgrid and waits for their results.
 *
 * ```ts
 * import { connectGrid } from "@zkgrid/submit";
 *
 * const grid = await connectGrid({ connectString: "127.0.0.1:2181", root: "/zkgrid" });
 * const results = await grid.submitAndWait([{ cmd: "echo hello" }, { cmd: "uname", args: ["-a"] }]);
 * for (const status of results.values()) console.log(status.id, status.state, status.stdoutTail);
 * await grid.close();
 * ```
 *
 * Many tasks share one queue node, and submits made while a write is in flight share the next one.
 * A lone task without an id of the caller's (written alone) goes straight into a live worker's inbox
 * instead, and its result is read from that node: the leader is not on its way (see docs/protocol.md,
 * "Direct tasks"). A task with the caller's own id always goes through the queue, which drops known ids.
 * `grid.cancel(ids)` asks the leader to cancel tasks; `grid.wait(ids)` then sees each one end.
 * `grid.schedules.add("nightly", { cron: "0 3 * * *", tz: "Europe/Paris", task: { cmd: "make backup" } })`
 * adds a recurring schedule, whose every slot the leader fires once as the task `nightly.<slot>`.
 * `grid.pause()`, `grid.resume()` (each optionally for one `label`) and `grid.setLimit(label, { starts,
 * perMs })` change the grid's gate: what the leader may start (docs/guarantees.md, "Pause and limits").
 * Handler tasks can be typed with the worker's handlers:
 * `connectGrid<typeof handlers>(...)` then checks `submit({ handler: "resize", input })`.
 *
 * @module
 */

export {
  GridClosedError,
  InvalidGateError,
  InvalidTaskError,
  ResultsPrunedError,
  SubmitWriteError,
  WaitTimeoutError,
} from "./errors.js";
export { connectGrid, GridClient } from "./grid-client.js";
export { prepareTasks } from "./tasks.js";
export {
  InvalidScheduleError,
  ScheduleClient,
  ScheduleExistsError,
  ScheduleNotFoundError,
} from "./schedules.js";
export { parseTaskText, TaskTextError } from "./task-text.js";

export type {
  CancelOptions,
  GridClientOptions,
  GridConnectOptions,
  ResultsOptions,
  WaitOptions,
} from "./grid-client.js";
export type { GateOptions, PauseOptions } from "./grid-gate.js";
export type { LocatedValue } from "./task-text.js";
export type { ScheduleOptions, ScheduleView } from "./schedules.js";
export type {
  AnyHandlers,
  CommandTaskInput,
  GridTaskInput,
  HandlerInputOf,
  HandlerOutputOf,
  HandlerSignatures,
  HandlerTaskInput,
  TaskInput,
} from "./tasks.js";
export type {
  AttemptRecord,
  Backoff,
  CatchUpPolicy,
  GridGate,
  OverlapPolicy,
  RetryPolicy,
  ScheduleSpec,
  ScheduleState,
  ScheduleTask,
  StartLimit,
  TaskSpec,
  TaskStatus,
} from "@zkgrid/protocol";
