import type { TaskStatus } from "@zkgrid/protocol";
import { formatDuration } from "./duration.js";

const BAR_WIDTH = 24;
const REDRAW_MS = 100;

/**
 * A one-line progress bar for `submit --wait` on a terminal: done, failed, rate and ETA, redrawn in
 * place on stderr. Call `clear()` before writing anything else to the same terminal.
 */
export class ProgressBar {
  readonly #stream: NodeJS.WritableStream;
  readonly #total: number;
  readonly #started: number;
  #done = 0;
  #failed = 0;
  #shown = false;
  #lastDraw = 0;
  readonly #timer: NodeJS.Timeout;

  /** `startedAt`: when the wait began (default now), for the rate. */
  constructor(stream: NodeJS.WritableStream, total: number, startedAt = Date.now()) {
    this.#stream = stream;
    this.#total = total;
    this.#started = startedAt;
    // The rate and ETA move while nothing finishes, too.
    this.#timer = setInterval(() => this.draw(), 1_000);
    this.#timer.unref();
    this.draw();
  }

  /** Counts one final status. */
  add(status: TaskStatus): void {
    this.#done += 1;
    if (status.state !== "succeeded") this.#failed += 1;
    if (this.#done === this.#total || Date.now() - this.#lastDraw >= REDRAW_MS) this.draw();
  }

  /** Removes the bar from the terminal line (it comes back with the next draw). */
  clear(): void {
    if (!this.#shown) return;
    this.#stream.write("\r\x1b[2K");
    this.#shown = false;
  }

  draw(): void {
    this.#lastDraw = Date.now();
    this.#stream.write(`\r\x1b[2K${this.line(this.#lastDraw)}`);
    this.#shown = true;
  }

  /** Leaves the final state of the bar on its own line. */
  stop(): void {
    clearInterval(this.#timer);
    if (this.#shown) this.#stream.write(`\r\x1b[2K${this.line(Date.now())}\n`);
    this.#shown = false;
  }

  /** `[#####-----] 50/100 done, 3 failed  12.5/s  ETA 4.0s` */
  line(now: number): string {
    const fraction = this.#total === 0 ? 1 : this.#done / this.#total;
    const filled = Math.round(fraction * BAR_WIDTH);
    const elapsed = Math.max(1, now - this.#started);
    const rate = (this.#done * 1000) / elapsed;
    const left = this.#total - this.#done;
    const eta = left === 0 ? "done" : rate > 0 ? `ETA ${formatDuration((left / rate) * 1000)}` : "ETA -";
    return (
      `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${this.#done}/${this.#total} done` +
      `${this.#failed > 0 ? `, ${this.#failed} failed` : ""}  ${rate.toFixed(rate < 10 ? 1 : 0)}/s  ${eta}`
    );
  }
}
