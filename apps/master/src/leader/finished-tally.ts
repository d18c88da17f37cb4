import type { Logger } from "@zkgrid/core";
import type { TaskStatus } from "@zkgrid/protocol";

/** How often the leader logs, at info, how many tasks finished (each task's own line is at debug). */
export const FINISHED_SUMMARY_MS = 10_000;

/**
 * The count of finished tasks by state, logged as one `tasks finished` line per period in which any
 * finished: a line per task would cost the leader more than the task at thousands a second.
 */
export class FinishedTally {
  private readonly counts = new Map<string, number>();
  private since = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly everyMs = FINISHED_SUMMARY_MS,
  ) {}

  /** Counts results as they are written. */
  count(results: readonly TaskStatus[]): void {
    if (results.length === 0) return;
    for (const r of results) this.counts.set(r.state, (this.counts.get(r.state) ?? 0) + 1);
    if (this.timer !== undefined) return;
    this.since = Date.now();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.everyMs);
    this.timer.unref();
  }

  /** Logs what was counted since the last line, if anything. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.counts.size === 0) return;
    let total = 0;
    for (const n of this.counts.values()) total += n;
    this.log("info", "tasks finished", {
      total,
      ...Object.fromEntries(this.counts),
      seconds: Math.round((Date.now() - this.since) / 100) / 10,
    });
    this.counts.clear();
  }

  /** The term ends: what was counted is logged now. */
  stop(): void {
    this.flush();
  }
}
