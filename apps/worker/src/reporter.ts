import {
  isClosed,
  isNoNode,
  isSessionExpired,
  type Logger,
  messageOf,
  sleep,
  type ZkClient,
} from "@zkgrid/core";
import {
  encodeWorkerReport,
  encodeWorkerReports,
  headBytes,
  MAX_MESSAGE_BYTES,
  SCHEMA_VERSION,
  type StatusUpdate,
} from "@zkgrid/protocol";

export interface ReporterOptions {
  /** The worker's keeper passes a view bound to the session: nothing is written once it has ended. */
  client: Pick<ZkClient, "create">;
  /** The session's report dir, `R/reports/<worker>@<session>` (relative to the client's root). */
  dir: string;
  worker: string;
  session: string;
  logger: Logger;
  /** Aborts when the session ends: pending updates are dropped. */
  signal: AbortSignal;
  /** Called once when a create fails with NONODE: the leader has fenced this session. */
  onFenced: () => void;
  /**
   * While this returns true, the leader needs no news yet (the worker has tasks waiting to start), so
   * updates may wait up to `lingerMs` for others to share their node. Call `kick()` when it turns false.
   */
  hold?: () => boolean;
  /** The longest an update waits while `hold()` is true; default 25 ms. */
  lingerMs?: number;
  /** True once the worker is stopping: every report written from then on carries `draining`. */
  draining?: () => boolean;
}

export const DEFAULT_LINGER_MS = 25;

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

const updateKey = (u: { id: string; attempt: number }) => `${u.id}#${u.attempt}`;

/**
 * Writes one session's status updates as `WorkerReport` nodes (`r<seq>` under the session's report
 * dir). While one create is in flight, new updates accumulate and go into the next one. No timer
 * delays an update unless `hold()` says the worker has tasks waiting to start.
 */
export class SessionReporter {
  private pending: StatusUpdate[] = [];
  /** Keys of the final updates in `pending`. */
  private finals = new Set<string>();
  private writing = false;
  /** A write is due on the next turn of the event loop. */
  private soon = false;
  /** A report with no updates is due (see nudge). */
  private nudgeDue = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private dead = false;
  private idleWaiters: Array<() => void> = [];
  private readonly options: ReporterOptions;

  constructor(options: ReporterOptions) {
    this.options = options;
    options.signal.addEventListener("abort", () => this.close(), { once: true });
  }

  /** False once the session ended or was fenced: nothing more will be written. */
  get open(): boolean {
    return !this.dead;
  }

  report(update: StatusUpdate): void {
    if (this.dead) return;
    if (update.state !== "running") this.finals.add(updateKey(update));
    this.pending.push(update);
    this.kick();
  }

  /**
   * Writes a report with no updates, without waiting for `hold()`: it tells the leader to list the
   * session's inbox now, where a task just declined waits (the leader lists an inbox a while after it
   * changes, so that a stream of lone tasks shares one listing).
   */
  nudge(): void {
    if (this.dead) return;
    this.nudgeDue = true;
    if (!this.writing) this.writeSoon();
  }

  /** Starts writing what is pending, unless a write is under way or `hold()` lets it wait. */
  kick(): void {
    if (this.writing || this.soon || this.dead || this.pending.length === 0) return;
    if (this.options.hold?.() === true) {
      this.lingerTimer ??= setTimeout(() => {
        this.lingerTimer = undefined;
        this.writeSoon();
      }, this.options.lingerMs ?? DEFAULT_LINGER_MS);
      return;
    }
    this.writeSoon();
  }

  // Start the write on the next turn of the event loop, not a timer: everything reported in this
  // turn (a batch of starts, a handler's `running` and its final status) shares the first node.
  private writeSoon(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.writing || this.soon) return;
    this.soon = true;
    setImmediate(() => {
      this.soon = false;
      void this.writeAll();
    });
  }

  /** Resolves once every update given so far is written, or dropped because the session is gone. */
  flushed(): Promise<void> {
    if (!this.writing && !this.soon && ((this.pending.length === 0 && !this.nudgeDue) || this.dead))
      return Promise.resolve();
    this.writeSoon();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops whatever is not written yet; used when the session ends. */
  close(): void {
    this.dead = true;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.pending = [];
    this.finals.clear();
    this.nudgeDue = false;
    if (!this.writing && !this.soon) this.wakeIdleWaiters();
  }

  private wakeIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private async writeAll(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.length > 0 && !this.dead) {
        const batch = this.takePending();
        let nodes: Buffer[];
        try {
          nodes = this.encode(batch);
        } catch (error) {
          this.options.logger(
            "error",
            `dropped ${batch.length} status updates: ${(error as Error).message}`,
            {
              session: this.options.session,
            },
          );
          continue;
        }
        for (const data of nodes) await this.writeReport(data);
        if (this.idleWaiters.length === 0 && this.options.hold?.() === true) break;
      }
      if (this.nudgeDue && !this.dead) {
        this.nudgeDue = false;
        const { worker, session } = this.options;
        const draining = this.options.draining?.() === true ? { draining: true } : {};
        await this.writeReport(
          encodeWorkerReport({ v: SCHEMA_VERSION, worker, session, ...draining, updates: [] }),
        );
      }
    } finally {
      this.writing = false;
      if (this.nudgeDue && !this.dead) this.writeSoon();
      else if (this.pending.length > 0 && !this.dead) this.kick();
      else this.wakeIdleWaiters();
    }
  }

  /** Everything pending, without a `running` update whose final one waits too (that carries startedAt). */
  private takePending(): StatusUpdate[] {
    const finals = this.finals;
    const pending = this.pending;
    this.pending = [];
    if (finals.size === 0) return pending;
    this.finals = new Set();
    return pending.filter((u) => u.state !== "running" || !finals.has(updateKey(u)));
  }

  /** The updates as report nodes' data, as many as they fill (each update is encoded once). */
  private encode(updates: StatusUpdate[]): Buffer[] {
    const { worker, session } = this.options;
    const draining = this.options.draining?.() === true;
    try {
      return encodeWorkerReports(worker, session, updates, undefined, draining);
    } catch (error) {
      // One bad update must not sink the others: replace each one the schema refuses by a bare `failed`.
      const checked = updates.map((update) => {
        try {
          encodeWorkerReports(worker, session, [update]);
          return update;
        } catch (problem) {
          const why = messageOf(problem);
          this.options.logger("error", `status update could not be encoded: ${why}`, {
            task: update.id,
            attempt: update.attempt,
          });
          const { id, attempt, at, startedAt, finishedAt } = update;
          // Whatever made it unreportable (output, tails) is gone, so it cannot count as a success.
          const state = update.state === "succeeded" ? "failed" : update.state;
          return {
            id,
            attempt,
            state,
            at,
            ...(startedAt === undefined ? {} : { startedAt }),
            ...(finishedAt === undefined ? {} : { finishedAt }),
            error: headBytes(`the worker could not report this task's status: ${why}`, MAX_MESSAGE_BYTES),
          } satisfies StatusUpdate;
        }
      });
      if (checked.every((u, i) => u === updates[i])) throw error;
      return encodeWorkerReports(worker, session, checked, undefined, draining);
    }
  }

  private async writeReport(data: Buffer): Promise<void> {
    const { client, dir, logger, signal } = this.options;
    let delay = RETRY_MIN_MS;
    while (!this.dead && !signal.aborted) {
      try {
        await client.create(`${dir}/r`, data, "persistent-sequential");
        return;
      } catch (error) {
        if (isNoNode(error)) {
          logger("error", `report dir ${dir} is gone: the leader gave this session up`, {
            session: this.options.session,
          });
          this.close();
          this.options.onFenced();
          return;
        }
        if (isSessionExpired(error) || isClosed(error)) {
          this.close();
          return;
        }
        // A lost reply may hide a create that happened: writing the report twice is harmless,
        // since the leader counts the first final status of a task.
        logger("warn", `report create failed, retrying in ${delay} ms: ${(error as Error).message}`, {
          session: this.options.session,
        });
        await sleep(delay, signal);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }
}
