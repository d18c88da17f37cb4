import { performance } from "node:perf_hooks";
import { errors, type Leadership, type Logger, type SessionBoundClient } from "@zkgrid/core";
import type { GridLayout } from "@zkgrid/protocol";
import {
  decodeAssignment,
  decodeResultBatch,
  isValidReplyAddress,
  isValidWorkerName,
  parseSequentialName,
} from "@zkgrid/protocol";
import type { MasterMetrics } from "../metrics.js";
import { TaskBook } from "../task-book.js";
import { Cancellations } from "./cancellations.js";
import { DelayTimer } from "./delay-timer.js";
import { DirectInboxes } from "./direct-inboxes.js";
import { QueueIntake } from "./queue-intake.js";
import { StartGate } from "./start-gate.js";
import { WorkerReports } from "./reports.js";
import { ScheduleFirings } from "./schedules.js";
import {
  childrenOrNone,
  followChildren,
  forEachLimit,
  getOrNull,
  NotLeaderError,
  type Term,
  termFollower,
} from "./term.js";
import { WorkerSessions } from "./worker-sessions.js";
import { DEFAULT_KEEP_RESULTS, GridWriter } from "./writer.js";

export interface LeaderStats {
  epoch: number;
  queued: number;
  /** Tasks waiting for their `runAt` or a retry's backoff. */
  delayed: number;
  assigned: number;
  running: number;
  finished: number;
  workers: number;
  ticks: number;
  writes: number;
}

/**
 * Where a term stands:
 * - `rebuilding`: reading the grid before its first step (a kick waits for the end of it);
 * - `idle`: no step runs; a kick starts one;
 * - `stepping`: a step runs; `stepping-again`: and another was asked for, which runs right after it;
 * - `suspended`: the connection is down; no step starts until it is back (`stepping-suspended`: the
 *   step in flight finishes, and none follows); `rebuilding-suspended` likewise before the first step;
 * - `stopped`: the term is over.
 */
export type LeaderState =
  | "rebuilding"
  | "rebuilding-suspended"
  | "idle"
  | "stepping"
  | "stepping-again"
  | "stepping-suspended"
  | "suspended"
  | "stopped";

/** Where `suspend()` moves each state it applies to; a pending `stepping-again` is dropped. */
const SUSPENDED: Partial<Record<LeaderState, LeaderState>> = {
  rebuilding: "rebuilding-suspended",
  idle: "suspended",
  stepping: "stepping-suspended",
  "stepping-again": "stepping-suspended",
};

/** Where `resume()` moves each suspended state back to. */
const RESUMED: Partial<Record<LeaderState, LeaderState>> = {
  "rebuilding-suspended": "rebuilding",
  suspended: "idle",
  "stepping-suspended": "stepping",
};

/**
 * One leader term: rebuilds the grid's state from ZooKeeper, then assigns, collects and fences until
 * leadership ends. Every step is a batch: whatever arrived while the previous step's writes were in
 * flight is handled by the next step, so no timer delays a lone task and a busy grid shares writes.
 *
 * Each source of change is its own part, with its own state: the queue (QueueIntake), worker sessions
 * and their fencing (WorkerSessions), reports (WorkerReports), inboxes (DirectInboxes), cancel requests
 * (Cancellations); the GridWriter batches their writes and the clean-up. This class runs the steps.
 */
export class GridLeader {
  readonly book = new TaskBook();
  private state_: LeaderState = "rebuilding";
  private readonly changes: Array<() => void> = [];
  private readonly abort = new AbortController();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly counters = { ticks: 0, writes: 0, finished: 0 };
  private readonly term: Term;
  private readonly writer: GridWriter;
  private readonly intake: QueueIntake;
  private readonly reports: WorkerReports;
  private readonly direct: DirectInboxes;
  private readonly cancels: Cancellations;
  private readonly sessions: WorkerSessions;
  private readonly delays: DelayTimer;
  private readonly schedules: ScheduleFirings;
  private readonly gate: StartGate;
  /** Milliseconds per takeover phase, logged with "state rebuilt" and the first step. */
  private readonly phaseMs: Record<string, number> = {};
  private takeoverStartedAt: number | undefined;

  constructor(
    /** Bound to the session this term was elected on: ZooKeeper refuses its writes once that ends. */
    private readonly client: SessionBoundClient,
    private readonly layout: GridLayout,
    private readonly leadership: Leadership,
    private readonly log: Logger,
    private readonly metrics?: MasterMetrics,
    keepResults = DEFAULT_KEEP_RESULTS,
  ) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.term = {
      client,
      layout,
      book: this.book,
      log,
      epoch: leadership.epoch,
      signal: this.abort.signal,
      follower: termFollower(client, this.abort.signal, {
        kick: () => this.kick(),
        fail: (err) => this.fail(err),
        // Report nodes going (the clean-up deleting applied ones) leave nothing for a step: with many
        // workers that would be a step per task.
        quiet: (e) =>
          e.type === "children" && e.change.added.length === 0 && e.path.startsWith(`${layout.reports}/`),
      }),
      counters: this.counters,
      apply: (change) => void this.changes.push(change),
      drain: () => this.drain(),
      kick: () => this.kick(),
      fail: (err) => this.fail(err),
      onStepError: (err) => this.onStepError(err),
      guard: () => {
        if (this.stopped || leadership.signal.aborted) throw new NotLeaderError("leadership ended");
      },
      isStopped: () => this.stopped,
    };
    this.writer = new GridWriter(this.term, metrics, keepResults);
    this.intake = new QueueIntake(this.term, this.writer);
    this.reports = new WorkerReports(this.term, this.writer);
    this.direct = new DirectInboxes(this.term, this.writer, this.reports, this.intake);
    this.cancels = new Cancellations(this.term, this.writer, this.direct);
    this.sessions = new WorkerSessions(this.term, this.writer, this.reports, this.direct);
    this.delays = new DelayTimer(this.term);
    this.schedules = new ScheduleFirings(this.term, this.intake);
    this.gate = new StartGate(this.term);
    leadership.signal.addEventListener("abort", this.onLeadershipLost, { once: true });
  }

  private readonly onLeadershipLost = (): void => void this.stop();

  get state(): LeaderState {
    return this.state_;
  }

  private get stopped(): boolean {
    return this.state_ === "stopped";
  }

  /** Resolves when this term ends (leadership lost, stop(), or a refused fenced write). */
  finished(): Promise<void> {
    return this.done;
  }

  suspend(): void {
    this.state_ = SUSPENDED[this.state_] ?? this.state_;
  }

  resume(): void {
    const resumed = RESUMED[this.state_];
    if (resumed === undefined) return;
    this.state_ = resumed;
    this.schedules.afterOutage();
    this.sessions.recheckAll();
    // A write in flight when the connection dropped may or may not have happened: re-read versions.
    // The gate too: a pause written meanwhile holds from the next step on.
    void Promise.all([this.writer.refreshAssignVersions(), this.gate.refresh()]).then(() => this.kick());
  }

  async start(): Promise<void> {
    this.log("info", "leading: rebuilding state before assigning anything", { epoch: this.leadership.epoch });
    this.takeoverStartedAt = performance.now();
    await this.reconcileAfterTakeover();
    this.phaseMs.rebuild = Math.round(performance.now() - this.takeoverStartedAt);
    if (this.state_ === "rebuilding") this.state_ = "idle";
    else if (this.state_ === "rebuilding-suspended") this.state_ = "suspended";
    this.log("info", "state rebuilt", {
      epoch: this.leadership.epoch,
      ...this.book.counts(),
      finished: this.book.finished.size,
      ms: this.phaseMs,
    });
    this.kick();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.state_ = "stopped";
    // A term that ends while leadership holds is followed by another on the same signal.
    this.leadership.signal.removeEventListener("abort", this.onLeadershipLost);
    clearTimeout(this.retryTimer);
    this.sessions.stop();
    this.schedules.stop();
    this.writer.stop();
    this.delays.stop();
    this.abort.abort();
    this.reports.stop();
    this.direct.stop();
    this.resolveDone();
  }

  /** Counters of this term; the task counts are computed on demand (a scan of the task table). */
  get stats(): LeaderStats {
    return {
      epoch: this.leadership.epoch,
      ...this.book.counts(),
      ...this.counters,
      workers: this.book.workers.size,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Takeover

  /**
   * Every result node, in `R/results` and in each reply dir, marks its tasks finished and is known for
   * pruning, oldest (by czxid) first. A reply dir with no result node and no live submitter is deleted.
   */
  private async readResultsAtTakeover(): Promise<void> {
    const { client, layout } = this;
    await client.ensurePath(layout.replies);
    const places: Array<{ dir: string; address: string | undefined }> = [
      { dir: layout.results, address: undefined },
    ];
    for (const address of await client.getChildren(layout.replies)) {
      if (!isValidReplyAddress(address)) {
        this.log("warn", "unexpected node under replies; ignoring it", { node: address });
        continue;
      }
      places.push({ dir: layout.replyDir(address), address });
    }
    const found: Array<{ path: string; address: string | undefined; ids: string[]; czxid: number }> = [];
    const emptyDirs: string[] = [];
    await forEachLimit(places, 32, async ({ dir, address }) => {
      const names = await childrenOrNone(client, dir);
      const nodes = names.filter((name) => parseSequentialName(name)?.prefix === layout.resultNodePrefix);
      if (address !== undefined && names.length === 0) emptyDirs.push(dir);
      await forEachLimit(nodes, 32, async (name) => {
        const path = `${dir}/${name}`;
        const got = await getOrNull(client, path);
        if (!got) return;
        const decoded = decodeResultBatch(got.data);
        const ids = decoded.ok ? decoded.value.results.map((r) => r.id) : [];
        found.push({ path, address, ids, czxid: got.stat.czxid });
        for (const id of ids) this.book.markFinished(id);
      });
    });
    found.sort((a, b) => a.czxid - b.czxid);
    // An id in several nodes (a crash can leave its result written twice) goes with the newest only,
    // so it is remembered as finished until the last of them is pruned.
    const seen = new Set<string>();
    for (let i = found.length - 1; i >= 0; i--) {
      const node = found[i] as (typeof found)[number];
      node.ids = node.ids.filter((id) => {
        if (seen.has(id)) return false;
        seen.add(id);
        return true;
      });
    }
    this.writer.knowResultNodes(found);
    for (const dir of emptyDirs) await this.writer.deleteReplyDir(dir);
  }

  /**
   * Reads results, assignments, workers, reports and the queue before the first assignment, so a
   * new leader neither loses a task nor hands one out twice. Assignment nodes are rewritten with the
   * new epoch under their read version first: from then on a deposed leader's write to them fails.
   */
  private async reconcileAfterTakeover(): Promise<void> {
    const { client, layout, term } = this;
    for (const p of [
      layout.queue,
      layout.workers,
      layout.assignDir,
      layout.reports,
      layout.results,
      layout.cancel,
      layout.inbox,
    ]) {
      await client.ensurePath(p);
    }

    // The reads overlap: results and assignments go to the book as read, every other part queues its
    // changes (Term.apply), and nothing queued is applied before all of them are done (the drain below).
    const timed = this.timed;
    await Promise.all([
      timed("results+assignments", this.readResultsThenAssignments()),
      // Live workers, the queue and the reports arrive through their watches; the first yield of each
      // is the current state, so the takeover read and the steady state are one code path.
      timed(
        "workers",
        followChildren(term, layout.workers, (c) => this.sessions.onWorkers(c)),
      ),
      timed(
        "queue",
        followChildren(term, layout.queue, (c) => this.intake.onQueue(c)),
      ),
      timed(
        "reports",
        followChildren(term, layout.reports, (c) => {
          this.sessions.dirsChanged(c);
          return this.reports.onReportDirs(c);
        }),
      ),
      timed(
        "inboxes",
        followChildren(term, layout.inbox, (c) => {
          this.sessions.dirsChanged(c);
          return this.direct.onInboxDirs(c);
        }),
      ),
      // Pauses and start limits hold from the first hand-out on.
      this.gate.follow(),
    ]);
    const applying = performance.now();
    this.drain();
    this.book.attachAssigned();
    this.phaseMs.apply = Math.round(performance.now() - applying);
    // Cancel requests last: they apply to the tasks rebuilt above. Those read during takeover (before
    // the first step) are judged as such.
    await timed(
      "cancels",
      followChildren(term, layout.cancel, (c) => this.cancels.onCancel(c, this.isRebuilding())),
    );
    this.drain();
    // Schedules last: a slot whose task is known from the reads above is not fired again.
    await timed("schedules", this.schedules.start());
  }

  /** Records how long `work` took under `phase` (see phaseMs). */
  private readonly timed = async <T>(phase: string, work: Promise<T>): Promise<T> => {
    const began = performance.now();
    try {
      return await work;
    } finally {
      this.phaseMs[phase] = Math.round(performance.now() - began);
    }
  };

  private async readResultsThenAssignments(): Promise<void> {
    await this.readResultsAtTakeover();
    await this.readAssignments();
    // Fence: rewrite every assignment under the version we read, with our epoch (the first step).
    this.writer.fenceAssignments();
  }

  /** Every assignment, its version kept for the fence. */
  private async readAssignments(): Promise<void> {
    const { client, layout } = this;
    const assigned = await client.getChildren(layout.assignDir);
    await forEachLimit(assigned, 32, async (worker) => {
      if (!isValidWorkerName(worker)) {
        this.log("warn", "unexpected node under assign; ignoring it", { node: worker });
        return;
      }
      const got = await getOrNull(client, layout.assign(worker));
      if (!got) return;
      this.writer.knowAssignment(worker, got.stat.version);
      const decoded = decodeAssignment(got.data);
      if (!decoded.ok) {
        this.log("warn", "unreadable assignment node; it will be rewritten", {
          worker,
          error: decoded.error.message,
        });
        return;
      }
      if (decoded.value.epoch > this.leadership.epoch)
        throw new NotLeaderError(`assignment of ${worker} has a newer epoch`);
      for (const t of decoded.value.tasks) this.book.adoptAssigned(worker, decoded.value.session, t, "");
    });
  }

  private isRebuilding(): boolean {
    return this.state_ === "rebuilding" || this.state_ === "rebuilding-suspended";
  }

  // ---------------------------------------------------------------------------------------------
  // The step loop

  private drain(): void {
    for (const apply of this.changes.splice(0)) apply();
  }

  private kick(): void {
    if (this.state_ === "stepping") {
      this.state_ = "stepping-again";
      return;
    }
    if (this.state_ !== "idle") return;
    this.state_ = "stepping";
    void (async () => {
      try {
        for (;;) {
          await this.step();
          this.afterFirstStep();
          if (this.state_ !== "stepping-again") break;
          this.state_ = "stepping";
        }
      } catch (err) {
        this.onStepError(err);
      } finally {
        if (this.state_ === "stepping" || this.state_ === "stepping-again") this.state_ = "idle";
        else if (this.state_ === "stepping-suspended") this.state_ = "suspended";
      }
    })();
  }

  /** Logs how long the takeover took, up to its first step's writes (assignments included). */
  private afterFirstStep(): void {
    if (this.takeoverStartedAt === undefined) return;
    const total = Math.round(performance.now() - this.takeoverStartedAt);
    this.takeoverStartedAt = undefined;
    this.log("info", "first step after takeover", {
      epoch: this.leadership.epoch,
      totalMs: total,
      ms: this.phaseMs,
    });
  }

  private onStepError(err: unknown): void {
    if (this.stopped) return;
    // A fenced session's dirs may not be deleted yet: the next step looks at every session again.
    this.sessions.recheckAll();
    if (err instanceof NotLeaderError || errors.isBadVersion(err) || errors.isSessionExpired(err)) {
      this.fail(err);
      return;
    }
    // Connection trouble: the step is repeated once the connection is back (resume()) or shortly.
    this.log("warn", "step failed; retrying", { error: String(err) });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      void this.writer.refreshAssignVersions().then(() => this.kick());
    }, 200);
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.log("error", "leader term ends", { error: String(err) });
    void this.stop();
  }

  private async step(): Promise<void> {
    const { book, writer } = this;
    this.counters.ticks += 1;
    this.drain();
    const fenced = await this.sessions.fenceDeadSessions();
    this.drain();

    // Firings are recorded before any result write (which may prune old results): see ScheduleFirings.
    await this.schedules.fireDue(Date.now());
    const homeless = book.takeHomeless();
    const now = Date.now();
    // Never before its time: only a task due by the leader's clock now joins the queue.
    book.releaseDue(now);
    const onAssign = this.metrics
      ? (e: { submittedAt: number }) => this.metrics?.taskAssigned(e.submittedAt, now)
      : undefined;
    for (const w of book.schedule(now, onAssign, this.gate)) writer.assignmentChanged(w);

    // A direct task's answer is durable in its node, and its submitter has read it there: its result
    // waits for the clean-up, so that a stream of lone tasks shares result writes.
    const cleanup = writer.cleanupWanted(this.direct.answersWaiting);
    // A fenced inbox is deleted after this step's writes: its answers' results go with them.
    if (cleanup || fenced.inboxes.length > 0) this.direct.releaseAnswers();
    // Results and requeued tasks become durable before any assignment that drops them is applied.
    // Requeues, cancel accepts and results for a reply dir that may be gone are written first; the
    // other results go out with the assignments, ahead of them (GridWriter.writeResultsAndAssignments).
    const { first, beside } = writer.splitResults(writer.takeResults());
    const writes: Promise<unknown>[] = [this.cancels.writeAccepts()];
    if (first.length > 0) writes.push(writer.writeResults(first));
    if (homeless.length > 0) writes.push(this.intake.writeRequeue(homeless));
    try {
      await Promise.all(writes);
    } catch (err) {
      writer.restoreResults([...first, ...beside]);
      throw err;
    }
    // Cancelled direct tasks: their `accepted` is durable now, so their nodes may go.
    await this.direct.deleteCancelled();
    await writer.writeResultsAndAssignments(beside, cleanup);
    this.delays.arm();

    // Only now are the inputs of this step redundant.
    const redundant = writer.takeRedundant(cleanup, this.intake.takeDrained());
    const settled = this.cancels.takeSettled();
    // Clean-up only: the next step need not wait for it (a lost delete is redone on takeover).
    void Promise.all([
      ...settled.map((p) => writer.deleteQuietly(p)),
      ...redundant.map((p) => writer.deleteRedundant(p)),
      ...fenced.reports.map((d) => this.reports.deleteDir(d)),
      ...fenced.inboxes.map((d) => this.direct.deleteInbox(d.dirName, d.names)),
    ]).catch((err) => this.onStepError(err));
  }
}
