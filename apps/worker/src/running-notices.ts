/**
 * How long a task runs before the worker reports it `running`. Most short tasks then cost one status
 * update (the final one, which carries `startedAt`) instead of two.
 */
export const RUNNING_NOTICE_DELAY_MS = 100;

/** Runs each notice `delayMs` after it was added, in order, on one timer for all of them. */
export class RunningNotices {
  private readonly queue: Array<{ due: number; notify: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly delayMs: number = RUNNING_NOTICE_DELAY_MS) {}

  /** `notify` checks for itself whether the task still runs. */
  add(notify: () => void): void {
    this.queue.push({ due: Date.now() + this.delayMs, notify });
    this.arm();
  }

  private arm(): void {
    const next = this.queue[0];
    if (this.timer !== undefined || next === undefined) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next.due - Date.now()));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) this.queue.shift()!.notify();
    this.arm();
  }
}
