/**
 * How many tasks the worker asks to hold beyond `concurrency`: a fixed number (`--prefetch N`), or by
 * default a number it adapts to the work. The leader gives a worker at most its registered capacity,
 * `concurrency + prefetch`, so this number is what the worker asks for.
 */
export type PrefetchRule = { readonly kind: "fixed"; readonly tasks: number } | AdaptivePrefetchRule;

export interface AdaptivePrefetchRule {
  readonly kind: "adaptive";
  /** The most it grows to. */
  readonly max: number;
}

/** The adaptive rule's bound: as many as `concurrency`, and at least this many (within MAX_CAPACITY). */
export const ADAPTIVE_PREFETCH_FLOOR = 32;

/** How long the worker stays idle (nothing running, nothing held) before its prefetch drops to 0. */
export const PREFETCH_IDLE_MS = 1_000;

/** What a reconcile saw, for the adaptive rule. */
export interface ReconcileSeen {
  /** Tasks running after it. */
  running: number;
  /** Tasks of the assignment held, waiting for a slot, after it. */
  held: number;
  /** Tasks it started from the assignment. */
  started: number;
  /** Set when it followed a new assignment: how many tasks that assignment lists. */
  assigned?: number;
}

/**
 * The worker's prefetch, and the adaptive rule's state. The rule, judged after each reconcile:
 * - **grow** by the number of slots that waited (up to `max`) when new tasks filled every slot right
 *   after those slots had waited for them with nothing held, the last assignment having filled all the
 *   worker asked for: the queue is deeper than the worker's capacity, and tasks end faster than the
 *   leader refills them. The tasks that end during one refill are the ones worth holding;
 * - **shrink** (halve) when an assignment lists fewer tasks than `concurrency`: the leader had no more
 *   for this worker, so the queue is short and held tasks would only wait while slots elsewhere are free;
 * - **drop to 0** once nothing has run and nothing has been held for `PREFETCH_IDLE_MS`.
 * It stops growing once the held tasks last as long as a refill takes: for long tasks, a few.
 */
export class Prefetch {
  private current: number;
  /** The last assignment listed all the worker asked for: the queue may hold more. */
  private deep = false;
  /** The last reconcile left a free slot and nothing held while the queue was deep. */
  private starved = false;
  private idleTimer: NodeJS.Timeout | undefined;

  /** `onChange` is called (synchronously) each time the capacity changes. */
  constructor(
    readonly rule: PrefetchRule,
    private readonly concurrency: number,
    private readonly onChange: () => void,
  ) {
    this.current = rule.kind === "fixed" ? rule.tasks : 0;
  }

  /** Tasks the worker asks to hold now. */
  get tasks(): number {
    return this.current;
  }

  /** What the worker registers: tasks the leader may give it at once. */
  get capacity(): number {
    return this.concurrency + this.current;
  }

  /** Held tasks below which finished ones are reported without delay (see SessionReporter's `hold`). */
  get lowWater(): number {
    return Math.min(this.current / 2, this.concurrency);
  }

  /** Applies the adaptive rule to what a reconcile (while the worker runs) saw. */
  adapt(seen: ReconcileSeen): void {
    const { rule } = this;
    if (rule.kind === "fixed") return;
    let next = this.current;
    const full = seen.running >= this.concurrency;
    if (seen.assigned !== undefined) {
      this.deep = seen.assigned >= this.capacity;
      if (seen.assigned < this.concurrency) next = Math.floor(next / 2);
    }
    // Every task started here filled a slot that waited for the leader (nothing was held).
    if (this.starved && seen.started > 0 && full) next = Math.min(rule.max, next + seen.started);
    this.starved = this.deep && !full && seen.held === 0;
    if (seen.running === 0 && seen.held === 0) this.armIdle();
    else this.disarmIdle();
    this.set(next);
  }

  stop(): void {
    this.disarmIdle();
  }

  private set(next: number): void {
    if (next === this.current) return;
    this.current = next;
    this.onChange();
  }

  private armIdle(): void {
    if (this.current === 0 || this.idleTimer !== undefined) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.deep = false;
      this.starved = false;
      this.set(0);
    }, PREFETCH_IDLE_MS);
    this.idleTimer.unref();
  }

  private disarmIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
