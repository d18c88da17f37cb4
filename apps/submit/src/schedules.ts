import { errors, markErrorClass, type ZkClient, ZkgridError } from "@zkgrid/core";
import type {
  CatchUpPolicy,
  GridLayout,
  OverlapPolicy,
  ScheduleSpec,
  ScheduleState,
  ScheduleTask,
} from "@zkgrid/protocol";
import {
  checkScheduleSpec,
  decodeScheduleSpec,
  decodeScheduleState,
  encodeScheduleSpec,
  nextSlot,
  parseDuration,
  scheduleNameProblem,
} from "@zkgrid/protocol";

/** What `ScheduleClient.add` takes: when (cron with a time zone, or an interval), what, and the policies. */
export interface ScheduleOptions {
  /** A cron expression: 5 fields, or 6 with seconds first (`* * * * * *` is every second). */
  cron?: string;
  /** The IANA time zone `cron` is read in (default UTC). */
  tz?: string;
  /** A fixed interval: milliseconds, or text such as "30s"; slots fall on its multiples since the epoch. */
  every?: number | string;
  /** The task each firing runs (no id: each firing's id is `<name>.<slot>`). */
  task: ScheduleTask;
  /** Slots that came due while no leader ran: `skip` them, run the `latest`, or run `all` (default latest). */
  catchUp?: CatchUpPolicy;
  /** With `catchUp: "all"`: at most this many missed slots fire (default 10). */
  catchUpMax?: number;
  /** `skip`: no firing while the previous one is unfinished (default allow). */
  overlap?: OverlapPolicy;
  /** Add it paused. */
  paused?: boolean;
}

/** A schedule as stored, with the leader's record of it. */
export interface ScheduleView {
  name: string;
  spec: ScheduleSpec;
  /** The leader's record: last decided slot and recent firings; undefined before its first slot. */
  state: ScheduleState | undefined;
  /** The next slot the leader will look at, unless paused. */
  next: number | undefined;
}

/** A schedule name or option the protocol refuses: nothing was written. */
export class InvalidScheduleError extends ZkgridError {
  static {
    markErrorClass(InvalidScheduleError, "@zkgrid/submit/InvalidScheduleError");
  }
  override readonly name = "InvalidScheduleError";
  declare readonly code: "INVALID_SCHEDULE";
  constructor(
    /** The option at fault, e.g. `cron`, `tz`, `task.timeoutMs`, or `name`. */
    readonly field: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(field ? `${field}: ${problem}` : problem, "INVALID_SCHEDULE", options);
  }
}

/** `add` under a name that is taken. */
export class ScheduleExistsError extends ZkgridError {
  static {
    markErrorClass(ScheduleExistsError, "@zkgrid/submit/ScheduleExistsError");
  }
  override readonly name = "ScheduleExistsError";
  declare readonly code: "SCHEDULE_EXISTS";
  constructor(readonly schedule: string) {
    super(`a schedule named ${JSON.stringify(schedule)} exists already (remove it first)`, "SCHEDULE_EXISTS");
  }
}

/** No schedule by that name. */
export class ScheduleNotFoundError extends ZkgridError {
  static {
    markErrorClass(ScheduleNotFoundError, "@zkgrid/submit/ScheduleNotFoundError");
  }
  override readonly name = "ScheduleNotFoundError";
  declare readonly code: "SCHEDULE_NOT_FOUND";
  constructor(readonly schedule: string) {
    super(`no schedule named ${JSON.stringify(schedule)}`, "SCHEDULE_NOT_FOUND");
  }
}

/**
 * The grid's recurring schedules (`grid.schedules`): each is a node under `R/schedules` that the
 * leader follows; it fires each slot as the task `<name>.<slot>`, once (docs/protocol.md, "Schedules").
 */
export class ScheduleClient {
  constructor(
    private readonly zk: ZkClient,
    private readonly layout: GridLayout,
    private readonly by?: string,
  ) {}

  /** Checks every option (InvalidScheduleError, nothing written), then creates the schedule. */
  async add(name: string, options: ScheduleOptions): Promise<ScheduleSpec> {
    const spec = buildScheduleSpec(name, options, Date.now(), this.by);
    await this.zk.ensurePath(this.layout.schedules);
    try {
      await this.zk.create(this.layout.schedule(name), encodeScheduleSpec(spec), "persistent");
    } catch (err) {
      if (errors.isNodeExists(err)) throw new ScheduleExistsError(name);
      throw err;
    }
    return spec;
  }

  /** Every schedule, by name; a node that does not decode is left out. */
  async list(): Promise<ScheduleView[]> {
    let names: string[];
    try {
      names = await this.zk.getChildren(this.layout.schedules);
    } catch (err) {
      if (errors.isNoNode(err)) return [];
      throw err;
    }
    const views = await Promise.all(
      names.filter((n) => scheduleNameProblem(n) === undefined).map((n) => this.get(n)),
    );
    return views.filter((v): v is ScheduleView => v !== undefined).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** One schedule, or undefined if there is none (or its node does not decode). */
  async get(name: string): Promise<ScheduleView | undefined> {
    checkName(name);
    const got = await this.#read(this.layout.schedule(name));
    if (!got) return undefined;
    const decoded = decodeScheduleSpec(got.data);
    if (!decoded.ok) return undefined;
    const spec = decoded.value;
    const firings = await this.#read(this.layout.firing(name));
    const state = firings ? decodeScheduleState(firings.data) : undefined;
    const own = state?.ok && state.value.createdAt === spec.createdAt ? state.value : undefined;
    const from = Math.max(own?.lastSlot ?? 0, spec.createdAt, spec.resumedAt ?? 0, Date.now());
    return { name, spec, state: own, next: spec.paused ? undefined : nextSlot(spec, from) };
  }

  /** Removes a schedule; resolves false if there was none. Its firings already made keep running. */
  async remove(name: string): Promise<boolean> {
    checkName(name);
    try {
      await this.zk.delete(this.layout.schedule(name));
      return true;
    } catch (err) {
      if (errors.isNoNode(err)) return false;
      throw err;
    }
  }

  /** No slot fires while paused. Throws ScheduleNotFoundError. */
  pause(name: string): Promise<ScheduleSpec> {
    return this.#update(name, (spec) => ({ ...spec, paused: true }));
  }

  /** Fires again from the next slot on: the slots that came due while paused are skipped. */
  resume(name: string): Promise<ScheduleSpec> {
    return this.#update(name, (spec) =>
      spec.paused ? { ...spec, paused: false, resumedAt: Math.max(Date.now(), spec.createdAt) } : spec,
    );
  }

  /** Read, change, write under the version read; again if someone wrote in between. */
  async #update(name: string, change: (spec: ScheduleSpec) => ScheduleSpec): Promise<ScheduleSpec> {
    checkName(name);
    const path = this.layout.schedule(name);
    for (;;) {
      const got = await this.#read(path);
      if (!got) throw new ScheduleNotFoundError(name);
      const decoded = decodeScheduleSpec(got.data);
      if (!decoded.ok)
        throw new InvalidScheduleError("", `schedule ${name} is unreadable: ${decoded.error.message}`);
      const next = change(decoded.value);
      if (next === decoded.value) return next;
      try {
        await this.zk.set(path, encodeScheduleSpec(next), got.stat.version);
        return next;
      } catch (err) {
        if (errors.isNoNode(err)) throw new ScheduleNotFoundError(name);
        if (!errors.isBadVersion(err)) throw err;
      }
    }
  }

  async #read(path: string) {
    try {
      return await this.zk.get(path);
    } catch (err) {
      if (errors.isNoNode(err)) return undefined;
      throw err;
    }
  }
}

function checkName(name: string): void {
  const problem = scheduleNameProblem(name);
  if (problem !== undefined)
    throw new InvalidScheduleError("name", `invalid schedule name ${JSON.stringify(name)}: ${problem}`);
}

/** The spec `add` writes; throws InvalidScheduleError naming the option at fault. */
export function buildScheduleSpec(
  name: string,
  options: ScheduleOptions,
  now: number,
  by?: string,
): ScheduleSpec {
  checkName(name);
  if (typeof options !== "object" || options === null) throw new InvalidScheduleError("", "expected options");
  let everyMs: number | undefined;
  if (options.every !== undefined) {
    everyMs = typeof options.every === "string" ? parseInterval(options.every) : options.every;
    if (everyMs === undefined) {
      throw new InvalidScheduleError(
        "every",
        `expected a duration such as 30s, 5m or 1h, got ${JSON.stringify(options.every)}`,
      );
    }
  }
  const spec: ScheduleSpec = {
    v: 1,
    ...(options.cron === undefined ? {} : { cron: options.cron }),
    ...(options.tz === undefined ? {} : { tz: options.tz }),
    ...(everyMs === undefined ? {} : { everyMs }),
    task: options.task,
    catchUp: options.catchUp ?? "latest",
    ...(options.catchUpMax === undefined ? {} : { catchUpMax: options.catchUpMax }),
    overlap: options.overlap ?? "allow",
    paused: options.paused ?? false,
    createdAt: now,
    ...(by === undefined ? {} : { by: by.slice(0, 256) }),
  };
  const checked = checkScheduleSpec(spec);
  if (!checked.ok) {
    const field = checked.error.path === "everyMs" ? "every" : checked.error.path;
    throw new InvalidScheduleError(field, checked.error.problem, { cause: checked.error });
  }
  return checked.value;
}

/** An interval as the commands write durations (500ms, 30s, 2m), or in hours (1h, 1.5h). */
export function parseInterval(text: string): number | undefined {
  const hours = /^(\d+(?:\.\d+)?)h$/.exec(text.trim());
  return hours ? Math.round(Number(hours[1]) * 3_600_000) : parseDuration(text);
}
