import { errors } from "@zkgrid/core";
import type { DataChange } from "@zkgrid/core";
import type { Firing, ScheduleSpec, ScheduleState, TaskSpec } from "@zkgrid/protocol";
import {
  DEFAULT_CATCH_UP_MAX,
  decodeScheduleSpec,
  decodeScheduleState,
  encodeScheduleState,
  firingTaskId,
  nextSlot,
  RECENT_FIRINGS,
  scheduleNameProblem,
  slotsBetween,
} from "@zkgrid/protocol";
import type { QueueIntake } from "./queue-intake.js";
import {
  type ChildrenChange,
  followChildren,
  forEachLimit,
  getOrNull,
  NotLeaderError,
  type Term,
} from "./term.js";

/** One schedule as this term follows it. */
interface Tracked {
  readonly name: string;
  readonly stop: AbortController;
  /** The valid spec, or undefined while the node is unreadable (logged once per version). */
  spec: ScheduleSpec | undefined;
  /** The leader's record at `R/firings/<name>`, if it belongs to this spec. */
  state: ScheduleState | undefined;
  /** The version of `R/firings/<name>` as last read or written; undefined: no node. */
  stateVersion: number | undefined;
  /** A decided state not yet durable: written before anything else is decided for this schedule. */
  pending: ScheduleState | undefined;
  /** Due slots found at the next look were missed (no leader could act): the catch-up policy applies. */
  missedOnNextLook: boolean;
  /** The next slot to look at, cached; undefined when none (paused, unreadable). */
  due: number | undefined;
}

/**
 * R/schedules and R/firings: follows every schedule, and fires each slot as a task `<name>.<slot>`
 * (see "Schedules" in docs/protocol.md for why a slot fires at most once).
 *
 * A firing is two writes, in this order: the task's queue node, then the schedule's firings node
 * (`lastSlot`), under the version this term read. A leader taking over has read the queue, the
 * assignments and the results before it looks at a schedule, so a slot fired by its predecessor whose
 * firings write was lost is a known task id: it is recorded, never fired again. The step does the
 * firings write before any result write, so no result can be pruned while its slot is unrecorded.
 */
export class ScheduleFirings {
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly term: Term,
    private readonly intake: QueueIntake,
  ) {}

  /** Takeover: reads every schedule and its firings node before the first step. */
  async start(): Promise<void> {
    const { client, layout } = this.term;
    await client.ensurePath(layout.schedules);
    await client.ensurePath(layout.firings);
    await followChildren(this.term, layout.schedules, (c) => this.onSchedules(c, true));
    // Firings nodes whose schedule is gone: removed while no leader ran.
    const firings = await client.getChildren(layout.firings);
    for (const name of firings) {
      if (!this.tracked.has(name)) void this.deleteFirings(name);
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The connection was lost for a while: slots that came due meanwhile were missed. */
  afterOutage(): void {
    for (const t of this.tracked.values()) t.missedOnNextLook = true;
  }

  /** What `zkgrid status`-like views and tests read: schedules followed, and those unreadable. */
  get counts(): { schedules: number; unreadable: number } {
    let unreadable = 0;
    for (const t of this.tracked.values()) if (!t.spec) unreadable += 1;
    return { schedules: this.tracked.size, unreadable };
  }

  private async onSchedules({ added, removed }: ChildrenChange, takeover = false): Promise<void> {
    const { term } = this;
    for (const name of removed) {
      const t = this.tracked.get(name);
      if (!t) continue;
      t.stop.abort();
      this.tracked.delete(name);
      void this.deleteFirings(name, t.stateVersion);
      term.log("info", "schedule removed", { schedule: name });
    }
    await forEachLimit(added, 32, async (name) => {
      if (this.tracked.has(name)) return;
      const problem = scheduleNameProblem(name);
      if (problem !== undefined) {
        term.log("warn", "unexpected node under schedules; ignoring it", { node: name, reason: problem });
        return;
      }
      await this.follow(name, takeover);
    });
  }

  /** Reads the firings node, then follows the spec; resolves once both have been read. */
  private async follow(name: string, takeover: boolean): Promise<void> {
    const { term } = this;
    const t: Tracked = {
      name,
      stop: new AbortController(),
      spec: undefined,
      state: undefined,
      stateVersion: undefined,
      pending: undefined,
      missedOnNextLook: takeover,
      due: undefined,
    };
    this.tracked.set(name, t);
    const got = await getOrNull(term.client, term.layout.firing(name));
    if (got) {
      t.stateVersion = got.stat.version;
      const decoded = decodeScheduleState(got.data);
      if (!decoded.ok) {
        term.log("warn", "unreadable firings node; it will be rewritten", {
          schedule: name,
          reason: decoded.error.message,
        });
      } else if (decoded.value.epoch > term.epoch) {
        throw new NotLeaderError(`firings of schedule ${name} have a newer epoch`);
      } else t.state = decoded.value;
    }
    await term.follower.data(term.layout.schedule(name), (change) => this.onSpec(t, change), {
      signal: t.stop.signal,
    });
  }

  private onSpec(t: Tracked, change: DataChange | null): void {
    if (change === null) {
      t.spec = undefined;
      t.due = undefined;
      return;
    }
    const decoded = decodeScheduleSpec(change.data);
    if (!decoded.ok) {
      this.term.log("warn", "unreadable schedule; ignoring it", {
        schedule: t.name,
        version: change.stat.version,
        reason: decoded.error.message,
      });
      t.spec = undefined;
      t.due = undefined;
      return;
    }
    const spec = decoded.value;
    const wasPaused = t.spec?.paused;
    t.spec = spec;
    // A firings node of an earlier schedule of the same name does not hold this one back.
    if (t.state && t.state.createdAt !== spec.createdAt) t.state = undefined;
    t.due = spec.paused ? undefined : nextSlot(spec, this.fromOf(t));
    if (wasPaused !== spec.paused) {
      this.term.log("info", spec.paused ? "schedule paused" : "schedule active", {
        schedule: t.name,
        ...(spec.paused || t.due === undefined ? {} : { next: new Date(t.due).toISOString() }),
      });
    }
  }

  /** Slots after this are undecided: the last decided slot, and nothing before creation or a resume. */
  private fromOf(t: Tracked): number {
    const spec = t.spec;
    if (!spec) return Number.POSITIVE_INFINITY;
    const last = (t.pending ?? t.state)?.lastSlot ?? 0;
    return Math.max(last, spec.createdAt, spec.resumedAt ?? 0);
  }

  /**
   * A step: writes what an earlier step decided but could not record, then fires every due slot.
   * Throws (and the step is repeated) if a write fails; nothing is decided twice meanwhile.
   */
  async fireDue(now: number): Promise<void> {
    const tasks: TaskSpec[] = [];
    const decided: Array<{ t: Tracked; state: ScheduleState }> = [];
    const owed: Tracked[] = [];
    for (const t of this.tracked.values()) {
      if (t.pending) {
        owed.push(t);
        continue;
      }
      if (t.due === undefined || t.due > now || !t.spec) {
        // Nothing was due at this look: the next slot comes due while this term runs.
        t.missedOnNextLook = false;
        continue;
      }
      const state = this.decide(t, t.spec, now, tasks);
      if (state) decided.push({ t, state });
      else t.due = nextSlot(t.spec, this.fromOf(t));
    }
    if (tasks.length > 0) {
      await this.intake.writeTasks(tasks);
      for (const task of tasks) this.term.log("info", "schedule fired", { task: task.id });
    }
    for (const { t, state } of decided) {
      t.pending = state;
      owed.push(t);
    }
    if (owed.length > 0) await Promise.all(owed.map((t) => this.writeFirings(t)));
    this.arm();
  }

  /** The slots of `t` due by `now`: which fire (their tasks go to `tasks`), which are skipped. */
  private decide(t: Tracked, spec: ScheduleSpec, now: number, tasks: TaskSpec[]): ScheduleState | undefined {
    const { book, log } = this.term;
    const from = this.fromOf(t);
    const bound = spec.catchUpMax ?? DEFAULT_CATCH_UP_MAX;
    const missed = t.missedOnNextLook;
    let slots: number[];
    let newest: number | undefined;
    if (missed && spec.catchUp !== "all") {
      newest = slotsBetween(spec, from, now, 1)[0];
      slots = spec.catchUp === "latest" && newest !== undefined ? [newest] : [];
    } else {
      slots = slotsBetween(spec, from, now, bound);
      newest = slots[slots.length - 1];
    }
    if (newest === undefined) return undefined;
    const recent: Firing[] = [...(t.state?.recent ?? [])];
    if (slots.length === 0) recent.push({ slot: newest, skipped: "catch-up" });
    let running = lastTask(recent);
    for (const slot of slots) {
      const id = firingTaskId(t.name, slot);
      if (book.isKnown(id)) {
        // Fired by an earlier term whose firings write did not land: recorded, not fired again.
        recent.push({ slot, task: id });
        running = id;
        continue;
      }
      if (spec.overlap === "skip" && running !== undefined && book.tasks.has(running)) {
        recent.push({ slot, skipped: "overlap" });
        log("info", "schedule slot skipped: its previous firing still runs", {
          schedule: t.name,
          slot,
          running,
        });
        continue;
      }
      tasks.push({ ...spec.task, id });
      recent.push({ slot, task: id });
      running = id;
    }
    if (missed) {
      log("info", "schedule slots came due while no leader ran: catch-up applies", {
        schedule: t.name,
        catchUp: spec.catchUp,
        fired: slots.length,
        through: newest,
      });
    }
    return {
      v: 1,
      epoch: this.term.epoch,
      createdAt: spec.createdAt,
      lastSlot: newest,
      recent: recent.slice(-RECENT_FIRINGS),
    };
  }

  /**
   * Writes `t.pending` to `R/firings/<name>` under the version read. A refused write is judged from
   * the node: a newer epoch ends the term; our own write (whose reply was lost) counts as done;
   * anything else (another client's write) is written over under the version just read.
   */
  private async writeFirings(t: Tracked): Promise<void> {
    const { term } = this;
    const state = t.pending;
    if (!state) return;
    const path = term.layout.firing(t.name);
    const data = encodeScheduleState(state);
    term.guard();
    term.counters.writes += 1;
    try {
      if (t.stateVersion === undefined) {
        await term.client.create(path, data, "persistent");
        t.stateVersion = 0;
      } else {
        t.stateVersion = (await term.client.set(path, data, t.stateVersion)).version;
      }
    } catch (err) {
      if (!(errors.isBadVersion(err) || errors.isNodeExists(err) || errors.isNoNode(err))) throw err;
      const got = await getOrNull(term.client, path);
      const found = got ? decodeScheduleState(got.data) : undefined;
      if (found?.ok && found.value.epoch > term.epoch) {
        throw new NotLeaderError(`firings of schedule ${t.name} were written by epoch ${found.value.epoch}`);
      }
      const ours = found?.ok && found.value.epoch === term.epoch && found.value.lastSlot === state.lastSlot;
      if (!ours) {
        term.log("warn", "firings node changed by another client; writing it again", { schedule: t.name });
        term.guard();
        if (got) t.stateVersion = (await term.client.set(path, data, got.stat.version)).version;
        else {
          await term.client.create(path, data, "persistent");
          t.stateVersion = 0;
        }
      } else if (got) t.stateVersion = got.stat.version;
    }
    if (t.pending === state) t.pending = undefined;
    t.state = state;
    t.missedOnNextLook = false;
    t.due = t.spec && !t.spec.paused ? nextSlot(t.spec, this.fromOf(t)) : undefined;
  }

  /** A step is asked for at the earliest due slot. */
  private arm(): void {
    let at = Number.POSITIVE_INFINITY;
    for (const t of this.tracked.values()) if (t.due !== undefined && t.due < at) at = t.due;
    if (at === this.timerAt && this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (!Number.isFinite(at) || this.term.isStopped()) return;
    // Timers may fire a little early: the step then finds nothing due and arms again.
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.term.kick();
      },
      Math.min(Math.max(0, at - Date.now()) + 1, 2 ** 31 - 1),
    );
  }

  /** Deletes the firings node of a schedule that is gone (clean-up only; a leftover is harmless). */
  private async deleteFirings(name: string, version = -1): Promise<void> {
    const { term } = this;
    try {
      term.guard();
      await term.client.delete(term.layout.firing(name), version);
    } catch (err) {
      if (errors.isNoNode(err) || errors.isBadVersion(err) || err instanceof NotLeaderError) return;
      term.log("warn", "could not delete a firings node", { schedule: name, error: String(err) });
    }
  }
}

/** The newest firing's task id among `recent`. */
function lastTask(recent: readonly Firing[]): string | undefined {
  for (let i = recent.length - 1; i >= 0; i--) {
    const task = recent[i]?.task;
    if (task !== undefined) return task;
  }
  return undefined;
}
