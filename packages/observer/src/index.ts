/**
 * A read-only, live view of a zkgrid for operators: the masters and the leader, the workers and
 * their load, queue depth by priority, running tasks, the latest results and the throughput. Kept up
 * to date by ZooKeeper watches; it writes nothing.
 *
 * ```ts
 * import { observeGrid } from "@zkgrid/observer";
 *
 * const observer = await observeGrid({ connectString: "127.0.0.1:2181", root: "/zkgrid" });
 * const { leader, workers, queue } = observer.snapshot();
 * console.log(leader?.name, workers.length, queue.depth);
 * for await (const snapshot of observer.changes({ signal: AbortSignal.timeout(5_000) })) {
 *   console.log(snapshot.counts);
 * }
 * console.log(await observer.task("some-task-id"));
 * await observer.close();
 * ```
 *
 * @module
 */

export { ObserverClosedError, ObserverError } from "./errors.js";
export { GridObserver, observeGrid } from "./observer.js";
export { describeCommand } from "./task-view.js";
export { BUCKET_MS, ThroughputSeries, WINDOW_MS } from "./throughput.js";

export type { ScheduleView } from "./schedule-view.js";
export type {
  FinalState,
  GridSnapshot,
  MasterView,
  ObserveOptions,
  ObserveWithClient,
  ObserveWithConnect,
  QueueView,
  TaskCounts,
  TaskQuery,
  TaskView,
  ThroughputView,
  WorkerView,
} from "./types.js";
