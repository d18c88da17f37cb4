import { type DataChange, errors } from "@zkgrid/core";
import { decodeGridGate, formatStartLimit, type GridGate } from "@zkgrid/protocol";
import type { ScheduleGate } from "../task-book.js";
import type { Term } from "./term.js";

/** One label's start limit and the hand-outs that count against it. */
interface LimitWindow {
  starts: number;
  perMs: number;
  /** Hand-out times of the last interval, oldest first, from `head` on. */
  times: number[];
  head: number;
  /**
   * No hand-out before this: the starts made before this term learned the limit (by an earlier
   * leader, or before the limit was set) are unknown to it, so it counts its first interval as full.
   */
  notBefore: number;
}

/**
 * The grid's gate as this term follows it from `R/gate`: whether the grid or a label is paused, and
 * each label's start limit with the hand-outs of its last interval (a sliding window). The schedule
 * asks it before every hand-out; a task it holds stays queued in its place. A refused limit arms a
 * timer that asks for a step when the window opens again.
 *
 * A malformed node, or a malformed part of one, is ignored with a logged reason: every leader reads
 * the same node the same way, so the gate does not change with failover.
 */
export class StartGate implements ScheduleGate {
  #paused = false;
  #pausedLabels: ReadonlySet<string> = new Set();
  readonly #limits = new Map<string, LimitWindow>();
  #wake: { at: number; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly term: Term) {
    term.signal.addEventListener("abort", () => clearTimeout(this.#wake?.timer), { once: true });
  }

  get closed(): boolean {
    return this.#paused;
  }

  /**
   * Follows `R/gate` for the whole term. Resolves once the current gate is queued for the next step
   * (the takeover drains it before the first hand-out).
   */
  follow(): Promise<void> {
    const { term } = this;
    return term.follower.data(term.layout.gate, (change) => {
      const gate = this.#read(change);
      term.apply(() => this.#adopt(gate, Date.now()));
    });
  }

  /**
   * Reads `R/gate` once more and queues it for the next step: after a lost connection, so that no step
   * decides on a gate older than what ZooKeeper held when the connection came back.
   */
  async refresh(): Promise<void> {
    const { term } = this;
    try {
      const got = await term.client.get(term.layout.gate);
      const gate = this.#read({ data: got.data, stat: got.stat });
      term.apply(() => this.#adopt(gate, Date.now()));
    } catch (err) {
      if (errors.isNoNode(err)) term.apply(() => this.#adopt({ v: 1 }, Date.now()));
      // Anything else: the watch delivers the gate when it can.
    }
  }

  allows(labels: readonly string[] | undefined, now: number): boolean {
    if (labels === undefined || (this.#pausedLabels.size === 0 && this.#limits.size === 0)) return true;
    for (const label of labels) {
      if (this.#pausedLabels.has(label)) return false;
      const window = this.#limits.get(label);
      if (window !== undefined && !this.#hasRoom(window, now)) return false;
    }
    return true;
  }

  handedOut(labels: readonly string[] | undefined, now: number): void {
    if (labels === undefined || this.#limits.size === 0) return;
    for (const label of labels) this.#limits.get(label)?.times.push(now);
  }

  /** Room for one more start at `now`: fewer than `starts` hand-outs in `(now - perMs, now]`. */
  #hasRoom(window: LimitWindow, now: number): boolean {
    if (now < window.notBefore) {
      this.#wakeAt(window.notBefore);
      return false;
    }
    const { times } = window;
    while (window.head < times.length && (times[window.head] as number) <= now - window.perMs) window.head++;
    if (window.head > 1024 && window.head * 2 > times.length) {
      times.splice(0, window.head);
      window.head = 0;
    }
    const count = times.length - window.head;
    if (count < window.starts) return true;
    // The window opens when the start `count - starts + 1`-th from the oldest leaves it.
    this.#wakeAt((times[window.head + count - window.starts] as number) + window.perMs);
    return false;
  }

  #wakeAt(at: number): void {
    if (this.term.isStopped() || (this.#wake !== undefined && this.#wake.at <= at)) return;
    clearTimeout(this.#wake?.timer);
    const timer = setTimeout(
      () => {
        this.#wake = undefined;
        this.term.kick();
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref();
    this.#wake = { at, timer };
  }

  #read(change: DataChange | null): GridGate {
    if (change === null) return { v: 1 };
    const decoded = decodeGridGate(change.data);
    if (!decoded.ok) {
      this.term.log("warn", "gate node unreadable; ignoring it: nothing is paused or limited by it", {
        node: this.term.layout.gate,
        error: decoded.error.message,
      });
      return { v: 1 };
    }
    for (const issue of decoded.value.ignored) {
      this.term.log("warn", "part of the gate node ignored", {
        node: this.term.layout.gate,
        path: issue.path,
        problem: issue.problem,
      });
    }
    return decoded.value.gate;
  }

  #adopt(gate: GridGate, now: number): void {
    const { log } = this.term;
    const paused = gate.paused !== undefined;
    if (paused !== this.#paused) log("info", paused ? "grid paused: no task starts" : "grid resumed");
    this.#paused = paused;

    const labels = new Set(Object.keys(gate.pausedLabels ?? {}));
    for (const label of labels)
      if (!this.#pausedLabels.has(label)) log("info", "label paused: its tasks wait", { label });
    for (const label of this.#pausedLabels) if (!labels.has(label)) log("info", "label resumed", { label });
    this.#pausedLabels = labels;

    const limits = gate.limits ?? {};
    for (const [label, { starts, perMs }] of Object.entries(limits)) {
      const window = this.#limits.get(label);
      if (window === undefined) {
        this.#limits.set(label, { starts, perMs, times: [], head: 0, notBefore: now + perMs });
        log("info", "start limit in force; its first interval counts as full", {
          label,
          limit: formatStartLimit({ starts, perMs }),
        });
      } else if (window.starts !== starts || window.perMs !== perMs) {
        // Starts already dropped from a shorter window may lie in the longer one: wait them out.
        if (perMs > window.perMs) window.notBefore = Math.max(window.notBefore, now + perMs - window.perMs);
        window.starts = starts;
        window.perMs = perMs;
        log("info", "start limit changed", { label, limit: formatStartLimit({ starts, perMs }) });
      }
    }
    for (const label of [...this.#limits.keys()]) {
      if (Object.hasOwn(limits, label)) continue;
      this.#limits.delete(label);
      log("info", "start limit removed", { label });
    }
  }
}
