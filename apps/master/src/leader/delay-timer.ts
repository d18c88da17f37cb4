import type { Term } from "./term.js";

/** A timer never waits longer than this (Node's limit is about 24.8 days); it is simply armed again. */
const MAX_WAIT_MS = 60 * 60_000;

/**
 * Wakes the step loop when the next delayed task is due. The TaskBook holds delayed tasks in memory
 * (their queue nodes are their durable record), so waiting costs one timer, not a write per task:
 * each step releases what is due (`TaskBook.releaseDue`) and arms this for the next one.
 */
export class DelayTimer {
  private timer: NodeJS.Timeout | undefined;
  private armedFor: number | undefined;

  constructor(private readonly term: Term) {}

  /** After a step: one timer for the earliest due time (a timer that fires early is armed again). */
  arm(): void {
    if (this.term.isStopped()) return;
    const due = this.term.book.nextDueAt();
    if (due === this.armedFor && (due === undefined || this.timer !== undefined)) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = due;
    if (due === undefined) return;
    const wait = Math.min(Math.max(0, due - Date.now()), MAX_WAIT_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.armedFor = undefined;
      this.term.kick();
    }, wait);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
