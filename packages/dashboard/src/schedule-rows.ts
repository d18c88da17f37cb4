import type { GridObserver, ScheduleView } from "@zkgrid/observer";
import type { CatchUpPolicy, Firing, OverlapPolicy, TaskState } from "@zkgrid/protocol";

/** One recent firing of a schedule, with the state of the task it made (if the grid still knows it). */
export interface FiringRow extends Firing {
  state?: TaskState;
}

/** What the Schedules panel shows of one schedule (`GET /api/schedules`). */
export interface ScheduleRow {
  name: string;
  cron?: string;
  tz?: string;
  everyMs?: number;
  paused?: boolean;
  catchUp?: CatchUpPolicy;
  catchUpMax?: number;
  overlap?: OverlapPolicy;
  /** The next slot the leader will look at; absent while paused. */
  next?: number;
  /** The newest slot decided (fired or skipped). */
  lastSlot?: number;
  /** The newest slot that fired a task. */
  lastFired?: number;
  /** Newest first. */
  firings: FiringRow[];
  /** Why the schedule's node cannot be read (the leader ignores it). */
  problem?: string;
}

/** Schedules are read from ZooKeeper, not followed: open pages share one read per this long. */
const FRESH_MS = 1000;

/** The schedules as the page shows them, read at most once per FRESH_MS whatever the number of pages. */
export class ScheduleRows {
  readonly #observer: GridObserver;
  #last: { at: number; rows: Promise<ScheduleRow[]> } | undefined;

  constructor(observer: GridObserver) {
    this.#observer = observer;
  }

  read(): Promise<ScheduleRow[]> {
    const now = Date.now();
    if (this.#last === undefined || now - this.#last.at >= FRESH_MS) {
      const rows = this.#build();
      // A failed read is not kept: the next page asks again.
      rows.catch(() => (this.#last = undefined));
      this.#last = { at: now, rows };
    }
    return this.#last.rows;
  }

  /** Forgets the last read, so a page sees its own change at once. */
  stale(): void {
    this.#last = undefined;
  }

  async #build(): Promise<ScheduleRow[]> {
    const views = await this.#observer.schedules();
    const ids = views.flatMap((v) => (v.state?.recent ?? []).flatMap((f) => (f.task ? [f.task] : [])));
    const tasks = ids.length > 0 ? await this.#observer.findTasks(ids) : new Map();
    return views.map((view) => scheduleRow(view, (id) => tasks.get(id)?.state));
  }
}

function scheduleRow(view: ScheduleView, stateOf: (id: string) => TaskState | undefined): ScheduleRow {
  const { spec, state } = view;
  const row: ScheduleRow = { name: view.name, firings: [] };
  if (view.problem !== undefined) row.problem = view.problem;
  if (spec === undefined) return row;
  Object.assign(row, {
    ...(spec.cron === undefined ? {} : { cron: spec.cron, tz: spec.tz ?? "UTC" }),
    ...(spec.everyMs === undefined ? {} : { everyMs: spec.everyMs }),
    paused: spec.paused,
    catchUp: spec.catchUp,
    ...(spec.catchUpMax === undefined ? {} : { catchUpMax: spec.catchUpMax }),
    overlap: spec.overlap,
    ...(view.next === undefined ? {} : { next: view.next }),
  });
  if (state === undefined) return row;
  row.lastSlot = state.lastSlot;
  const recent = [...state.recent].reverse();
  const fired = recent.find((f) => f.task !== undefined);
  if (fired) row.lastFired = fired.slot;
  row.firings = recent.map((f) => {
    const taskState = f.task === undefined ? undefined : stateOf(f.task);
    return taskState === undefined ? { ...f } : { ...f, state: taskState };
  });
  return row;
}
