import type {
  AssignedTask,
  AttemptRecord,
  RequeuedTask,
  StatusUpdate,
  TaskSpec,
  TaskStatus,
} from "@zkgrid/protocol";
import {
  buildTaskStatus,
  DEFAULT_MAX_ATTEMPTS,
  headBytes,
  isRetried,
  MAX_ATTEMPT_ERROR_BYTES,
  MAX_NODE_BYTES,
  retryDelayMs,
  statusFromUpdate,
} from "@zkgrid/protocol";
import { DueHeap } from "./due-heap.js";

/** Where a task stands in the leader's memory. Final tasks keep only their id. */
export interface TaskEntry {
  id: string;
  spec: TaskSpec;
  /** The queue node the task came from; the node is deleted once none of its tasks is queued. */
  queueNode: string;
  /** Order of arrival: queue sequence, then index inside the batch (FIFO within a priority). */
  order: number;
  submittedAt: number;
  /** `delayed`: in its queue node, not to be handed out before `dueAt`. */
  state: "queued" | "delayed" | "assigned" | "running";
  /** When a delayed task may be handed out (its `runAt`, or a retry's backoff). */
  dueAt?: number;
  /** The attempts it used before this one, oldest first; absent until one ends without ending the task. */
  history?: AttemptRecord[];
  /** Attempts used so far; the next hand-out is attempt `attemptsUsed + 1`. */
  attemptsUsed: number;
  worker?: string;
  session?: string;
  assignedAt?: number;
  startedAt?: number;
  /**
   * Encoded size of the task's AssignedTask, so assignment nodes stay under the node limit; 0 until
   * the scheduler first encodes it.
   */
  bytes: number;
  /** Cancelled while a worker held it: out of the assignment, waiting for the worker's last report. */
  cancelling?: boolean;
  /** The AssignedTask JSON of the current hand-out, kept so a rewritten assignment re-encodes only new tasks. */
  encoded?: string;
  /**
   * Set for a direct task: a submitter put it in this worker session's inbox (attempt 1); it is in
   * no assignment, and its node is its durable record until its result is written.
   */
  direct?: { path: string; version: number };
}

export interface WorkerSlot {
  name: string;
  session: string;
  capacity: number;
  labels: ReadonlySet<string>;
  /** Ids of the tasks in this worker's assignment node. */
  tasks: Set<string>;
  /** Ids of the direct tasks this session holds: they take capacity but are in no assignment. */
  direct: Set<string>;
  bytes: number;
}

/**
 * What may start now, beyond capacity and labels: pauses and start limits (the leader's StartGate).
 * `schedule` asks before each hand-out and reports each one it makes.
 */
export interface ScheduleGate {
  /** Nothing may start (the whole grid is paused). */
  readonly closed: boolean;
  /** Whether a task carrying `labels` may be handed out at `now`. */
  allows(labels: readonly string[] | undefined, now: number): boolean;
  /** A task carrying `labels` was handed out at `now`. */
  handedOut(labels: readonly string[] | undefined, now: number): void;
}

/** The fixed JSON overhead of an Assignment around its tasks (`{"v":1,"epoch":…}`), generously rounded. */
const ASSIGNMENT_OVERHEAD = 512;

/**
 * The leader's in-memory view of every unfinished task, and the scheduling rule: priority first,
 * FIFO within a priority, to the least loaded live worker whose labels cover the task's.
 *
 * It does no I/O: the leader feeds it what it reads from ZooKeeper and writes what it returns, so the
 * scheduling rule is tested without a server.
 */
export class TaskBook {
  readonly tasks = new Map<string, TaskEntry>();
  /**
   * Ids that reached a final state, while the leader keeps a result node of theirs: a task submitted
   * again under one of them is dropped. Bounded by the kept result nodes (forgetFinished).
   */
  readonly finished = new Set<string>();
  /** Reply addresses of finished tasks whose result is not written yet (see GridWriter.writeResults). */
  readonly #replyAddresses = new Map<string, string>();
  readonly workers = new Map<string, WorkerSlot>();
  /** Queued ids per priority, each list in arrival order. */
  private readonly queues = new Map<number, TaskEntry[]>();
  /** Queue node → ids from it still queued (present only while the node still holds unassigned work). */
  private readonly queueNodes = new Map<string, Set<string>>();
  /** Queue nodes whose every task is assigned or final: ready to delete. */
  readonly drainedQueueNodes = new Set<string>();
  /**
   * Tasks put back in the queue whose only durable record is an assignment about to be rewritten.
   * The leader writes them to a queue node of their own before it rewrites that assignment.
   */
  private readonly homeless = new Set<string>();
  /** `worker@session` → ids that session holds, so a lost session's tasks are found without a scan. */
  private readonly holders = new Map<string, { worker: string; session: string; ids: Set<string> }>();
  /** Sessions that came to hold a task since `takeNewHolders()` was last called, by `worker@session`. */
  private newHolders = new Map<string, { worker: string; session: string }>();
  /** `worker@session` of sessions whose worker is stopping: they get no new task (kept until fenced). */
  private readonly draining = new Set<string>();
  /** Delayed tasks by due time; one cancelled or handed out is skipped when it comes up. */
  private readonly delayed = new DueHeap<TaskEntry>(
    (e, dueAt) => e.state === "delayed" && e.dueAt === dueAt && this.tasks.get(e.id) === e,
  );
  private readonly now: () => number;
  private readonly random: () => number;

  /** `now` and `random` (0..1, for a backoff's jitter) are the clock and dice a test may fix. */
  constructor(options: { now?: () => number; random?: () => number } = {}) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  get queuedCount(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /**
   * A queue node was read; its tasks are queued unless known, or delayed while their `runAt` (or a
   * retry's `notBefore`) is ahead. Returns the ids that were new.
   */
  addQueueNode(
    node: string,
    seq: number,
    tasks: TaskSpec[],
    submittedAt: number,
    requeued?: Record<string, RequeuedTask>,
  ): string[] {
    const fresh: string[] = [];
    const pending = new Set<string>();
    const now = this.now();
    tasks.forEach((spec, index) => {
      const again = requeued?.[spec.id];
      const known = this.tasks.get(spec.id);
      // A task's first queue node can outlive its hand-out (a delayed task beside it keeps it): a new
      // leader that reads it before the requeued copy must not take its attempts back to zero.
      if (
        known !== undefined &&
        again !== undefined &&
        isWaiting(known) &&
        again.attemptsUsed > known.attemptsUsed
      ) {
        this.unqueue(known);
        known.attemptsUsed = again.attemptsUsed;
        known.submittedAt = again.submittedAt;
        if (again.history !== undefined && again.history.length > 0) known.history = again.history;
        known.queueNode = node;
        this.wait(known, Math.max(spec.runAt ?? 0, again.notBefore ?? 0), now);
        pending.add(spec.id);
        return;
      }
      if (known !== undefined || this.finished.has(spec.id)) return;
      const entry: TaskEntry = {
        id: spec.id,
        spec,
        queueNode: node,
        order: seq * 10_000 + index,
        submittedAt: again?.submittedAt ?? submittedAt,
        state: "queued",
        attemptsUsed: again?.attemptsUsed ?? 0,
        bytes: 0, // known once it is handed out
      };
      if (again?.history !== undefined && again.history.length > 0) entry.history = again.history;
      this.tasks.set(spec.id, entry);
      this.wait(entry, Math.max(spec.runAt ?? 0, again?.notBefore ?? 0), now);
      pending.add(spec.id);
      fresh.push(spec.id);
    });
    if (pending.size > 0) this.queueNodes.set(node, pending);
    else this.drainedQueueNodes.add(node);
    return fresh;
  }

  /** A task found in an assignment node on takeover. */
  adoptAssigned(worker: string, session: string, task: AssignedTask, queueNode: string): void {
    if (this.finished.has(task.id)) return;
    const existing = this.tasks.get(task.id);
    if (existing && !isWaiting(existing) && existing.attemptsUsed >= task.attempt) return;
    if (existing && isWaiting(existing)) this.unqueue(existing);
    if (existing) this.release(existing);
    const entry: TaskEntry = {
      id: task.id,
      spec: task.spec,
      queueNode: existing?.queueNode ?? queueNode,
      order: existing?.order ?? 0,
      submittedAt: task.submittedAt,
      state: "assigned",
      attemptsUsed: task.attempt,
      worker,
      session,
      assignedAt: task.assignedAt,
      bytes: assignedTaskBytes(task.spec, task.submittedAt, task.history),
    };
    const history = task.history ?? existing?.history;
    if (history !== undefined && history.length > 0) entry.history = history;
    this.tasks.set(task.id, entry);
    this.hold(entry);
  }

  /**
   * A direct task read from `worker@session`'s inbox at `path`: held by that session as attempt 1.
   * Returns false (and changes nothing) if the id is known: the grid drops a second task under it.
   */
  addDirect(
    worker: string,
    session: string,
    spec: TaskSpec,
    submittedAt: number,
    assignedAt: number,
    direct: { path: string; version: number },
  ): boolean {
    if (this.isKnown(spec.id)) return false;
    const entry: TaskEntry = {
      id: spec.id,
      spec,
      queueNode: "",
      order: 0,
      submittedAt,
      state: "assigned",
      attemptsUsed: 1,
      worker,
      session,
      assignedAt,
      bytes: 0,
      direct,
    };
    this.tasks.set(spec.id, entry);
    this.hold(entry);
    const slot = this.workers.get(worker);
    if (slot && slot.session === session) slot.direct.add(spec.id);
    return true;
  }

  /** A direct task's node is gone without a result: the task is handed out again (or fails). */
  loseDirect(id: string, why: string): TaskStatus | undefined {
    const entry = this.tasks.get(id);
    if (!entry?.direct) return undefined;
    entry.direct = undefined;
    // A cancelled one ends cancelled (requeue does that).
    return this.requeue(entry, why, { record: lostAttempt(entry, why, this.now()) });
  }

  markFinished(id: string): void {
    const entry = this.tasks.get(id);
    if (entry) {
      if (isWaiting(entry)) this.unqueue(entry);
      this.detachFromWorker(entry);
      this.release(entry);
      this.tasks.delete(id);
      if (entry.spec.replyTo !== undefined) this.#replyAddresses.set(id, entry.spec.replyTo);
    }
    this.finished.add(id);
  }

  /**
   * The result nodes of these ids were pruned: they are no longer known as finished, so a long term
   * does not remember every id it ever finished (a task submitted again under one of them runs again,
   * as after a takeover, which reads only the kept result nodes).
   */
  forgetFinished(ids: Iterable<string>): void {
    for (const id of ids) if (!this.tasks.has(id)) this.finished.delete(id);
  }

  /** Where the result of `id` goes: its reply address, or undefined for `R/results`. */
  replyAddressOf(id: string): string | undefined {
    return this.#replyAddresses.get(id) ?? this.tasks.get(id)?.spec.replyTo;
  }

  /** The result of `id` is written. */
  forgetReplyAddress(id: string): void {
    this.#replyAddresses.delete(id);
  }

  isKnown(id: string): boolean {
    return this.tasks.has(id) || this.finished.has(id);
  }

  /**
   * A worker update. Returns the final TaskStatus to publish when the update ends the task, or
   * undefined. Updates from a session that no longer holds the task are ignored (fencing).
   */
  applyUpdate(worker: string, session: string, u: StatusUpdate): TaskStatus | undefined {
    const entry = this.tasks.get(u.id);
    if (!entry || entry.worker !== worker || entry.session !== session || entry.attemptsUsed !== u.attempt) {
      return undefined;
    }
    switch (u.state) {
      case "running":
        entry.state = "running";
        entry.startedAt = u.startedAt ?? u.at;
        return undefined;
      case "returned": {
        // A task handed back unstarted keeps its attempt, and so does one a graceful stop cut short:
        // its next hand-out carries the same number. One returned otherwise after it started used it up.
        const kept = u.startedAt === undefined || this.isDraining(worker, session);
        if (kept) entry.attemptsUsed -= 1;
        entry.direct = undefined;
        const why = "worker returned it";
        return this.requeue(entry, why, kept ? {} : { record: lostAttempt(entry, why, u.at) });
      }
      default: {
        const record = attemptRecord(entry, { ...u, state: u.state });
        if (this.retries(entry, u)) {
          const dueAt = this.now() + retryDelayMs(entry.spec.retry ?? {}, entry.attemptsUsed, this.random());
          this.requeue(entry, `attempt ${u.attempt} ${u.state}`, { record, dueAt });
          return undefined;
        }
        const status = statusFromUpdate(entry, { ...u, state: u.state }, entry.startedAt);
        if (entry.history !== undefined) status.history = [...entry.history, record];
        this.markFinished(entry.id);
        return status;
      }
    }
  }

  /** Whether the attempt `u` ended is tried again: its policy says so, and attempts are left. */
  private retries(entry: TaskEntry, u: StatusUpdate): boolean {
    return (
      !entry.cancelling &&
      entry.direct === undefined &&
      entry.attemptsUsed < (entry.spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS) &&
      isRetried(entry.spec.retry, u.state, u.exitCode, u.noRetry)
    );
  }

  /**
   * Cancels a task. A queued one ends at once (the returned status); one a worker holds leaves its
   * assignment (the worker stops it and reports `cancelled`), and the worker's name is returned so
   * its assignment is rewritten. Unknown and finished ids are ignored.
   */
  cancel(
    id: string,
    now: number,
  ): { status?: TaskStatus; worker?: string; direct?: { path: string; version: number } } {
    const entry = this.tasks.get(id);
    if (!entry) return {};
    if (isWaiting(entry)) {
      const status = finalStatus(entry, "cancelled", { reason: "cancelled before it ran", finishedAt: now });
      this.markFinished(id);
      return { status };
    }
    if (entry.cancelling) return {};
    entry.cancelling = true;
    this.detachFromWorker(entry);
    // A direct task is stopped by deleting its node (under the version read, so an answer written
    // first stands); an assigned one by dropping it from its worker's assignment.
    if (entry.direct) return { direct: entry.direct };
    return { worker: entry.worker };
  }

  /** A cancelled direct task's node was deleted before any answer: it ends as cancelled. */
  cancelledDirect(id: string, now: number): TaskStatus | undefined {
    const entry = this.tasks.get(id);
    if (!entry?.direct || !entry.cancelling) return undefined;
    const status = finalStatus(entry, "cancelled", {
      reason: "cancelled while its worker held it",
      finishedAt: now,
    });
    this.markFinished(id);
    return status;
  }

  /** The worker sessions that hold at least one task. */
  holdingSessions(): Array<{ worker: string; session: string }> {
    return [...this.holders.values()].map(({ worker, session }) => ({ worker, session }));
  }

  /** Whether this worker session holds a task. */
  holds(worker: string, session: string): boolean {
    return this.holders.has(`${worker}@${session}`);
  }

  /**
   * The worker sessions that came to hold a task (held none before) since the last call: the leader
   * checks that these are live without walking every holder.
   */
  takeNewHolders(): Array<{ worker: string; session: string }> {
    const out = [...this.newHolders.values()];
    this.newHolders = new Map();
    return out;
  }

  /** The worker of this session is stopping: it takes no new task from now on. */
  markDraining(worker: string, session: string): boolean {
    const key = `${worker}@${session}`;
    if (this.draining.has(key)) return false;
    this.draining.add(key);
    return true;
  }

  isDraining(worker: string, session: string): boolean {
    return this.draining.has(`${worker}@${session}`);
  }

  /**
   * The worker session holding these tasks is gone: hand them out again or fail them. A session that
   * said it was stopping, and had reported all it ran before it went, never started the tasks it still
   * holds unstarted (they reached it too late): those keep their attempt.
   */
  loseSession(worker: string, session: string): TaskStatus[] {
    const finals: TaskStatus[] = [];
    const key = `${worker}@${session}`;
    const stopping = this.draining.delete(key);
    const held = this.holders.get(key);
    for (const id of held ? [...held.ids] : []) {
      const entry = this.tasks.get(id);
      if (!entry || entry.worker !== worker || entry.session !== session) continue;
      const kept = stopping && entry.state === "assigned" && !entry.direct;
      if (kept) entry.attemptsUsed -= 1;
      const why = "worker lost";
      const status = this.requeue(entry, why, kept ? {} : { record: lostAttempt(entry, why, this.now()) });
      if (status) finals.push(status);
    }
    return finals;
  }

  /**
   * Puts a task a worker held back in the queue (delayed until `dueAt` if that is ahead), or ends it
   * when it was being cancelled or has no attempt left. `record`: the attempt it used up, if it did.
   */
  private requeue(
    entry: TaskEntry,
    why: string,
    after: { record?: AttemptRecord; dueAt?: number },
  ): TaskStatus | undefined {
    this.detachFromWorker(entry);
    entry.direct = undefined;
    if (after.record !== undefined) entry.history = [...(entry.history ?? []), after.record];
    const history = entry.history === undefined ? {} : { history: entry.history };
    if (entry.cancelling) {
      const status = finalStatus(entry, "cancelled", {
        reason: `cancelled; ${why} before it confirmed`,
        finishedAt: this.now(),
        ...history,
      });
      this.markFinished(entry.id);
      return status;
    }
    const max = entry.spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (entry.attemptsUsed >= max) {
      const status = finalStatus(entry, "failed", {
        reason: `${why} after ${entry.attemptsUsed} attempt${entry.attemptsUsed === 1 ? "" : "s"} (maxAttempts ${max})`,
        finishedAt: this.now(),
        ...history,
      });
      this.markFinished(entry.id);
      return status;
    }
    this.release(entry);
    entry.worker = undefined;
    entry.session = undefined;
    entry.assignedAt = undefined;
    entry.startedAt = undefined;
    entry.encoded = undefined;
    // A task never starts before its runAt, however it came back (a declined direct task, too).
    this.wait(entry, Math.max(after.dueAt ?? 0, entry.spec.runAt ?? 0), this.now());
    this.homeless.add(entry.id);
    return undefined;
  }

  /** Queues a task, or holds it delayed until `dueAt` when that is ahead of `now`. */
  private wait(entry: TaskEntry, dueAt: number, now: number): void {
    if (dueAt > now) {
      entry.state = "delayed";
      entry.dueAt = dueAt;
      this.delayed.push(entry, dueAt, entry.order);
      return;
    }
    entry.state = "queued";
    entry.dueAt = undefined;
    this.enqueue(entry);
  }

  /**
   * Delayed tasks due at `now` join the end of their priority's queue (FIFO among the due). Their
   * queue node stays their durable record until they are handed out. Returns how many.
   */
  releaseDue(now: number): number {
    const due = this.delayed.takeDue(now);
    for (const entry of due) {
      entry.state = "queued";
      const priority = entry.spec.priority ?? 0;
      const last = this.queues.get(priority)?.at(-1);
      if (last !== undefined && last.order > entry.order) entry.order = last.order + 1;
      this.enqueue(entry);
    }
    return due.length;
  }

  /** When the next delayed task is due, or undefined when none is delayed. */
  nextDueAt(): number | undefined {
    return this.delayed.nextDueAt();
  }

  /** Requeued tasks that still need a queue node of their own (see `homeless`). */
  takeHomeless(): TaskEntry[] {
    const out: TaskEntry[] = [];
    for (const id of this.homeless) {
      const e = this.tasks.get(id);
      if (e) out.push(e);
    }
    this.homeless.clear();
    return out;
  }

  /** The requeued tasks now live in queue node `node`. */
  rehome(node: string, entries: TaskEntry[]): void {
    const pending = new Set<string>();
    for (const e of entries) {
      e.queueNode = node;
      if (isWaiting(e)) pending.add(e.id);
    }
    if (pending.size > 0) this.queueNodes.set(node, pending);
    else this.drainedQueueNodes.add(node);
  }

  /** Registers or refreshes a live worker. A new session of the same name starts empty. */
  setWorker(name: string, session: string, capacity: number, labels: string[]): WorkerSlot {
    const existing = this.workers.get(name);
    if (existing && existing.session === session) {
      existing.capacity = capacity;
      existing.labels = new Set(labels);
      return existing;
    }
    const slot: WorkerSlot = {
      name,
      session,
      capacity,
      labels: new Set(labels),
      tasks: new Set(),
      direct: new Set(),
      bytes: 0,
    };
    // Direct tasks of this session read before its registration was.
    for (const id of this.holders.get(`${name}@${session}`)?.ids ?? []) {
      if (this.tasks.get(id)?.direct) slot.direct.add(id);
    }
    this.workers.set(name, slot);
    return slot;
  }

  removeWorker(name: string): void {
    this.workers.delete(name);
  }

  /** Rebuilds each worker slot's task set from the task table (after adopting assignments). */
  attachAssigned(): void {
    for (const slot of this.workers.values()) {
      slot.tasks.clear();
      slot.direct.clear();
      slot.bytes = 0;
    }
    for (const entry of this.tasks.values()) {
      if (isWaiting(entry) || !entry.worker || entry.cancelling) continue;
      const slot = this.workers.get(entry.worker);
      if (slot && slot.session === entry.session) {
        if (entry.direct) {
          slot.direct.add(entry.id);
          continue;
        }
        slot.tasks.add(entry.id);
        slot.bytes += entry.bytes;
      }
    }
  }

  /**
   * Hands queued tasks to workers with free capacity. Returns the workers whose assignment changed.
   * Priority first, FIFO within a priority, least loaded eligible worker first.
   */
  schedule(now: number, onAssign?: (entry: TaskEntry) => void, gate?: ScheduleGate): Set<string> {
    const changed = new Set<string>();
    // Most steps have nothing queued: they cost nothing here, however many workers there are.
    if (gate?.closed || this.queues.size === 0) return changed;
    // Rooms only shrink during a pass: a task known (from an earlier pass) to be larger than the
    // largest room is skipped without being encoded again. Found when first needed.
    let maxRoom: number | undefined;
    // Workers are looked at in order as each task needs one, not listed up front: an idle one ends
    // the look, so a pass over many idle workers costs what the tasks need, not a walk of them all.
    let anyOpen = true;
    const priorities = [...this.queues.keys()].sort((a, b) => b - a);
    for (const priority of priorities) {
      const queue = this.queues.get(priority);
      if (!queue) continue;
      const kept: TaskEntry[] = [];
      let i = 0;
      for (; i < queue.length; i++) {
        const entry = queue[i] as TaskEntry;
        // Held by a pause or a start limit: it keeps its place and waits.
        if (gate !== undefined && !gate.allows(entry.spec.labels, now)) {
          kept.push(entry);
          continue;
        }
        if (entry.bytes !== 0) maxRoom ??= this.largestRoom();
        if (maxRoom === Number.NEGATIVE_INFINITY) {
          anyOpen = false; // no worker is open
          break;
        }
        const mayFit = entry.bytes === 0 || entry.bytes <= (maxRoom as number);
        let worker: WorkerSlot | undefined;
        if (mayFit) {
          // Encoded once, as the hand-out it is about to become: its size decides where it fits, and
          // the assignment node reuses the text. A task no open worker has the labels for is not encoded.
          const takers = this.takersOf(entry);
          if (takers === "none open") {
            // Every worker is full: this task and the rest keep their places.
            anyOpen = false;
            break;
          }
          if (takers === "some")
            worker = pickWorker(this.workers.values(), handOut(entry, now), this.draining);
        }
        if (!worker) {
          entry.encoded = undefined;
          kept.push(entry);
          continue;
        }
        entry.state = "assigned";
        entry.attemptsUsed += 1;
        entry.worker = worker.name;
        entry.session = worker.session;
        this.hold(entry);
        entry.assignedAt = now;
        gate?.handedOut(entry.spec.labels, now);
        onAssign?.(entry);
        worker.tasks.add(entry.id);
        worker.bytes += entry.bytes;
        changed.add(worker.name);
        this.noteLeftQueue(entry);
      }
      // In place when nothing was skipped (the common case): a long queue is not copied every step.
      const rest = kept.length === 0 ? queue : kept.concat(queue.slice(i));
      if (kept.length === 0) queue.splice(0, i);
      if (rest.length > 0) this.queues.set(priority, rest);
      else this.queues.delete(priority);
      if (!anyOpen) break;
    }
    return changed;
  }

  /** The largest room an open worker's assignment node has left, with slack for a longer attempt number. */
  private largestRoom(): number {
    let room = Number.NEGATIVE_INFINITY;
    for (const w of this.workers.values()) {
      if (isOpen(w, this.draining))
        room = Math.max(room, MAX_NODE_BYTES - ASSIGNMENT_OVERHEAD - w.bytes + 16);
    }
    return room;
  }

  /** Whether an open worker has the task's labels ("some"), none does, or no worker is open at all. */
  private takersOf(entry: TaskEntry): "some" | "none" | "none open" {
    let open = false;
    for (const w of this.workers.values()) {
      if (!isOpen(w, this.draining)) continue;
      if (covers(w, entry)) return "some";
      open = true;
    }
    return open ? "none" : "none open";
  }

  /** The AssignedTask list for a worker's assignment node. */
  assignmentFor(worker: string): AssignedTask[] {
    const slot = this.workers.get(worker);
    if (!slot) return [];
    const out: AssignedTask[] = [];
    for (const id of slot.tasks) {
      const e = this.tasks.get(id);
      if (e) out.push(assignedTask(e));
    }
    return out;
  }

  /**
   * `assignmentFor(worker)` as the JSON text of an array. Each hand-out is encoded once, when it is
   * first written: a busy worker's node is rewritten with every change, mostly with the same tasks.
   */
  assignmentJson(worker: string): string {
    const slot = this.workers.get(worker);
    if (!slot) return "[]";
    const parts: string[] = [];
    for (const id of slot.tasks) {
      const e = this.tasks.get(id);
      if (!e) continue;
      e.encoded ??= JSON.stringify(assignedTask(e));
      parts.push(e.encoded);
    }
    return `[${parts.join(",")}]`;
  }

  /** Counts for status output and tests. */
  counts(): Record<TaskEntry["state"], number> {
    const c = { queued: 0, delayed: 0, assigned: 0, running: 0 };
    for (const e of this.tasks.values()) c[e.state] += 1;
    return c;
  }

  private enqueue(entry: TaskEntry): void {
    const priority = entry.spec.priority ?? 0;
    let q = this.queues.get(priority);
    if (!q) {
      q = [];
      this.queues.set(priority, q);
    }
    // Requeued tasks go back in arrival order, so a lost task is not starved by later ones.
    if (q.length === 0 || (q[q.length - 1] as TaskEntry).order <= entry.order) q.push(entry);
    else q.splice(lowerBound(q, entry.order), 0, entry);
  }

  private unqueue(entry: TaskEntry): void {
    // A delayed one is skipped by the heap once it is no longer delayed.
    if (entry.state === "delayed") {
      entry.state = "queued";
      this.noteLeftQueue(entry);
      return;
    }
    const q = this.queues.get(entry.spec.priority ?? 0);
    if (!q) return;
    const i = q.indexOf(entry);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this.queues.delete(entry.spec.priority ?? 0);
    this.noteLeftQueue(entry);
  }

  private noteLeftQueue(entry: TaskEntry): void {
    const pending = this.queueNodes.get(entry.queueNode);
    if (!pending) return;
    pending.delete(entry.id);
    if (pending.size === 0) {
      this.queueNodes.delete(entry.queueNode);
      this.drainedQueueNodes.add(entry.queueNode);
    }
  }

  private hold(entry: TaskEntry): void {
    if (!entry.worker || !entry.session) return;
    const key = `${entry.worker}@${entry.session}`;
    let h = this.holders.get(key);
    if (!h) {
      h = { worker: entry.worker, session: entry.session, ids: new Set() };
      this.holders.set(key, h);
      this.newHolders.set(key, { worker: entry.worker, session: entry.session });
    }
    h.ids.add(entry.id);
  }

  private release(entry: TaskEntry): void {
    if (!entry.worker || !entry.session) return;
    const key = `${entry.worker}@${entry.session}`;
    const h = this.holders.get(key);
    if (!h) return;
    h.ids.delete(entry.id);
    if (h.ids.size === 0) this.holders.delete(key);
  }

  private detachFromWorker(entry: TaskEntry): void {
    if (!entry.worker) return;
    const slot = this.workers.get(entry.worker);
    if (!slot || slot.session !== entry.session) return;
    if (slot.tasks.delete(entry.id)) slot.bytes -= entry.bytes;
    slot.direct.delete(entry.id);
  }
}

/** A task in a queue node, not held by a worker: queued, or delayed. */
function isWaiting(entry: TaskEntry): boolean {
  return entry.state === "queued" || entry.state === "delayed";
}

/** The record of an attempt a worker's final update ended. */
function attemptRecord(
  entry: TaskEntry,
  u: StatusUpdate & { state: AttemptRecord["outcome"] },
): AttemptRecord {
  const record: AttemptRecord = { attempt: u.attempt, outcome: u.state };
  if (entry.worker !== undefined) record.worker = entry.worker;
  if (entry.assignedAt !== undefined) record.assignedAt = entry.assignedAt;
  const startedAt = u.startedAt ?? entry.startedAt;
  if (startedAt !== undefined) record.startedAt = startedAt;
  record.finishedAt = u.finishedAt ?? u.at;
  if (u.exitCode !== undefined) record.exitCode = u.exitCode;
  if (u.signal !== undefined) record.signal = u.signal;
  if (u.error !== undefined) record.error = headBytes(u.error, MAX_ATTEMPT_ERROR_BYTES);
  return record;
}

/** The record of an attempt whose worker went away (or gave the task back after it started). */
function lostAttempt(entry: TaskEntry, why: string, at: number): AttemptRecord {
  const record: AttemptRecord = { attempt: entry.attemptsUsed, outcome: "lost", error: why, finishedAt: at };
  if (entry.worker !== undefined) record.worker = entry.worker;
  if (entry.assignedAt !== undefined) record.assignedAt = entry.assignedAt;
  if (entry.startedAt !== undefined) record.startedAt = entry.startedAt;
  return record;
}

/** Tasks a worker holds: those in its assignment and its direct ones. */
function load(w: WorkerSlot): number {
  return w.tasks.size + w.direct.size;
}

/** Whether worker `w` may take a task now: room under its capacity, and not stopping. */
function isOpen(w: WorkerSlot, draining: ReadonlySet<string>): boolean {
  if (load(w) >= w.capacity) return false;
  return draining.size === 0 || !draining.has(`${w.name}@${w.session}`);
}

/** The least loaded open worker whose labels cover the task's and whose node has room for it. */
function pickWorker(
  workers: Iterable<WorkerSlot>,
  entry: TaskEntry,
  draining: ReadonlySet<string>,
): WorkerSlot | undefined {
  let best: WorkerSlot | undefined;
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const w of workers) {
    if (!isOpen(w, draining) || !covers(w, entry)) continue;
    if (w.bytes + entry.bytes + ASSIGNMENT_OVERHEAD > MAX_NODE_BYTES) continue;
    const share = load(w) / w.capacity;
    // An idle worker cannot be beaten, and the first one found is the one the whole scan would keep.
    if (share === 0) return w;
    if (share < bestLoad) {
      best = w;
      bestLoad = share;
    }
  }
  return best;
}

/** Whether worker `w` has every label the task needs. */
function covers(w: WorkerSlot, entry: TaskEntry): boolean {
  const need = entry.spec.labels;
  return need === undefined || need.every((l) => w.labels.has(l));
}

/** Sets the entry's `encoded` and `bytes` to those of its next hand-out, made at `now`. */
function handOut(entry: TaskEntry, now: number): TaskEntry {
  entry.encoded = JSON.stringify(handOutAs(entry, entry.attemptsUsed + 1, now));
  entry.bytes = Buffer.byteLength(entry.encoded) + 1;
  return entry;
}

function lowerBound(q: TaskEntry[], order: number): number {
  let lo = 0;
  let hi = q.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((q[mid] as TaskEntry).order < order) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function assignedTask(e: TaskEntry): AssignedTask {
  // A missing assignedAt is fixed on first use, so the cached encoding stays the task's one hand-out.
  e.assignedAt ??= Date.now();
  return handOutAs(e, e.attemptsUsed, e.assignedAt);
}

function handOutAs(e: TaskEntry, attempt: number, assignedAt: number): AssignedTask {
  const task: AssignedTask = { id: e.id, attempt, assignedAt, submittedAt: e.submittedAt, spec: e.spec };
  // Carried so that a new leader, which finds the task only here, keeps its earlier attempts.
  if (e.history !== undefined) task.history = e.history;
  return task;
}

function assignedTaskBytes(spec: TaskSpec, submittedAt: number, history?: AttemptRecord[]): number {
  const sample: AssignedTask = { id: spec.id, attempt: 100, assignedAt: submittedAt, submittedAt, spec };
  if (history !== undefined) sample.history = history;
  return Buffer.byteLength(JSON.stringify(sample)) + 1;
}

/** A final status from what the book knows of the task (see `buildTaskStatus`). */
export const finalStatus: (
  entry: Pick<TaskEntry, "id" | "spec" | "attemptsUsed" | "worker" | "submittedAt" | "assignedAt">,
  state: TaskStatus["state"],
  extra: Partial<TaskStatus>,
) => TaskStatus = buildTaskStatus;
