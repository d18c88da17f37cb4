/**
 * @module @zkgrid/master
 *
 * The zkgrid master as a library: masters elect one leader (no herd effect); the leader rebuilds the
 * grid's state from ZooKeeper, assigns queued tasks to live workers, collects their reports into
 * results, and fences and reassigns the tasks of workers that die.
 *
 * ```ts
 * import { startMaster } from "@zkgrid/master";
 *
 * const master = await startMaster({ name: "master1", connectString: "127.0.0.1:2181" });
 * await master.leading(); // resolves if and when this master leads
 * await master.stop();
 * ```
 */
export { GridLeader } from "./leader/grid-leader.js";
export { NotLeaderError } from "./leader/term.js";
export { Master, startMaster } from "./master.js";
export { TaskBook } from "./task-book.js";

export type { LeaderState, LeaderStats } from "./leader/grid-leader.js";
export type { Logger, LogLevel } from "@zkgrid/core";
export type { MasterEvent, MasterOptions, MasterRole } from "./master.js";
export type { TaskEntry, WorkerSlot } from "./task-book.js";
