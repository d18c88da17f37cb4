import type { ThroughputView } from "./types.js";

export const BUCKET_MS = 5_000;
export const WINDOW_MS = 10 * 60_000;

/** Finished tasks counted into fixed buckets; buckets older than the window are dropped. */
export class ThroughputSeries {
  readonly #buckets = new Map<number, { finished: number; succeeded: number }>();

  constructor(
    readonly bucketMs = BUCKET_MS,
    readonly windowMs = WINDOW_MS,
  ) {}

  /** Counts one finished task at `at` (a time outside the window, e.g. from a skewed clock, counts now). */
  add(at: number, succeeded: boolean, now = Date.now()): void {
    const when = at > now || at <= now - this.windowMs ? now : at;
    const start = when - (when % this.bucketMs);
    let bucket = this.#buckets.get(start);
    if (!bucket) {
      bucket = { finished: 0, succeeded: 0 };
      this.#buckets.set(start, bucket);
      this.#prune(now);
    }
    bucket.finished += 1;
    if (succeeded) bucket.succeeded += 1;
  }

  view(now = Date.now()): ThroughputView {
    this.#prune(now);
    const last = now - (now % this.bucketMs);
    const count = Math.round(this.windowMs / this.bucketMs);
    const buckets: ThroughputView["buckets"] = [];
    let lastMinute = 0;
    for (let i = count - 1; i >= 0; i--) {
      const start = last - i * this.bucketMs;
      const b = this.#buckets.get(start);
      buckets.push({ start, finished: b?.finished ?? 0, succeeded: b?.succeeded ?? 0 });
      if (start > now - 60_000) lastMinute += b?.finished ?? 0;
    }
    // The newest bucket is still filling: the rate covers the elapsed part of the minute only.
    const span = 60_000 - this.bucketMs + ((now % this.bucketMs) + 1);
    return {
      bucketMs: this.bucketMs,
      windowMs: this.windowMs,
      buckets,
      perSecond: Math.round((lastMinute / (span / 1000)) * 100) / 100,
    };
  }

  #prune(now: number): void {
    for (const start of this.#buckets.keys()) {
      if (start <= now - this.windowMs - this.bucketMs) this.#buckets.delete(start);
    }
  }
}

/**
 * Queue depth sampled whenever a snapshot is built: the highest depth per bucket. A bucket without a
 * sample repeats the one before (nothing changed, so no snapshot was needed).
 */
export class DepthSeries {
  readonly #buckets = new Map<number, number>();

  constructor(
    readonly bucketMs = BUCKET_MS,
    readonly windowMs = WINDOW_MS,
  ) {}

  record(depth: number, now = Date.now()): void {
    const start = now - (now % this.bucketMs);
    this.#buckets.set(start, Math.max(depth, this.#buckets.get(start) ?? 0));
    for (const key of this.#buckets.keys()) {
      if (key <= now - this.windowMs - this.bucketMs) this.#buckets.delete(key);
    }
  }

  /** Oldest first, from the first sample in the window on. */
  view(now = Date.now()): Array<{ start: number; depth: number }> {
    const last = now - (now % this.bucketMs);
    const count = Math.round(this.windowMs / this.bucketMs);
    const out: Array<{ start: number; depth: number }> = [];
    let previous: number | undefined;
    // A sample older than the window still tells the depth at the window's start.
    for (const [start, depth] of this.#buckets) if (start <= last - count * this.bucketMs) previous = depth;
    for (let i = count - 1; i >= 0; i--) {
      const start = last - i * this.bucketMs;
      const depth = this.#buckets.get(start) ?? previous;
      if (depth === undefined) continue;
      out.push({ start, depth });
      previous = depth;
    }
    return out;
  }
}
