import { isClosed, isNoNode, isSessionExpired, messageOf, type ZkClient } from "@zkgrid/core";
import {
  type AssignedTask,
  decodeInboxNode,
  gridLayout,
  headBytes,
  INBOX_NAME_SEPARATOR,
  inboxNodeId,
  MAX_MESSAGE_BYTES,
} from "@zkgrid/protocol";
import { type ReadAssignment, readAssignment } from "./assignment.js";
import { asError } from "./errors.js";
import type { DirectTask } from "./inbox.js";
import type { Prefetch, ReconcileSeen } from "./prefetch.js";
import type { Session, SessionKeeper } from "./session.js";
import { type TaskSupervisor, taskKey } from "./supervisor.js";
import type { WorkerEvents, WorkerState } from "./worker-events.js";
import type { CompiledWorkerOptions } from "./worker-options.js";

export interface TaskSourceOptions {
  options: CompiledWorkerOptions;
  client: () => ZkClient;
  supervisor: TaskSupervisor;
  sessions: SessionKeeper;
  /** How many tasks to hold beyond `concurrency`; told what each reconcile saw. */
  prefetch: Prefetch;
  events: WorkerEvents;
  state: () => WorkerState;
  /** Aborts when the worker stops or fails: ends the assignment watch. */
  lifetime: AbortSignal;
  fail: (error: Error) => void;
}

/**
 * Where the worker's tasks come from: the leader's assignment (`R/assign/<worker>`) and the session's
 * inbox of direct tasks, merged into one decision of what the supervisor runs, hands back or cancels.
 */
export class TaskSource {
  private assignment: ReadAssignment | undefined;
  /** The current assignment's keys, made once per version of the node: a reconcile runs once per turn. */
  private keys: AssignmentKeys = { tasks: [], assigned: new Set(), byKey: new Map() };
  private maxEpoch = -1;
  private readonly loggedProblems = new Set<string>();
  /** Tasks of the current assignment waiting for a free slot, as the last reconcile counted them. */
  private waiting = 0;
  /** Those tasks (by key) and the session they were assigned to: one that leaves the assignment was cancelled. */
  private held = new Map<string, AssignedTask>();
  private heldSession: string | undefined;
  private reconcileScheduled = false;
  private readonly layout = gridLayout("/");
  private readonly options: CompiledWorkerOptions;

  constructor(private readonly deps: TaskSourceOptions) {
    this.options = deps.options;
  }

  /** Tasks of the current assignment waiting for a free slot. */
  get backlog(): number {
    return this.waiting;
  }

  // ---- the assignment ------------------------------------------------------------------------

  async watchAssignment(client: ZkClient): Promise<void> {
    const { name, log } = this.options;
    const path = this.layout.assign(name);
    try {
      for await (const change of client.watchData(path, { signal: this.deps.lifetime })) {
        if (change === null) continue;
        // Tasks already in the previous version of this node are not validated again.
        const read = readAssignment(change.data, this.keys.byKey);
        if (!read.ok) {
          log("error", `ignored an assignment that cannot be read: ${read.error.message}`);
          continue;
        }
        const assignment = read.value;
        if (assignment.worker !== name) {
          log("warn", `ignored an assignment addressed to worker ${assignment.worker}`);
          continue;
        }
        if (assignment.epoch < this.maxEpoch) {
          log("warn", `ignored an assignment of epoch ${assignment.epoch}; epoch ${this.maxEpoch} was seen`);
          continue;
        }
        this.maxEpoch = assignment.epoch;
        for (const problem of assignment.unreportable) {
          if (this.loggedProblems.has(problem)) continue;
          this.loggedProblems.add(problem);
          log("error", `ignored an assigned task that cannot be reported: ${problem}`);
        }
        this.assignment = assignment;
        this.keys = keysOf(assignment);
        this.reconcile(assignment.tasks.length);
        this.deps.events.emit({
          type: "assignment",
          sessionId: assignment.session,
          epoch: assignment.epoch,
          tasks: assignment.tasks,
        });
      }
    } catch (error) {
      if (!this.deps.lifetime.aborted) this.deps.fail(asError(error));
    }
  }

  /**
   * Brings what runs in line with the assignment: starts new tasks while RUNNING (up to `concurrency`),
   * hands them back while stopping, cancels running tasks that left it and forgets finished ones.
   * `listed`: it follows a new assignment, which lists that many tasks.
   */
  reconcile(listed?: number): void {
    const { assignment } = this;
    const session = this.deps.sessions.current;
    const { supervisor } = this.deps;
    if (assignment === undefined || session?.status !== "active" || assignment.session !== session.id) return;
    if (this.deps.sessions.heldAfterFreeze(session)) return;
    const { assigned, tasks: keys } = this.keys;
    supervisor.cancelUnassigned(assigned);
    if (this.heldSession === session.id) {
      for (const [key, task] of this.held) {
        if (!assigned.has(key) && !supervisor.has(task)) supervisor.cancelUnstarted(session, task);
      }
    }
    for (const refused of assignment.refused) {
      if (supervisor.has(refused)) continue;
      supervisor.settle(session, refused);
      this.options.log("error", refused.error, { task: refused.id, attempt: refused.attempt });
      const now = Date.now();
      supervisor.publish(session, {
        id: refused.id,
        attempt: refused.attempt,
        state: "failed",
        at: now,
        finishedAt: now,
        error: headBytes(refused.error, MAX_MESSAGE_BYTES),
      });
    }
    const state = this.deps.state();
    const held = new Map<string, AssignedTask>();
    let started = 0;
    assignment.tasks.forEach((task, index) => {
      const key = keys[index] as string;
      if (supervisor.hasKey(key)) return;
      if (state === "RUNNING") {
        if (supervisor.running >= this.options.concurrency) {
          held.set(key, task);
          return;
        }
        supervisor.start(session, task, undefined, key);
        started += 1;
      } else if (state === "STOPPING" || state === "DRAINING") {
        // By state, not by the worker's stop promise: stop() sets that only after the first reconcile.
        supervisor.returnUnstarted(session, task);
      }
    });
    this.held = held;
    this.heldSession = session.id;
    this.waiting = held.size;
    if (state === "RUNNING") {
      const seen: ReconcileSeen = { running: supervisor.running, held: held.size, started };
      if (listed !== undefined) seen.assigned = listed;
      this.deps.prefetch.adapt(seen);
    }
    session.reporter.kick();
  }

  /** One reconcile per turn of the event loop, however many tasks ended in it (each is O(assignment)). */
  scheduleReconcile(): void {
    if (this.reconcileScheduled) return;
    this.reconcileScheduled = true;
    setImmediate(() => {
      this.reconcileScheduled = false;
      this.reconcile();
    });
  }

  // ---- the inbox -----------------------------------------------------------------------------

  /**
   * Watches the session's inbox: a submitter may put a task there for this session to run at once,
   * without a hop through the leader. A task that cannot start at once (no free slot, labels, stopping)
   * is declined with `returned`, and the leader queues it.
   */
  async watchInbox(session: Session): Promise<void> {
    const { client } = session;
    // Kept while the session serves: a task put in an inbox nobody watches would wait for the session's end.
    while (!session.signal.aborted && session.status === "active") {
      try {
        // A watch's first listing may show nodes this session has not seen at any version: each is read.
        // A later change shows nodes created since, at version 0 (only this session rewrites them), so a
        // task carried in its node's name is taken from the name, without a read. perChild: a new node
        // is known from its own event, not from a listing after it (one request sooner).
        let first = true;
        const changes = client.watchChildren(session.inboxDir, { signal: session.signal, perChild: true });
        for await (const change of changes) {
          for (const name of change.removed) {
            session.inboxSeen.delete(name);
            this.deps.supervisor.cancelDirect(session, inboxNodeId(name));
          }
          for (const name of change.added) {
            if (session.inboxSeen.has(name)) continue;
            session.inboxSeen.add(name);
            if (!first && name.includes(INBOX_NAME_SEPARATOR)) this.takeDirect(session, name);
            else void this.readDirect(session, name);
          }
          first = false;
        }
        return; // the session ended, or the client closed
      } catch (error) {
        if (session.signal.aborted || session.status !== "active") return;
        this.options.log("warn", `inbox watch failed, watching again: ${messageOf(error)}`, {
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
      got = await session.client.get(path);
    } catch (error) {
      // Gone (cancelled, fenced) or the session ended: the leader decides. Anything else (the node's
      // ACL does not let this worker read it) leaves the task to its session's end: say so.
      if (!isNoNode(error) && !isSessionExpired(error) && !isClosed(error))
        this.options.log("error", `cannot read direct task ${path}: ${messageOf(error)}`, {
          session: session.id,
        });
      return;
    }
    if (got.stat.version !== 0) return; // declined or answered already
    this.takeDirect(session, name, got);
  }

  /**
   * Runs or declines the direct task of node `name` at version 0: as read (`got`), or as its name
   * carries it, seen just now (its data empty).
   */
  private takeDirect(session: Session, name: string, got?: { data: Buffer; stat: { ctime: number } }): void {
    const node = decodeInboxNode(name, got?.data ?? EMPTY, 0);
    if (node.kind !== "task") return; // answered already, or not a task: the leader's to judge
    // Written back unchanged, it is declined: a task carried in the name is written back with no data.
    const data = got === undefined || name.includes(INBOX_NAME_SEPARATOR) ? EMPTY : got.data;
    const direct: DirectTask = {
      path: `${session.inboxDir}/${name}`,
      version: 0,
      data,
      answerKey: node.answerKey,
    };
    const task: AssignedTask = {
      id: node.task.id,
      attempt: 1,
      assignedAt: got?.stat.ctime ?? Date.now(),
      submittedAt: node.submittedAt,
      spec: node.task,
    };
    const { supervisor } = this.deps;
    if (supervisor.has(task)) return;
    const why = this.cannotTakeDirect(session, node.task.labels) ?? leaderOnly(node.task);
    if (why !== undefined) {
      supervisor.settleDirect(session, task, direct);
      this.options.log("info", `declined a direct task: ${why}`, { task: task.id });
      const update = { id: task.id, attempt: 1, state: "returned" as const, at: Date.now() };
      // Also reported while stopping: the report's draining flag keeps the leader from handing it back here.
      if (this.deps.state() !== "RUNNING") session.reporter.report(update);
      supervisor.publish(session, update);
      return;
    }
    supervisor.start(session, task, direct);
  }

  /** Why a direct task cannot start now (see also `leaderOnly`), or undefined if it can. */
  private cannotTakeDirect(session: Session, labels: readonly string[] | undefined): string | undefined {
    if (this.deps.state() !== "RUNNING") return "the worker is stopping";
    if (this.deps.sessions.current !== session || session.status !== "active") return "its session is over";
    if (labels !== undefined && !labels.every((l) => this.options.labels.includes(l)))
      return "labels not covered";
    if (this.deps.supervisor.running >= this.options.concurrency || this.waiting > 0) return "no free slot";
    if (this.deps.sessions.heldAfterFreeze(session)) return "checking the session after a pause";
    return undefined;
  }
}

const EMPTY = Buffer.alloc(0);

/** An assignment's task keys (`taskKey`), in its order, as a set with its refused tasks', and as a map. */
interface AssignmentKeys {
  tasks: string[];
  assigned: Set<string>;
  byKey: Map<string, AssignedTask>;
}

function keysOf(assignment: ReadAssignment): AssignmentKeys {
  const tasks = assignment.tasks.map(taskKey);
  const byKey = new Map(tasks.map((key, index) => [key, assignment.tasks[index] as AssignedTask]));
  const assigned = new Set(tasks);
  for (const refused of assignment.refused) assigned.add(taskKey(refused));
  return { tasks, assigned, byKey };
}

/**
 * Why only the leader may run this task: one delayed to a later time waits in its memory, and one
 * with a retry policy is retried by it (a direct task's answer would be final to its submitter).
 */
function leaderOnly(task: { runAt?: number; retry?: unknown }): string | undefined {
  if (task.runAt !== undefined && task.runAt > Date.now()) return "it is delayed";
  if (task.retry !== undefined) return "it has a retry policy";
  return undefined;
}
