import { type Logger, messageOf } from "@zkgrid/core";
import type { AssignedTask, StatusUpdate } from "@zkgrid/protocol";

/** The worker's lifecycle: INITIALIZED → RUNNING → STOPPING → DRAINING → STOPPED, or FAILED. */
export type WorkerState = "INITIALIZED" | "RUNNING" | "STOPPING" | "DRAINING" | "STOPPED" | "FAILED";

export type WorkerEvent =
  | { type: "state"; state: WorkerState; error?: Error }
  /** Registered on a new session, with its report dir (relative to the grid's root). */
  | { type: "registered"; sessionId: string; reportDir: string }
  /** That session's tasks were killed and their results dropped: it expired, or the leader fenced it. */
  | { type: "session-ended"; sessionId: string; reason: "expired" | "fenced" | "closed" }
  /**
   * Cut off from every ensemble member for `forMs` (the cutoff stop): the worker stopped `stopped`
   * running tasks of its session, to be handed back if the session survives.
   */
  | { type: "cut-off"; sessionId: string | undefined; forMs: number; stopped: number }
  /** An assignment was read and acted on (possibly by doing nothing: another session, fenced, stopping). */
  | { type: "assignment"; sessionId: string; epoch: number; tasks: readonly AssignedTask[] }
  /** A status update the worker reports for that session. */
  | { type: "update"; sessionId: string; update: StatusUpdate };

/** The worker's listeners: `on()` and `events()` read what `emit()` sends. */
export class WorkerEvents {
  private readonly listeners = new Set<(event: WorkerEvent) => void>();

  constructor(private readonly log: Logger) {}

  on(listener: (event: WorkerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: WorkerEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log("error", `an event listener threw: ${messageOf(error)}`);
      }
    }
  }

  /** Events from now on; ends after a STOPPED or FAILED state event, or at once if `ended`. */
  events(ended: boolean, options: { signal?: AbortSignal } = {}): AsyncIterableIterator<WorkerEvent> {
    const queue: WorkerEvent[] = [];
    let wake: (() => void) | undefined;
    const finish = () => {
      ended = true;
      unsubscribe();
      wake?.();
    };
    const unsubscribe = this.on((event) => {
      queue.push(event);
      if (event.type === "state" && (event.state === "STOPPED" || event.state === "FAILED")) finish();
      wake?.();
    });
    options.signal?.addEventListener("abort", finish, { once: true });
    const iterator: AsyncIterableIterator<WorkerEvent> = {
      async next() {
        while (queue.length === 0 && !ended) {
          await new Promise<void>((resolveNext) => {
            wake = resolveNext;
          });
          wake = undefined;
        }
        const event = queue.shift();
        return event === undefined ? { done: true, value: undefined } : { done: false, value: event };
      },
      async return() {
        queue.length = 0;
        finish();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
