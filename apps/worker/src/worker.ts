import { availableParallelism, hostname } from "node:os";
import { join, resolve } from "node:path";
import {
  type Acl,
  connect,
  isClosed,
  isNodeExists,
  isNoNode,
  isSessionExpired,
  type ZkClient,
} from "@zkgrid/core";
import {
  type AssignedTask,
  assertWorkerName,
  decodeInboxNode,
  encodeTaskStatus,
  isFinalState,
  statusFromUpdate,
  gridLayout,
  headBytes,
  isValidLabel,
  labelProblem,
  MAX_CAPACITY,
  MAX_MESSAGE_BYTES,
  type StatusUpdate,
  type WorkerRegistration,
} from "@zkgrid/protocol";
import packageJson from "../package.json" with { type: "json" };
import { type ReadAssignment, readAssignment } from "./assignment.js";
import { answerDirect, type DirectTask } from "./inbox.js";
import { WorkerOptionError, WorkerStoppedError } from "./errors.js";
import type { HandlerMap } from "./handlers.js";
import { LocalLock } from "./lock.js";
import { createStderrLogger, type Logger } from "./logger.js";
import { claimWorkerName, releaseWorkerName } from "./registration.js";
import { TaskLauncher } from "./launcher.js";
import { SessionReporter } from "./reporter.js";
import { RunningNotices } from "./running-notices.js";
import { TaskRun } from "./task-run.js";

/** The version of this package, as a worker registers it. */
export const VERSION: string = packageJson.version;

export const DEFAULT_CONNECT_STRING = "127.0.0.1:2181";
export const DEFAULT_ROOT = "/zkgrid";
export const DEFAULT_GRACE_MS = 30_000;
export const DEFAULT_KILL_GRACE_MS = 5_000;
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

export interface WorkerOptions {
  /** The worker's name: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`. Output goes to `<cwd>/<name>/<task-id>/`. */
  name: string;
  /** ZooKeeper servers, default "127.0.0.1:2181". Ignored when `client` is given. */
  connectString?: string;
  /** The grid's root path, default "/zkgrid". Ignored when `client` is given. */
  root?: string;
  /** Ignored when `client` is given. Default 10 000. */
  sessionTimeoutMs?: number;
  /** Digest credentials "user:password". Ignored when `client` is given. */
  auth?: string | string[];
  /** More ACL entries for the nodes the worker creates, besides ALL for `auth`. Ignored with `client`. */
  acl?: readonly Acl[];
  /**
   * Use this client (connected with the grid's root as its `root`) instead of connecting.
   * The worker does not close it.
   */
  client?: ZkClient;
  /** How many tasks run at once; default the number of CPUs. */
  concurrency?: number;
  /**
   * How many tasks the worker holds beyond `concurrency`, ready to start the moment a slot frees up;
   * default 0. The leader then hears of finished tasks in fewer, larger reports, which suits many short
   * tasks. A held task waits behind the running ones even when another worker is idle.
   */
  prefetch?: number;
  /** Labels a task may require. */
  labels?: string[];
  /** The working directory; default `process.cwd()`. */
  cwd?: string;
  /** In-process handlers, by the name a task's `handler` gives. */
  handlers?: HandlerMap;
  /** How long `stop()` lets running tasks finish by default; default 30 000. */
  graceMs?: number;
  /** Between SIGTERM and SIGKILL when a task's process group is killed; default 5 000. */
  killGraceMs?: number;
  /** How long a name held by another session is waited for; default the session timeout. */
  nameWaitMs?: number;
  /** Default: one line per event on stderr. */
  logger?: Logger;
  /** Aborting it stops the worker: while starting, startWorker() rejects with WorkerStoppedError. */
  signal?: AbortSignal;
}

/** The worker's lifecycle: INITIALIZED → RUNNING → STOPPING → DRAINING → STOPPED, or FAILED. */
export type WorkerState = "INITIALIZED" | "RUNNING" | "STOPPING" | "DRAINING" | "STOPPED" | "FAILED";

export type WorkerEvent =
  | { type: "state"; state: WorkerState; error?: Error }
  /** Registered on a new session, with its report dir (relative to the grid's root). */
  | { type: "registered"; sessionId: string; reportDir: string }
  /** That session's tasks were killed and their results dropped: it expired, or the leader fenced it. */
  | { type: "session-ended"; sessionId: string; reason: "expired" | "fenced" | "closed" }
  /** An assignment was read and acted on (possibly by doing nothing: another session, fenced, stopping). */
  | { type: "assignment"; sessionId: string; epoch: number; tasks: readonly AssignedTask[] }
  /** A status update the worker reports for that session. */
  | { type: "update"; sessionId: string; update: StatusUpdate };

export interface StopOptions {
  /** How long running tasks may still run before they are killed and returned; default `graceMs`. */
  graceMs?: number;
}

/** A running worker, made by `startWorker()`. */
export interface Worker {
  readonly name: string;
  readonly state: WorkerState;
  /** The session the worker is registered on, if any. */
  readonly sessionId: string | undefined;
  /** The ZooKeeper client. */
  readonly client: ZkClient;
  /** The error that made the worker FAILED. */
  readonly error: Error | undefined;
  /** How many tasks are running now. */
  readonly running: number;
  /** Calls `listener` for each event; returns an unsubscribe function. */
  on(listener: (event: WorkerEvent) => void): () => void;
  /** Events from now on; ends when the worker is STOPPED or FAILED. */
  events(options?: { signal?: AbortSignal }): AsyncIterableIterator<WorkerEvent>;
  /**
   * Takes nothing new, lets running tasks finish within the grace period, kills the rest, reports every
   * task assigned but not finished as `returned`, waits for the report to be written, unregisters and
   * closes. Calling it again with a shorter grace shortens the wait.
   */
  stop(options?: StopOptions): Promise<void>;
  /** Resolves when the worker is STOPPED or FAILED. */
  closed(): Promise<void>;
}

interface Session {
  id: string;
  reportDir: string;
  /** `R/inbox/<worker>@<session>`: where submitters put direct tasks for this session. */
  inboxDir: string;
  /** Names in the inbox already read (taken, declined or left to the leader). */
  inboxSeen: Set<string>;
  /** Aborts when the session ends. */
  signal: AbortSignal;
  reporter: SessionReporter;
  /** "fenced": the leader gave this session up; it stays registered but takes no tasks. */
  status: "active" | "fenced" | "ended";
}

interface Tracked {
  session: string;
  run: TaskRun | undefined;
  done: boolean;
  /** The final update published, kept while the task is assigned in case it must be reported again. */
  update?: StatusUpdate;
  /** Set for a task taken from the session's inbox: its answer goes over its node, not into a report. */
  direct?: DirectTask & { task: AssignedTask };
}

const taskKey = (t: { id: string; attempt: number }) => `${t.id}#${t.attempt}`;

/** An integer option of at least `min` (1 or 0), or `fallback` when it is not given. */
function intOption(name: string, value: number | undefined, fallback: number, min: 0 | 1 = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min)
    throw new WorkerOptionError(name, min === 1 ? "must be a positive integer" : "must be an integer ≥ 0");
  return value;
}

function duration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new WorkerOptionError(name, "must be a duration ≥ 0 in ms");
  return value;
}

class GridWorker implements Worker {
  readonly name: string;
  state: WorkerState = "INITIALIZED";
  error: Error | undefined;

  private zk: ZkClient | undefined;
  private readonly ownsClient: boolean;
  private readonly baseDir: string;
  private readonly concurrency: number;
  private readonly prefetch: number;
  /** Held tasks below which finished ones are reported without delay. */
  private readonly lowWater: number;
  /** Tasks of the current assignment waiting for a free slot, as the last reconcile counted them. */
  private backlog = 0;
  private readonly labels: string[];
  private readonly graceMs: number;
  private readonly killGraceMs: number;
  private readonly sessionTimeoutMs: number;
  private readonly nameWaitMs: number;
  private readonly handlers: HandlerMap;
  private readonly log: Logger;
  private readonly layout = gridLayout("/");
  private readonly startedAt = Date.now();

  private session: Session | undefined;
  private readonly tracked = new Map<string, Tracked>();
  private active = 0;
  private assignment: ReadAssignment | undefined;
  private maxEpoch = -1;
  private readonly loggedProblems = new Set<string>();
  private readonly launcher: TaskLauncher;
  private readonly runningNotices = new RunningNotices();

  private lock: LocalLock | undefined;
  /** When the freeze detector last ran; a long gap means the process was stopped (SIGSTOP, GC, VM). */
  private lastTick = Date.now();
  /** A gap longer than this between ticks means the process was frozen. */
  private readonly freezeGapMs: number;
  /** Set by a tick that saw such a gap, until a reconcile has checked the session. */
  private frozen = false;
  private tickTimer: NodeJS.Timeout | undefined;
  /** Set while a round trip checks that the session survived a freeze: nothing starts meanwhile. */
  private confirming: Promise<void> | undefined;
  /** Aborts when the worker stops or fails: ends the session loop and the assignment watch. */
  private readonly lifetime = new AbortController();
  private readonly listeners = new Set<(event: WorkerEvent) => void>();
  private idleWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;
  /** The first error passed to fail(). */
  private failure: Error | undefined;
  private failing: Promise<void> | undefined;
  private stopDeadline = Number.POSITIVE_INFINITY;
  private stopTimer: NodeJS.Timeout | undefined;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  private firstRegistration!: { resolve: () => void; reject: (error: Error) => void };

  constructor(private readonly options: WorkerOptions) {
    assertWorkerName(options.name);
    this.name = options.name;
    this.ownsClient = options.client === undefined;
    this.zk = options.client;
    this.baseDir = resolve(options.cwd ?? process.cwd());
    this.concurrency = intOption("concurrency", options.concurrency, availableParallelism());
    this.prefetch = intOption("prefetch", options.prefetch, 0, 0);
    if (this.concurrency + this.prefetch > MAX_CAPACITY) {
      const name = options.prefetch === undefined ? "concurrency" : "prefetch";
      throw new WorkerOptionError(name, `concurrency + prefetch must be at most ${MAX_CAPACITY}`);
    }
    this.lowWater = Math.min(this.prefetch / 2, this.concurrency);
    this.labels = [...new Set(options.labels ?? [])];
    for (const label of this.labels) {
      if (!isValidLabel(label)) throw new WorkerOptionError("labels", `${label}: ${labelProblem(label)}`);
    }
    this.graceMs = duration("graceMs", options.graceMs, DEFAULT_GRACE_MS);
    this.killGraceMs = duration("killGraceMs", options.killGraceMs, DEFAULT_KILL_GRACE_MS);
    this.sessionTimeoutMs = intOption(
      "sessionTimeoutMs",
      options.sessionTimeoutMs,
      DEFAULT_SESSION_TIMEOUT_MS,
    );
    // ZooKeeper ends a dead holder's session up to a tick after its timeout, counted from when it last
    // heard from it: waiting only the timeout can give up a moment before the name is free.
    this.nameWaitMs = duration("nameWaitMs", options.nameWaitMs, 2 * this.sessionTimeoutMs);
    this.freezeGapMs = this.sessionTimeoutMs / 3;
    this.handlers = options.handlers ?? {};
    const logger = options.logger ?? createStderrLogger();
    this.log = (level, msg, fields) => logger(level, msg, { worker: this.name, ...fields });
    this.launcher = new TaskLauncher({ killGraceMs: this.killGraceMs, label: this.name, logger: this.log });
    this.closedPromise = new Promise((resolveClosed) => {
      this.resolveClosed = resolveClosed;
    });
  }

  get client(): ZkClient {
    if (this.zk === undefined) throw new WorkerStoppedError("the worker has no client yet");
    return this.zk;
  }

  get sessionId(): string | undefined {
    return this.session?.status === "ended" ? undefined : this.session?.id;
  }

  get running(): number {
    return this.active;
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async start(): Promise<void> {
    const registered = new Promise<void>((resolveFirst, rejectFirst) => {
      this.firstRegistration = { resolve: resolveFirst, reject: rejectFirst };
    });
    registered.catch(() => {}); // also rejected when nobody awaits it yet
    const onAbort = () => {
      if (this.state === "INITIALIZED")
        void this.fail(new WorkerStoppedError("the worker was stopped while starting"));
      else void this.stop();
    };
    if (this.options.signal?.aborted) onAbort();
    this.options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.lock = await LocalLock.acquire(join(this.baseDir, this.name, ".lock"));
      if (this.zk === undefined && !this.lifetime.signal.aborted) {
        this.zk = await connect({
          connectString: this.options.connectString ?? DEFAULT_CONNECT_STRING,
          root: this.options.root ?? DEFAULT_ROOT,
          sessionTimeoutMs: this.sessionTimeoutMs,
          logger: this.log,
          signal: this.lifetime.signal,
          ...(this.options.auth === undefined ? {} : { auth: this.options.auth }),
          ...(this.options.acl === undefined ? {} : { acl: this.options.acl }),
        });
      }
      if (this.lifetime.signal.aborted) throw new WorkerStoppedError();
      const client = this.client;
      void this.watchAssignment(client);
      client
        .keepRunning((ctx) => this.joinSession(ctx.sessionId, ctx.signal), { signal: this.lifetime.signal })
        .catch((error: unknown) => {
          if (!this.lifetime.signal.aborted) void this.fail(asError(error));
        });
      await registered;
    } catch (error) {
      await this.fail(asError(error));
      throw this.failure ?? error;
    }
    this.setState("RUNNING");
    this.tickTimer = setInterval(() => {
      // After a stop (SIGSTOP, a VM pause) timers run before I/O callbacks: this tick, not the
      // task that ended meanwhile, is the first to see the gap, so it must remember it.
      const now = Date.now();
      if (now - this.lastTick > this.freezeGapMs) this.frozen = true;
      this.lastTick = now;
    }, 250);
    this.tickTimer.unref();
    this.reconcile();
  }

  stop(options: StopOptions = {}): Promise<void> {
    if (this.failing !== undefined) return this.closedPromise;
    const graceMs = duration("graceMs", options.graceMs, this.graceMs);
    const deadline = Date.now() + graceMs;
    if (deadline < this.stopDeadline) {
      this.stopDeadline = deadline;
      clearTimeout(this.stopTimer);
      this.stopTimer = setTimeout(() => this.killAll("stop"), graceMs);
    }
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  closed(): Promise<void> {
    return this.closedPromise;
  }

  private async shutdown(): Promise<void> {
    this.setState("STOPPING");
    this.log("info", `stopping; running tasks get until ${new Date(this.stopDeadline).toISOString()}`);
    this.reconcile(); // hands back what has not started
    this.setState("DRAINING");
    await this.allRunsDone();
    clearTimeout(this.stopTimer);
    const session = this.session;
    if (session !== undefined && session.status !== "ended" && this.zk !== undefined) {
      // Answers first: one the node refused is reported instead.
      await Promise.all(this.answers);
      await session.reporter.flushed();
      // Only now that the reports are written: the leader fences the session once this node is gone.
      await releaseWorkerName(this.zk, this.layout.worker(this.name), session.id).catch((error: unknown) =>
        this.log("warn", `could not delete the registration: ${asError(error).message}`),
      );
    }
    this.lifetime.abort();
    await this.release();
    this.setState("STOPPED");
    this.resolveClosed();
  }

  /** Ends the worker after an error (or a stop while starting); idempotent. */
  private fail(error: Error): Promise<void> {
    if (this.stopping !== undefined) {
      // Already on its way out: finish the stop rather than abandon the reports it is writing.
      this.log("error", `error while stopping: ${error.message}`);
      return this.stopping;
    }
    if (this.failure === undefined) {
      this.failure = error;
      this.failing = this.abandon(error);
    }
    return this.failing ?? Promise.resolve();
  }

  private async abandon(error: Error): Promise<void> {
    const stopped = error instanceof WorkerStoppedError;
    if (!stopped) {
      this.error = error;
      this.log("error", `failed: ${error.message}`);
    }
    this.firstRegistration.reject(error);
    const session = this.session;
    const registered = session !== undefined && session.status !== "ended";
    if (session !== undefined) this.endSession(session, "closed");
    this.lifetime.abort();
    await this.allRunsDone();
    if (registered && this.zk !== undefined) {
      await releaseWorkerName(this.zk, this.layout.worker(this.name), session.id).catch(() => {});
    }
    await this.release();
    this.setState(stopped ? "STOPPED" : "FAILED", this.error);
    this.resolveClosed();
  }

  /**
   * True while the worker must not start tasks because it may have been frozen past its session
   * timeout without hearing of it yet: the first reconcile after a long gap asks ZooKeeper whether
   * its registration still belongs to its session, and ends the session if not.
   */
  private heldAfterFreeze(session: Session): boolean {
    if (this.confirming !== undefined) return true;
    if (!this.frozen && Date.now() - this.lastTick <= this.freezeGapMs) return false;
    this.frozen = false;
    this.lastTick = Date.now();
    const client = this.client;
    this.confirming = client
      .exists(this.layout.worker(this.name))
      .then(
        (stat) => {
          if (stat?.ephemeralOwner !== session.id) this.endSession(session, "expired");
        },
        () => {
          // No answer: the connection events decide what happened to the session.
        },
      )
      .finally(() => {
        this.confirming = undefined;
        this.reconcile();
      });
    return true;
  }

  private async release(): Promise<void> {
    clearInterval(this.tickTimer);
    await this.launcher.close();
    if (this.ownsClient) await this.zk?.close();
    await this.lock?.release();
  }

  private setState(state: WorkerState, error?: Error): void {
    this.state = state;
    this.emit(error === undefined ? { type: "state", state } : { type: "state", state, error });
  }

  // ---- sessions ------------------------------------------------------------------------------

  /** Runs once per ZooKeeper session (core's keepRunning): registers, then serves it until it ends. */
  private async joinSession(sessionId: string, signal: AbortSignal): Promise<"completed" | undefined> {
    if (this.lifetime.signal.aborted || this.stopping !== undefined) return "completed";
    const client = this.client;
    const reportDir = this.layout.reportDir(this.name, sessionId);
    const inboxDir = this.layout.inboxDir(this.name, sessionId);
    const registration: WorkerRegistration = {
      v: 1,
      name: this.name,
      host: hostname(),
      pid: process.pid,
      capacity: this.concurrency + this.prefetch,
      labels: this.labels,
      version: VERSION,
      startedAt: this.startedAt,
      session: sessionId,
    };
    try {
      await claimWorkerName({
        client,
        path: this.layout.worker(this.name),
        reportDir,
        inboxDir,
        registration,
        waitMs: this.nameWaitMs,
        signal,
        logger: this.log,
      });
    } catch (error) {
      if (signal.aborted) return; // the session ended meanwhile: the next one tries again
      void this.fail(asError(error));
      return "completed";
    }
    if (signal.aborted) return;
    const session = {
      id: sessionId,
      reportDir,
      inboxDir,
      inboxSeen: new Set(),
      signal,
      status: "active",
    } as unknown as Session;
    session.reporter = this.openReporter(session);
    this.session = session;
    void this.watchInbox(session);
    signal.addEventListener(
      "abort",
      () => this.endSession(session, this.lifetime.signal.aborted ? "closed" : "expired"),
      { once: true },
    );
    this.log("info", `registered on session ${sessionId} (capacity ${registration.capacity})`, {
      session: sessionId,
    });
    this.emit({ type: "registered", sessionId, reportDir });
    if (this.state === "INITIALIZED") this.firstRegistration.resolve();
    else this.reconcile();
  }

  private openReporter(session: Session): SessionReporter {
    return new SessionReporter({
      client: this.client,
      dir: session.reportDir,
      worker: this.name,
      session: session.id,
      logger: this.log,
      signal: session.signal,
      onFenced: () => void this.recoverReportDir(session),
      // With tasks waiting to start, the leader need not hear of finished ones until the held tasks
      // are down to half, or to one round of `concurrency`: it then refills many slots with one
      // assignment, and the rest keep the slots busy until that assignment arrives.
      hold: () => this.prefetch > 0 && this.state === "RUNNING" && this.backlog > this.lowWater,
      // Every report written while stopping says so: the leader hands this session nothing more.
      draining: () => this.state === "STOPPING" || this.state === "DRAINING",
    });
  }

  /**
   * A report create found the session's report dir gone. The leader deletes it only when it fences a
   * session whose registration is gone, so while this session still owns the registration another
   * client deleted it: the dir is made again and every final status the leader may not have collected
   * (its task is still assigned) is reported again. Otherwise the session counts as fenced.
   */
  private async recoverReportDir(session: Session): Promise<void> {
    // Bound to the session: if it ends meanwhile, nothing is made for it on the next one.
    const client = this.client.boundTo(session.id);
    let owned: boolean | undefined;
    while (owned === undefined && session.status === "active" && !session.signal.aborted) {
      owned = await client.exists(this.layout.worker(this.name)).then(
        (stat) => stat?.ephemeralOwner === session.id,
        () => undefined, // no answer: ask again, unless the session ends meanwhile
      );
      if (owned === undefined) await new Promise((wake) => setTimeout(wake, 500));
    }
    if (session.status !== "active" || session.signal.aborted) return;
    if (owned) {
      try {
        await client.create(session.reportDir, undefined, "persistent");
      } catch (error) {
        if (!isNodeExists(error)) owned = false;
      }
    }
    if (!owned) {
      this.endSession(session, "fenced");
      return;
    }
    if (session.status !== "active" || session.signal.aborted) return;
    session.reporter = this.openReporter(session);
    let again = 0;
    for (const entry of this.tracked.values()) {
      if (entry.session !== session.id || entry.update === undefined) continue;
      session.reporter.report(entry.update);
      again++;
    }
    this.log(
      "warn",
      `report dir ${session.reportDir} was deleted while session ${session.id} lives: made it again and reported ${again} final statuses again`,
      { session: session.id },
    );
    this.reconcile();
  }

  /**
   * The session is over for this worker (expired, fenced, or closing): its running tasks are killed and
   * their results dropped, since the leader hands them out again.
   */
  private endSession(session: Session, reason: "expired" | "fenced" | "closed"): void {
    if (session.status === "ended" || (session.status === "fenced" && reason === "fenced")) return;
    session.status = reason === "fenced" ? "fenced" : "ended";
    if (reason !== "fenced") session.reporter.close();
    let killed = 0;
    for (const [key, entry] of this.tracked) {
      if (entry.session !== session.id) continue;
      if (!entry.done && entry.run !== undefined) {
        entry.run.kill("session-lost");
        killed++;
      }
      this.tracked.delete(key);
    }
    if (reason !== "closed" || killed > 0) {
      this.log("warn", `session ${session.id} ${reason}; killed ${killed} running tasks`, {
        session: session.id,
      });
    }
    this.emit({ type: "session-ended", sessionId: session.id, reason });
  }

  // ---- assignments ---------------------------------------------------------------------------

  private async watchAssignment(client: ZkClient): Promise<void> {
    const path = this.layout.assign(this.name);
    try {
      for await (const change of client.watchData(path, { signal: this.lifetime.signal })) {
        if (change === null) continue;
        // Tasks already in the previous version of this node are not validated again.
        const known = new Map<string, AssignedTask>();
        for (const t of this.assignment?.tasks ?? []) known.set(taskKey(t), t);
        const read = readAssignment(change.data, known);
        if (!read.ok) {
          this.log("error", `ignored an assignment that cannot be read: ${read.error.message}`);
          continue;
        }
        const assignment = read.value;
        if (assignment.worker !== this.name) {
          this.log("warn", `ignored an assignment addressed to worker ${assignment.worker}`);
          continue;
        }
        if (assignment.epoch < this.maxEpoch) {
          this.log(
            "warn",
            `ignored an assignment of epoch ${assignment.epoch}; epoch ${this.maxEpoch} was seen`,
          );
          continue;
        }
        this.maxEpoch = assignment.epoch;
        for (const problem of assignment.unreportable) {
          if (this.loggedProblems.has(problem)) continue;
          this.loggedProblems.add(problem);
          this.log("error", `ignored an assigned task that cannot be reported: ${problem}`);
        }
        this.assignment = assignment;
        this.reconcile();
        this.emit({
          type: "assignment",
          sessionId: assignment.session,
          epoch: assignment.epoch,
          tasks: assignment.tasks,
        });
      }
    } catch (error) {
      if (!this.lifetime.signal.aborted) void this.fail(asError(error));
    }
  }

  /**
   * Brings what runs in line with the assignment: starts new tasks while RUNNING (up to `concurrency`),
   * hands them back while stopping, cancels running tasks that left it and forgets finished ones.
   */
  private reconcile(): void {
    const assignment = this.assignment;
    const session = this.session;
    if (assignment === undefined || session?.status !== "active" || assignment.session !== session.id) return;
    if (this.heldAfterFreeze(session)) return;
    const assigned = new Set<string>();
    for (const task of assignment.tasks) assigned.add(taskKey(task));
    for (const refused of assignment.refused) assigned.add(taskKey(refused));
    for (const [key, entry] of this.tracked) {
      if (assigned.has(key) || entry.direct !== undefined) continue;
      if (entry.done) this.tracked.delete(key);
      else if (entry.run !== undefined && !entry.run.killed) {
        entry.run.kill("cancel");
        this.log("info", "cancelled: it left the assignment", {
          task: entry.run.id,
          attempt: entry.run.attempt,
        });
      }
    }
    for (const refused of assignment.refused) {
      const key = taskKey(refused);
      if (this.tracked.has(key)) continue;
      this.tracked.set(key, { session: session.id, run: undefined, done: true });
      this.log("error", refused.error, { task: refused.id, attempt: refused.attempt });
      const now = Date.now();
      this.publish(session, {
        id: refused.id,
        attempt: refused.attempt,
        state: "failed",
        at: now,
        finishedAt: now,
        error: headBytes(refused.error, MAX_MESSAGE_BYTES),
      });
    }
    let backlog = 0;
    for (const task of assignment.tasks) {
      const key = taskKey(task);
      if (this.tracked.has(key)) continue;
      if (this.state === "RUNNING") {
        if (this.active >= this.concurrency) {
          backlog++;
          continue;
        }
        this.startTask(session, task);
      } else if (this.state === "STOPPING" || this.state === "DRAINING") {
        // By state, not `this.stopping`: stop() sets that only after shutdown()'s first reconcile.
        this.tracked.set(key, { session: session.id, run: undefined, done: true });
        this.log("info", "returned: the worker is stopping", { task: task.id, attempt: task.attempt });
        this.publish(session, { id: task.id, attempt: task.attempt, state: "returned", at: Date.now() });
      }
    }
    this.backlog = backlog;
    session.reporter.kick();
  }

  // ---- direct tasks ------------------------------------------------------------------------

  /** Answers being written; stop() waits for them as it does for reports. */
  private readonly answers = new Set<Promise<unknown>>();

  /**
   * Watches the session's inbox: a submitter may put a task there for this session to run at once,
   * without a hop through the leader. A task that cannot start at once (no free slot, labels, stopping)
   * is declined with `returned`, and the leader queues it.
   */
  private async watchInbox(session: Session): Promise<void> {
    const client = this.client.boundTo(session.id);
    // Kept while the session serves: a task put in an inbox nobody watches would wait for the session's end.
    while (!session.signal.aborted && session.status === "active") {
      try {
        for await (const change of client.watchChildren(session.inboxDir, { signal: session.signal })) {
          for (const name of change.removed) this.directGone(session, name);
          for (const name of change.added) {
            if (session.inboxSeen.has(name)) continue;
            session.inboxSeen.add(name);
            void this.readDirect(session, name);
          }
        }
        return; // the session ended, or the client closed
      } catch (error) {
        if (session.signal.aborted || session.status !== "active") return;
        this.log("warn", `inbox watch failed, watching again: ${asError(error).message}`, {
          session: session.id,
        });
        await new Promise((wake) => setTimeout(wake, 500));
      }
    }
  }

  private async readDirect(session: Session, name: string): Promise<void> {
    const path = `${session.inboxDir}/${name}`;
    let got: { data: Buffer; stat: { version: number; ctime: number } };
    try {
      got = await this.client.boundTo(session.id).get(path);
    } catch (error) {
      // Gone (cancelled, fenced) or the session ended: the leader decides. Anything else (the node's
      // ACL does not let this worker read it) leaves the task to its session's end: say so.
      if (!isNoNode(error) && !isSessionExpired(error) && !isClosed(error))
        this.log("error", `cannot read direct task ${path}: ${asError(error).message}`, {
          session: session.id,
        });
      return;
    }
    const node = decodeInboxNode(name, got.data);
    if (node.kind !== "task") return; // answered already, or not a task: the leader's to judge
    if (got.stat.version !== 0) return; // declined or answered already
    const direct: DirectTask = { path, version: got.stat.version, data: got.data };
    const task: AssignedTask = {
      id: node.task.id,
      attempt: 1,
      assignedAt: got.stat.ctime,
      submittedAt: node.submittedAt,
      spec: node.task,
    };
    const key = taskKey(task);
    if (this.tracked.has(key)) return;
    const why = this.cannotTakeDirect(session, node.task.labels);
    if (why !== undefined) {
      this.tracked.set(key, { session: session.id, run: undefined, done: true, direct: { ...direct, task } });
      this.log("info", `declined a direct task: ${why}`, { task: task.id });
      const update = { id: task.id, attempt: 1, state: "returned" as const, at: Date.now() };
      // Also reported while stopping: the report's draining flag keeps the leader from handing it back here.
      if (this.state !== "RUNNING") session.reporter.report(update);
      this.publish(session, update);
      return;
    }
    this.startTask(session, task, direct);
  }

  /** Why a direct task cannot start now, or undefined if it can. */
  private cannotTakeDirect(session: Session, labels: readonly string[] | undefined): string | undefined {
    if (this.state !== "RUNNING") return "the worker is stopping";
    if (this.session !== session || session.status !== "active") return "its session is over";
    if (labels !== undefined && !labels.every((l) => this.labels.includes(l))) return "labels not covered";
    if (this.active >= this.concurrency || this.backlog > 0) return "no free slot";
    if (this.heldAfterFreeze(session)) return "checking the session after a pause";
    return undefined;
  }

  /** A direct task's node was deleted: the leader cancelled it (or fenced the session). */
  private directGone(session: Session, name: string): void {
    session.inboxSeen.delete(name);
    const entry = this.tracked.get(taskKey({ id: name, attempt: 1 }));
    if (entry?.direct === undefined || entry.session !== session.id) return;
    if (!entry.done && entry.run !== undefined && !entry.run.killed) {
      entry.run.kill("cancel");
      this.log("info", "cancelled: its direct task node was deleted", { task: name });
    }
  }

  private answer(
    session: Session,
    direct: DirectTask,
    data: Buffer,
    id: string,
    done: (outcome: "written" | "dropped" | "refused") => void,
  ): void {
    const writing = answerDirect(this.client.boundTo(session.id), direct, data, id, this.log, session.signal)
      .catch((error: unknown): "dropped" => {
        if (!session.signal.aborted)
          this.log("warn", `could not answer a direct task: ${asError(error).message}`, { task: id });
        return "dropped";
      })
      .then(done)
      .finally(() => this.answers.delete(writing));
    this.answers.add(writing);
  }

  private reconcileScheduled = false;

  /** One reconcile per turn of the event loop, however many tasks ended in it (each is O(assignment)). */
  private scheduleReconcile(): void {
    if (this.reconcileScheduled) return;
    this.reconcileScheduled = true;
    setImmediate(() => {
      this.reconcileScheduled = false;
      this.reconcile();
    });
  }

  private startTask(session: Session, task: AssignedTask, direct?: DirectTask): void {
    const key = taskKey(task);
    const run = new TaskRun(task, {
      worker: this.name,
      session: session.id,
      baseDir: this.baseDir,
      handlers: this.handlers,
      launcher: this.launcher,
      killGraceMs: this.killGraceMs,
      logger: this.log,
      onRunning: (update) =>
        this.runningNotices.add(() => {
          if (!entry.done && !run.killed) this.publish(session, update);
        }),
    });
    const entry: Tracked =
      direct === undefined
        ? { session: session.id, run, done: false }
        : { session: session.id, run, done: false, direct: { ...direct, task } };
    this.tracked.set(key, entry);
    this.active++;
    run.result
      .catch((error: unknown): StatusUpdate => {
        const now = Date.now();
        const message = headBytes(
          `the worker failed to run it: ${asError(error).message}`,
          MAX_MESSAGE_BYTES,
        );
        return {
          id: task.id,
          attempt: task.attempt,
          state: "failed",
          at: now,
          finishedAt: now,
          error: message,
        };
      })
      .then((update) => {
        entry.done = true;
        this.active--;
        if (update !== null) this.publish(session, update);
        if (this.idleWaiters.length > 0 && this.active === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const wake of waiters) wake();
        }
        this.scheduleReconcile();
      });
  }

  private publish(session: Session, update: StatusUpdate): void {
    if (session.status !== "active") return;
    const entry = this.tracked.get(taskKey(update));
    if (entry?.direct !== undefined && entry.session === session.id) {
      // A direct task's only update is its answer: `running` is left out (the answer has startedAt).
      if (update.state === "running") return;
      entry.update = update;
      const { direct } = entry;
      if (!isFinalState(update.state) && update.startedAt !== undefined) {
        // Given back after it started (a stop's grace ran out): that used its attempt, which a decline
        // would not. The report says so; the leader then queues it and deletes its node.
        session.reporter.report(update);
        if (this.tracked.get(taskKey(update)) === entry) this.tracked.delete(taskKey(update));
        this.emit({ type: "update", sessionId: session.id, update });
        return;
      }
      // Final: the task's status, as the leader will record it. Given back before it started: the
      // task written back unchanged, which declines it.
      const data = isFinalState(update.state)
        ? encodeTaskStatus(
            statusFromUpdate(
              { ...direct.task, spec: direct.task.spec, attemptsUsed: 1, worker: this.name },
              { ...update, state: update.state },
            ),
          )
        : direct.data;
      this.answer(session, direct, data, update.id, (outcome) => {
        // Not allowed to write over the node: the leader hears of the task through a report instead.
        if (outcome === "refused" && session.status === "active") session.reporter.report(update);
        if (this.tracked.get(taskKey(update)) === entry) this.tracked.delete(taskKey(update));
      });
      this.emit({ type: "update", sessionId: session.id, update });
      return;
    }
    if (update.state !== "running" && entry?.session === session.id) entry.update = update;
    session.reporter.report(update);
    this.emit({ type: "update", sessionId: session.id, update });
  }

  private killAll(reason: "stop" | "session-lost"): void {
    for (const entry of this.tracked.values()) {
      if (!entry.done) entry.run?.kill(reason);
    }
  }

  private allRunsDone(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolveDone) => this.idleWaiters.push(resolveDone));
  }

  // ---- events --------------------------------------------------------------------------------

  on(listener: (event: WorkerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: WorkerEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log("error", `an event listener threw: ${asError(error).message}`);
      }
    }
  }

  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<WorkerEvent> {
    const queue: WorkerEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = this.state === "STOPPED" || this.state === "FAILED";
    const finish = () => {
      ended = true;
      unsubscribe();
      wake?.();
    };
    const unsubscribe = this.on((event) => {
      queue.push(event);
      if (event.type === "state" && (event.state === "STOPPED" || event.state === "FAILED")) finish();
      wake?.();
    });
    options.signal?.addEventListener("abort", finish, { once: true });
    const iterator: AsyncIterableIterator<WorkerEvent> = {
      async next() {
        while (queue.length === 0 && !ended) {
          await new Promise<void>((resolveNext) => {
            wake = resolveNext;
          });
          wake = undefined;
        }
        const event = queue.shift();
        return event === undefined ? { done: true, value: undefined } : { done: false, value: event };
      },
      async return() {
        queue.length = 0;
        finish();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Starts a worker: takes the local lock `<cwd>/<name>/.lock`, connects, registers on the first session
 * and starts watching its assignment. Resolves once registered (state RUNNING); rejects with
 * `WorkerNameTakenError` if a live worker holds the name, `WorkerLockedError` if a local one does.
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const worker = new GridWorker(options);
  await worker.start();
  return worker;
}
