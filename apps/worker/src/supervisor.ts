import { messageOf, type ZkClient } from "@zkgrid/core";
import {
  type AssignedTask,
  encodeTaskStatus,
  headBytes,
  isFinalState,
  MAX_MESSAGE_BYTES,
  type StatusUpdate,
  statusFromUpdate,
} from "@zkgrid/protocol";
import type { AnswerStream } from "./answer-stream.js";
import { answerDirect, type DirectTask } from "./inbox.js";
import { createTaskLauncher, type LauncherMode, type TaskLauncher } from "./launcher.js";
import { RunningNotices } from "./running-notices.js";
import type { Session } from "./session.js";
import { type KillReason, TaskRun } from "./task-run.js";
import type { CompiledWorkerOptions } from "./worker-options.js";
import type { WorkerEvents } from "./worker-events.js";

/** A task of this worker, from its start (or refusal) until it leaves the assignment. */
interface Tracked {
  session: string;
  run: TaskRun | undefined;
  done: boolean;
  /** The final update published, kept while the task is assigned in case it must be reported again. */
  update?: StatusUpdate;
  /** Set for a task taken from the session's inbox: its answer goes over its node, not into a report. */
  direct?: DirectTask & { task: AssignedTask };
  /** A direct task whose node was deleted while it ran: what it ends with goes on no answer stream. */
  nodeGone?: boolean;
}

export const taskKey = (t: { id: string; attempt: number }) => `${t.id}#${t.attempt}`;

/**
 * A direct task with the task it carries. The key before the spread, not `{ ...direct, task }`: V8 gives
 * each object a spread followed by a new key makes a map of its own (bench/README.md, "A map per task").
 */
const withTask = (direct: DirectTask, task: AssignedTask): DirectTask & { task: AssignedTask } => ({
  task,
  ...direct,
});

export interface TaskSupervisorOptions {
  options: CompiledWorkerOptions;
  client: () => ZkClient;
  /** The answer stream, if the worker has one: a direct task's answer goes there too. */
  answers: () => AnswerStream | undefined;
  events: WorkerEvents;
  /** A task ended, so a slot is free. */
  onTaskEnded: () => void;
}

/**
 * Starts and kills the worker's tasks, and publishes their updates: into the session's report, or, for
 * a direct task, over its inbox node. It owns every task the worker knows of, by `(id, attempt)`.
 */
export class TaskSupervisor {
  private readonly tracked = new Map<string, Tracked>();
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  /** Answers being written; a stop waits for them as it does for reports. */
  private readonly answers = new Set<Promise<unknown>>();
  private readonly runningNotices = new RunningNotices();
  private readonly launcher: TaskLauncher;
  private readonly options: CompiledWorkerOptions;

  constructor(private readonly deps: TaskSupervisorOptions) {
    this.options = deps.options;
    this.launcher = createTaskLauncher({
      killGraceMs: this.options.killGraceMs,
      label: this.options.name,
      logger: this.options.log,
      perl: this.options.perl,
    });
  }

  /** How many tasks are running now. */
  get running(): number {
    return this.active;
  }

  get launcherMode(): LauncherMode {
    return this.launcher.mode;
  }

  /** True if the worker knows this `(id, attempt)` already: started, refused or handed back. */
  has(task: { id: string; attempt: number }): boolean {
    return this.tracked.has(taskKey(task));
  }

  /** {@link has} by the task's key (`taskKey`), for a caller that has it already. */
  hasKey(key: string): boolean {
    return this.tracked.has(key);
  }

  /** Records a task that ends without running (refused or handed back). */
  settle(session: Session, task: { id: string; attempt: number }): void {
    this.tracked.set(taskKey(task), { session: session.id, run: undefined, done: true });
  }

  /** Records a direct task declined without running: its answer is the node written back. */
  settleDirect(session: Session, task: AssignedTask, direct: DirectTask): void {
    this.tracked.set(taskKey(task), {
      session: session.id,
      run: undefined,
      done: true,
      direct: withTask(direct, task),
    });
  }

  /** Forgets finished tasks that left the assignment (`assigned`, by key) and cancels running ones. */
  cancelUnassigned(assigned: ReadonlySet<string>): void {
    for (const [key, entry] of this.tracked) {
      if (assigned.has(key) || entry.direct !== undefined) continue;
      if (entry.done) this.tracked.delete(key);
      else if (entry.run !== undefined && !entry.run.killed) {
        entry.run.kill("cancel");
        this.options.log("info", "cancelled: it left the assignment", {
          task: entry.run.id,
          attempt: entry.run.attempt,
        });
      }
    }
  }

  /** A direct task's node was deleted: the leader cancelled it (or fenced the session). */
  cancelDirect(session: Session, name: string): void {
    const entry = this.tracked.get(taskKey({ id: name, attempt: 1 }));
    if (entry?.direct === undefined || entry.session !== session.id) return;
    entry.nodeGone = true;
    if (!entry.done && entry.run !== undefined && !entry.run.killed) {
      entry.run.kill("cancel");
      this.options.log("info", "cancelled: its direct task node was deleted", { task: name });
    }
  }

  start(session: Session, task: AssignedTask, direct?: DirectTask, key = taskKey(task)): void {
    const run = new TaskRun(task, {
      worker: this.options.name,
      session: session.id,
      baseDir: this.options.baseDir,
      handlers: this.options.handlers,
      launcher: this.launcher,
      killGraceMs: this.options.killGraceMs,
      logger: this.options.log,
      // A direct task's only update is its answer (publish leaves `running` out): no notice for it.
      onRunning: (update) => {
        if (direct === undefined)
          this.runningNotices.add(() => {
            if (!entry.done && !run.killed) this.publish(session, update);
          });
      },
    });
    const entry: Tracked =
      direct === undefined
        ? { session: session.id, run, done: false }
        : { session: session.id, run, done: false, direct: withTask(direct, task) };
    this.tracked.set(key, entry);
    this.active++;
    run.result
      .catch((error: unknown): StatusUpdate => {
        const now = Date.now();
        const message = headBytes(`the worker failed to run it: ${messageOf(error)}`, MAX_MESSAGE_BYTES);
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
        // A run ends `returned` only when a stop or a cut-off killed it.
        if (update?.state === "returned") this.publishReturned(session, update);
        else if (update !== null) this.publish(session, update);
        if (this.idleWaiters.length > 0 && this.active === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const wake of waiters) wake();
        }
        this.deps.onTaskEnded();
      });
  }

  /** The leader cancelled a task held for a free slot: it never started, so its report has no startedAt. */
  cancelUnstarted(session: Session, task: { id: string; attempt: number }): void {
    this.settle(session, task);
    this.options.log("info", "cancelled before it started: it left the assignment", {
      task: task.id,
      attempt: task.attempt,
    });
    const now = Date.now();
    this.publish(session, {
      id: task.id,
      attempt: task.attempt,
      state: "cancelled",
      at: now,
      finishedAt: now,
    });
  }

  /** A stopping worker hands back a task of the assignment that has not started. */
  returnUnstarted(session: Session, task: AssignedTask): void {
    this.settle(session, task);
    this.options.log("info", "returned: the worker is stopping", { task: task.id, attempt: task.attempt });
    this.publishReturned(session, { id: task.id, attempt: task.attempt, state: "returned", at: Date.now() });
  }

  /**
   * Publishes the `returned` updates of a stopping worker: the tasks it hands back unstarted, and those
   * its stop killed when the grace ran out. (A direct task declined while running goes through publish.)
   */
  private publishReturned(session: Session, update: StatusUpdate): void {
    this.publish(session, update);
  }

  publish(session: Session, update: StatusUpdate): void {
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
        this.deps.events.emit({ type: "update", sessionId: session.id, update });
        return;
      }
      // Final: the task's status, as the leader will record it. Given back before it started: the
      // task written back unchanged, which declines it.
      const data = isFinalState(update.state)
        ? encodeTaskStatus(
            statusFromUpdate(
              {
                id: direct.task.id,
                spec: direct.task.spec,
                attemptsUsed: 1,
                worker: this.options.name,
                submittedAt: direct.task.submittedAt,
                assignedAt: direct.task.assignedAt,
              },
              { ...update, state: update.state },
            ),
          )
        : direct.data;
      // The stream first: its submitter has the answer while the node's write waits for its sync. Not
      // for a task whose node is gone: the leader's record of it is the answer (a cancel, or a rerun).
      if (isFinalState(update.state) && direct.answerKey !== undefined && !entry.nodeGone)
        this.deps.answers()?.send(direct.answerKey, data);
      this.answer(session, direct, data, update.id, (outcome) => {
        // Not allowed to write over the node: the leader hears of the task through a report instead.
        if (outcome === "refused" && session.status === "active") session.reporter.report(update);
        // Declined: the leader lists the inbox now rather than when its listing settles. After the
        // write, so that it reads the task written back.
        if (outcome === "written" && !isFinalState(update.state)) session.reporter.nudge();
        if (this.tracked.get(taskKey(update)) === entry) this.tracked.delete(taskKey(update));
      });
      this.deps.events.emit({ type: "update", sessionId: session.id, update });
      return;
    }
    if (update.state !== "running" && entry?.session === session.id) entry.update = update;
    session.reporter.report(update);
    this.deps.events.emit({ type: "update", sessionId: session.id, update });
  }

  private answer(
    session: Session,
    direct: DirectTask,
    data: Buffer,
    id: string,
    done: (outcome: "written" | "dropped" | "refused") => void,
  ): void {
    const writing = answerDirect(session.client, direct, data, id, this.options.log, session.signal)
      .catch((error: unknown): "dropped" => {
        if (!session.signal.aborted)
          this.options.log("warn", `could not answer a direct task: ${messageOf(error)}`, { task: id });
        return "dropped";
      })
      .then(done)
      .finally(() => this.answers.delete(writing));
    this.answers.add(writing);
  }

  /** The final updates of `session`'s tasks still tracked, to report again. */
  finalUpdates(session: Session): StatusUpdate[] {
    const updates: StatusUpdate[] = [];
    for (const entry of this.tracked.values()) {
      if (entry.session === session.id && entry.update !== undefined) updates.push(entry.update);
    }
    return updates;
  }

  /** Cut off from the ensemble: `session`'s running tasks are stopped, to be reported `returned`. */
  stopCutOff(session: Session): number {
    let stopped = 0;
    for (const entry of this.tracked.values()) {
      const { run } = entry;
      if (entry.session !== session.id || entry.done || run === undefined || run.killed) continue;
      run.kill("cut-off");
      stopped++;
      this.options.log("warn", "stopped: the worker is cut off from every ZooKeeper server", {
        task: run.id,
        attempt: run.attempt,
      });
    }
    return stopped;
  }

  /** The session is over: its running tasks are killed (their results dropped) and all forgotten. */
  dropSession(session: Session): number {
    let killed = 0;
    for (const [key, entry] of this.tracked) {
      if (entry.session !== session.id) continue;
      if (!entry.done && entry.run !== undefined) {
        entry.run.kill("session-lost");
        killed++;
      }
      this.tracked.delete(key);
    }
    return killed;
  }

  killAll(reason: KillReason): void {
    for (const entry of this.tracked.values()) {
      if (!entry.done) entry.run?.kill(reason);
    }
  }

  allRunsDone(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolveDone) => this.idleWaiters.push(resolveDone));
  }

  /** Resolves when the answers being written now are written (or dropped). */
  async answersWritten(): Promise<void> {
    await Promise.all(this.answers);
  }

  /** Ends the task launcher (which kills any task still running). */
  close(): Promise<void> {
    return this.launcher.close();
  }
}
