import { createHash } from "node:crypto";
import type { Leadership, SessionBoundClient } from "@zkgrid/core";
import { errors } from "@zkgrid/core";
import type { CancelRequest, GridLayout, SubmitBatch, TaskStatus, WorkerReport } from "@zkgrid/protocol";
import {
  decodeAssignment,
  decodeCancelRequest,
  decodeInboxNode,
  decodeResultBatch,
  decodeSubmitBatch,
  decodeWorkerRegistration,
  decodeWorkerReport,
  encodeCancelRequest,
  encodeResultBatches,
  encodeSubmitBatch,
  headBytes,
  isValidTaskId,
  isValidWorkerName,
  MAX_MESSAGE_BYTES,
  newBatchId,
  parseSequence,
  unnamedTaskId,
} from "@zkgrid/protocol";
import type { Logger } from "./logger.js";
import type { MasterMetrics } from "./metrics.js";
import { finalStatus, TaskBook } from "./task-book.js";

/** Result nodes kept under R/results; older ones are deleted (a reader lists them all on each change). */
export const DEFAULT_KEEP_RESULTS = 5000;

/**
 * Clean-up (deleting applied report nodes and drained queue nodes, dropping finished tasks from an
 * assignment) waits this long, or for CLEANUP_BATCH items, so that a stream of lone tasks shares its
 * writes and the watch events they cause. No task waits for it: it only removes what is redundant.
 */
const CLEANUP_DELAY_MS = 50;
const CLEANUP_BATCH = 1000;

/**
 * An inbox is listed again this long after it changes: a stream of lone tasks shares one listing,
 * and their workers have usually answered by the time the leader reads them (see readDirect).
 */
const DIRECT_SETTLE_MS = 100;

/** How long a report dir may exist without a registration of its session before it is fenced. */
const UNREGISTERED_DIR_GRACE_MS = 120_000;

/** Thrown inside a leader's term when ZooKeeper shows another leader has acted (a refused conditional write). */
export class NotLeaderError extends Error {
  override readonly name = "NotLeaderError";
}

export interface LeaderStats {
  epoch: number;
  queued: number;
  assigned: number;
  running: number;
  finished: number;
  workers: number;
  ticks: number;
  writes: number;
}

interface LiveWorker {
  session: string;
  capacity: number;
  labels: string[];
}

/** A worker session's inbox of direct tasks, `R/inbox/<worker>@<session>`. */
interface InboxDir {
  worker: string;
  session: string;
  /** Names whose data watch runs (or ran): each node is followed until it is deleted. */
  followed: Set<string>;
  /** Aborted when the dir is gone: ends its watch. */
  stop: AbortController;
}

interface SessionDir {
  worker: string;
  session: string;
  /** Aborted when the dir is gone: ends its watch. */
  stop: AbortController;
  /** Report nodes already applied (kept until the dir is gone, so a re-listed node is not applied twice). */
  applied: Set<string>;
}

/**
 * One leader term: rebuilds the grid's state from ZooKeeper, then assigns, collects and fences until
 * leadership ends. Every step is a batch: whatever arrived while the previous step's writes were in
 * flight is handled by the next step, so no timer delays a lone task and a busy grid shares writes.
 */
export class GridLeader {
  readonly book = new TaskBook();
  private readonly assignVersions = new Map<string, number>();
  private readonly live = new Map<string, LiveWorker>();
  private readonly dirs = new Map<string, SessionDir>();
  private readonly seenQueueNodes = new Set<string>();
  /** `worker@session` of every registration this term has seen. */
  private readonly seenSessions = new Set<string>();
  private pendingResults: TaskStatus[] = [];
  /** Result node names, oldest first, for pruning. */
  private resultNodes: string[] = [];
  /** Cancel request nodes → their ids not yet final; a node is deleted once all are. */
  private readonly cancelNodes = new Map<string, Set<string>>();
  /** Cancel nodes to rewrite with `accepted` before the assignments that drop those tasks. */
  private readonly cancelAccepts = new Map<string, { request: CancelRequest; version: number }>();
  private readonly seenCancelNodes = new Set<string>();
  private readonly inboxDirs = new Map<string, InboxDir>();
  /** Cancelled direct tasks whose nodes are deleted after this step's `accepted` writes. */
  private directCancels: Array<{ id: string; path: string; version: number }> = [];
  /** Final statuses of answered direct tasks, written with the next clean-up, and then their nodes deleted. */
  private directResults: TaskStatus[] = [];
  private directNodes: string[] = [];
  private reportNodesToDelete: string[] = [];
  private readonly dirtyAssign = new Set<string>();
  /** Workers whose assignment still lists finished tasks: rewritten with the next clean-up. */
  private readonly staleAssign = new Set<string>();
  /** Redundant nodes (paths) waiting for the next clean-up. */
  private cleanupNodes: string[] = [];
  private cleanupTimer: NodeJS.Timeout | undefined;
  private cleanupDue = false;
  private readonly inbox: Array<() => void> = [];
  private readonly abort = new AbortController();
  private running = false;
  private again = false;
  private paused = false;
  private ready = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private staleDirTimer: NodeJS.Timeout | undefined;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly counters = { ticks: 0, writes: 0, finished: 0 };

  constructor(
    /** Bound to the session this term was elected on: ZooKeeper refuses its writes once that ends. */
    private readonly client: SessionBoundClient,
    private readonly layout: GridLayout,
    private readonly leadership: Leadership,
    private readonly log: Logger,
    private readonly metrics?: MasterMetrics,
    private readonly keepResults = DEFAULT_KEEP_RESULTS,
  ) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    leadership.signal.addEventListener("abort", this.onLeadershipLost, { once: true });
  }

  private readonly onLeadershipLost = (): void => void this.stop();

  /** Resolves when this term ends (leadership lost, stop(), or a refused fenced write). */
  finished(): Promise<void> {
    return this.done;
  }

  suspend(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // A write in flight when the connection dropped may or may not have happened: re-read versions.
    void this.refreshAssignVersions().then(() => this.kick());
  }

  async start(): Promise<void> {
    this.log("info", "leading: rebuilding state before assigning anything", { epoch: this.leadership.epoch });
    await this.reconcileAfterTakeover();
    this.ready = true;
    this.log("info", "state rebuilt", {
      epoch: this.leadership.epoch,
      ...this.book.counts(),
      finished: this.book.finished.size,
    });
    this.kick();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // A term that ends while leadership holds is followed by another on the same signal.
    this.leadership.signal.removeEventListener("abort", this.onLeadershipLost);
    clearTimeout(this.retryTimer);
    clearTimeout(this.staleDirTimer);
    clearTimeout(this.cleanupTimer);
    this.abort.abort();
    for (const d of this.dirs.values()) d.stop.abort();
    for (const d of this.inboxDirs.values()) d.stop.abort();
    this.resolveDone();
  }

  // ---------------------------------------------------------------------------------------------
  // Takeover

  /**
   * Reads results, assignments, workers, reports and the queue before the first assignment, so a
   * new leader neither loses a task nor hands one out twice. Assignment nodes are rewritten with the
   * new epoch under their read version first: from then on a deposed leader's write to them fails.
   */
  private async reconcileAfterTakeover(): Promise<void> {
    const { client, layout } = this;
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

    const resultNodes = await client.getChildren(layout.results);
    this.resultNodes = [...resultNodes].sort(bySequence);
    await forEachLimit(resultNodes, 32, async (name) => {
      const got = await getOrNull(client, `${layout.results}/${name}`);
      if (!got) return;
      const decoded = decodeResultBatch(got.data);
      if (!decoded.ok) return;
      for (const r of decoded.value.results) this.book.markFinished(r.id);
    });

    const assigned = await client.getChildren(layout.assignDir);
    await forEachLimit(assigned, 32, async (worker) => {
      if (!isValidWorkerName(worker)) {
        this.log("warn", "unexpected node under assign; ignoring it", { node: worker });
        return;
      }
      const path = layout.assign(worker);
      const got = await getOrNull(client, path);
      if (!got) return;
      this.assignVersions.set(worker, got.stat.version);
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

    // Fence: rewrite every assignment under the version we read, with our epoch.
    for (const worker of this.assignVersions.keys()) this.dirtyAssign.add(worker);

    // Live workers, the queue and the reports arrive through their watches; the first yield of each
    // is the current state, so the takeover read and the steady state are one code path.
    const firstWorkers = this.follow(layout.workers, (c) => this.onWorkers(c.children));
    const firstQueue = this.follow(layout.queue, (c) => this.onQueue(c.added, c.removed));
    const firstReports = this.follow(layout.reports, (c) => this.onReportDirs(c.added, c.removed));
    const firstInbox = this.follow(layout.inbox, (c) => this.onInboxDirs(c.added, c.removed));
    await Promise.all([firstWorkers, firstQueue, firstReports, firstInbox]);
    this.drainInbox();
    this.book.attachAssigned();
    // Cancel requests last: they apply to the tasks rebuilt above.
    await this.follow(layout.cancel, (c) => this.onCancel(c.added, c.removed));
    this.drainInbox();
  }

  /**
   * Consumes a children watch; `handle` runs for each change. Resolves once the first change (the
   * current state) has been fully handled.
   */
  private follow(
    path: string,
    handle: (c: { children: string[]; added: string[]; removed: string[] }) => Promise<void>,
    options: { settleMs?: number; stop?: AbortSignal } = {},
  ): Promise<void> {
    const signal = options.stop ? AbortSignal.any([this.abort.signal, options.stop]) : this.abort.signal;
    let first = true;
    return new Promise<void>((resolve, reject) => {
      void (async () => {
        try {
          for await (const change of this.client.watchChildren(path, {
            signal,
            settleMs: options.settleMs ?? 0,
          })) {
            await handle(change);
            if (first) {
              first = false;
              resolve();
            }
            this.kick();
          }
          resolve();
        } catch (err) {
          if (first) reject(err);
          else this.fail(err);
        }
      })();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs (watch handlers read what changed, then queue a state change for the next step)

  private async onWorkers(children: string[]): Promise<void> {
    const seen = new Map<string, LiveWorker>();
    await forEachLimit(children, 32, async (name) => {
      // Any client can create nodes here: a name that is no worker name, or a node that no session
      // owns (persistent), is not a worker, and must not reach layout.worker() or an assignment.
      if (!isValidWorkerName(name)) {
        this.log("warn", "unexpected node under workers; ignoring it", { node: name });
        return;
      }
      const got = await getOrNull(this.client, this.layout.worker(name));
      if (!got) return;
      const reg = decodeWorkerRegistration(got.data);
      const session = got.stat.ephemeralOwner;
      if (session === "0") {
        this.log("warn", "worker registration is not ephemeral; ignoring it", { worker: name });
        return;
      }
      if (!reg.ok) {
        this.log("warn", "worker registration unreadable; ignoring that worker", {
          worker: name,
          error: reg.error.message,
        });
        return;
      }
      seen.set(name, { session, capacity: reg.value.capacity, labels: reg.value.labels });
    });
    this.inbox.push(() => {
      for (const [name, w] of this.live) {
        if (seen.get(name)?.session !== w.session) {
          this.book.removeWorker(name);
          this.dirtyAssign.add(name);
          this.log("info", "worker gone", { worker: name, session: w.session });
        }
      }
      for (const [name, w] of seen) {
        this.seenSessions.add(`${name}@${w.session}`);
        const before = this.live.get(name);
        if (before?.session !== w.session)
          this.log("info", "worker joined", { worker: name, session: w.session, capacity: w.capacity });
        this.book.setWorker(name, w.session, w.capacity, w.labels);
        if (before?.session !== w.session) this.dirtyAssign.add(name);
      }
      this.live.clear();
      for (const [name, w] of seen) this.live.set(name, w);
    });
  }

  private async onQueue(added: string[], removed: string[]): Promise<void> {
    for (const name of removed) this.seenQueueNodes.delete(name);
    const fresh = added.filter((n) => !this.seenQueueNodes.has(n));
    for (const n of fresh) this.seenQueueNodes.add(n);
    await forEachLimit(fresh, 32, async (name) => {
      const path = `${this.layout.queue}/${name}`;
      const got = await getOrNull(this.client, path);
      if (!got) return;
      const seq = parseSequence(name) ?? 0;
      const decoded = decodeSubmitBatch(got.data);
      this.inbox.push(() => {
        if (!decoded.ok) {
          // The node as a whole is unreadable: reject every task it names, or the node itself.
          const reason = `queue node ${name}: ${decoded.error.message}`;
          if (decoded.ids.length === 0) this.reject(unnamedTaskId(name, 0), reason);
          decoded.ids.forEach((id, index) => {
            this.reject(id ?? unnamedTaskId(name, index), reason);
          });
          this.book.drainedQueueNodes.add(name);
          return;
        }
        const good = [];
        for (const t of decoded.tasks) {
          if (t.ok) good.push(t.task);
          else this.reject(t.id ?? unnamedTaskId(name, t.index), t.error.message);
        }
        this.book.addQueueNode(name, seq, good, decoded.batch.submittedAt, decoded.batch.requeued);
      });
    });
  }

  private async onCancel(added: string[], removed: string[]): Promise<void> {
    for (const name of removed) this.seenCancelNodes.delete(name);
    const fresh = added.filter((n) => !this.seenCancelNodes.has(n)).sort(bySequence);
    for (const n of fresh) this.seenCancelNodes.add(n);
    const requests = await Promise.all(
      fresh.map(async (name) => ({
        name,
        got: await getOrNull(this.client, `${this.layout.cancel}/${name}`),
      })),
    );
    await this.findDirectTasks(requests);
    // During takeover (not ready yet) a cancelled id found nowhere else was taken out of its worker's
    // assignment by the previous leader: it ends as cancelled now.
    const takeover = !this.ready;
    this.inbox.push(() => {
      for (const { name, got } of requests) {
        if (!got) continue;
        const decoded = decodeCancelRequest(got.data);
        if (!decoded.ok) {
          this.log("warn", "unreadable cancel request; dropped", {
            node: name,
            error: decoded.error.message,
          });
          this.cancelNodes.set(name, new Set());
          continue;
        }
        const waiting = new Set<string>();
        const accepted = new Set(decoded.value.accepted ?? []);
        for (const id of decoded.value.ids) {
          if (takeover && accepted.has(id) && !this.book.isKnown(id)) {
            this.publish(
              finalStatus({ id, spec: { id }, attemptsUsed: 0, submittedAt: 0 } as never, "cancelled", {
                reason: "cancelled",
                finishedAt: Date.now(),
              }),
            );
            this.book.markFinished(id);
            continue;
          }
          const { status, worker, direct } = this.book.cancel(id, Date.now());
          if (status) this.publish(status);
          if (direct) {
            this.directCancels.push({ id, ...direct });
            waiting.add(id);
            this.log("info", "cancelling a direct task its worker holds", { task: id });
          }
          if (worker) {
            this.dirtyAssign.add(worker);
            waiting.add(id);
            this.log("info", "cancelling a task its worker holds", { task: id, worker });
          }
        }
        this.cancelNodes.set(name, waiting);
        const newlyAccepted = [...waiting].filter((id) => !accepted.has(id));
        if (newlyAccepted.length > 0) {
          this.cancelAccepts.set(name, {
            request: { ...decoded.value, accepted: [...accepted, ...newlyAccepted] },
            version: got.stat.version,
          });
        }
      }
    });
  }

  private publish(status: TaskStatus): void {
    this.pendingResults.push(status);
    this.log("info", "task finished", {
      task: status.id,
      state: status.state,
      worker: status.worker,
      attempt: status.attempt,
    });
  }

  private reject(candidate: string, why: string): void {
    // A queue node's name may not make a valid id (any client names its nodes): fall back to one
    // that is, and keep the reason within its limit: readers refuse a result batch holding either.
    const id = isValidTaskId(candidate) ? candidate : fallbackTaskId(candidate);
    const reason = headBytes(why, MAX_MESSAGE_BYTES);
    if (this.book.isKnown(id)) return;
    this.log("warn", "task rejected", { task: id, reason });
    this.pendingResults.push(
      finalStatus({ id, spec: { id }, attemptsUsed: 0, submittedAt: Date.now() } as never, "rejected", {
        reason,
        finishedAt: Date.now(),
      }),
    );
    this.book.markFinished(id);
  }

  private onReportDirs(added: string[], removed: string[]): Promise<void> {
    return this.followSessionDirs(
      this.layout.reports,
      "reports",
      this.dirs,
      added,
      removed,
      (parsed, stop): SessionDir => ({ ...parsed, applied: new Set(), stop }),
      (name, dir) => (c) => this.onReports(name, dir, c.added),
    );
  }

  /**
   * Keeps a children watch on each `<worker>@<session>` dir under `parent` (report dirs, inboxes): ends
   * the watches of dirs that are gone, starts one for each new dir, and resolves once each new one has
   * been read. A dir gone before its first read is skipped.
   */
  private async followSessionDirs<D extends { stop: AbortController }>(
    parent: string,
    what: string,
    dirs: Map<string, D>,
    added: string[],
    removed: string[],
    make: (parsed: { worker: string; session: string }, stop: AbortController) => D,
    handler: (
      name: string,
      dir: D,
    ) => (c: { children: string[]; added: string[]; removed: string[] }) => Promise<void>,
    settleMs = 0,
  ): Promise<void> {
    for (const name of removed) {
      dirs.get(name)?.stop.abort();
      dirs.delete(name);
    }
    const firsts: Promise<void>[] = [];
    for (const name of added) {
      if (dirs.has(name)) continue;
      const parsed = this.layout.parseReportDir(name);
      if (!parsed) {
        this.log("warn", `unexpected node under ${what}; ignoring it`, { node: name });
        continue;
      }
      const dir = make(parsed, new AbortController());
      dirs.set(name, dir);
      firsts.push(
        this.follow(`${parent}/${name}`, handler(name, dir), { settleMs, stop: dir.stop.signal }).catch(
          (err) => {
            if (!errors.isNoNode(err)) throw err;
          },
        ),
      );
    }
    await Promise.all(firsts);
  }

  private async onReports(dirName: string, dir: SessionDir, added: string[]): Promise<void> {
    const fresh = added.filter((n) => !dir.applied.has(n)).sort(bySequence);
    const reports = await Promise.all(
      fresh.map(async (name) => {
        const got = await getOrNull(this.client, `${this.layout.reports}/${dirName}/${name}`);
        return { name, got };
      }),
    );
    this.inbox.push(() => {
      for (const { name, got } of reports) {
        if (dir.applied.has(name)) continue;
        dir.applied.add(name);
        this.reportNodesToDelete.push(`${this.layout.reports}/${dirName}/${name}`);
        if (!got) continue;
        const decoded = decodeWorkerReport(got.data);
        if (!decoded.ok) {
          this.log("warn", "unreadable worker report; dropped", {
            worker: dir.worker,
            node: name,
            error: decoded.error.message,
          });
          continue;
        }
        this.applyReport(dir, decoded.value);
      }
    });
  }

  private applyReport(dir: { worker: string; session: string }, report: WorkerReport): void {
    // Before the updates: a task this report hands back must not go to the same stopping worker.
    if (report.draining === true && this.book.markDraining(dir.worker, dir.session))
      this.log("info", "worker stopping; it gets no new task", { worker: dir.worker, session: dir.session });
    for (const u of report.updates) {
      const before = this.book.tasks.get(u.id);
      // A direct task is in no assignment: its end leaves the worker's assignment as it is. One reported
      // here, not answered over its node (its worker could not write there), leaves that node to delete.
      const inAssignment = before?.direct === undefined;
      if (
        before?.direct &&
        u.state !== "running" &&
        before.worker === dir.worker &&
        before.session === dir.session
      )
        this.reportNodesToDelete.push(before.direct.path);
      const status = this.book.applyUpdate(dir.worker, dir.session, u);
      if (status) {
        this.pendingResults.push(status);
        if (inAssignment) this.staleAssign.add(dir.worker);
        this.scheduleCleanup();
        this.log("info", "task finished", {
          task: u.id,
          state: status.state,
          worker: dir.worker,
          attempt: u.attempt,
        });
      } else if (u.state === "returned" && before && this.book.tasks.get(u.id)?.state === "queued") {
        if (inAssignment) this.dirtyAssign.add(dir.worker);
        this.log("info", "task handed back", { task: u.id, worker: dir.worker });
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Direct tasks (R/inbox)

  private onInboxDirs(added: string[], removed: string[]): Promise<void> {
    return this.followSessionDirs(
      this.layout.inbox,
      "inbox",
      this.inboxDirs,
      added,
      removed,
      (parsed, stop): InboxDir => ({ ...parsed, followed: new Set(), stop }),
      (name, dir) => (c) => this.onInboxTasks(name, dir, c.added, c.removed),
      DIRECT_SETTLE_MS,
    );
  }

  /**
   * A cancel request may name a direct task this leader has not read yet (an inbox is listed a moment
   * after it changes): the inboxes are listed now, and such tasks read before the request is handled.
   */
  private async findDirectTasks(requests: Array<{ got: { data: Buffer } | null }>): Promise<void> {
    const unknown = new Set<string>();
    for (const { got } of requests) {
      const decoded = got ? decodeCancelRequest(got.data) : undefined;
      if (decoded?.ok) for (const id of decoded.value.ids) if (!this.book.isKnown(id)) unknown.add(id);
    }
    if (unknown.size === 0) return;
    // Listed afresh: an inbox its watch has not reported yet may hold one.
    const dirs = await this.client.getChildren(this.layout.inbox).catch((err) => {
      if (errors.isNoNode(err)) return [] as string[];
      throw err;
    });
    await forEachLimit(dirs, 32, async (dirName) => {
      const parsed = this.layout.parseReportDir(dirName);
      if (!parsed) return;
      // A dir not followed yet gets a stand-in; its watch reads the same nodes again later, harmlessly.
      const dir = this.inboxDirs.get(dirName) ?? {
        ...parsed,
        followed: new Set(),
        stop: new AbortController(),
      };
      const names = await this.client.getChildren(`${this.layout.inbox}/${dirName}`).catch((err) => {
        if (errors.isNoNode(err)) return [] as string[];
        throw err;
      });
      const wanted = names.filter((n) => unknown.has(n) && !dir.followed.has(n));
      for (const n of wanted) dir.followed.add(n);
      await Promise.all(wanted.map((n) => this.readDirect(dirName, dir, n)));
    });
  }

  /** Reads each new node of an inbox; resolves once each one's current data is handled. */
  private async onInboxTasks(
    dirName: string,
    dir: InboxDir,
    added: string[],
    removed: string[],
  ): Promise<void> {
    for (const n of removed) dir.followed.delete(n);
    const fresh = added.filter((n) => !dir.followed.has(n));
    for (const n of fresh) dir.followed.add(n);
    await Promise.all(fresh.map((name) => this.readDirect(dirName, dir, name)));
  }

  /**
   * Reads one direct task's node. Its dir is listed a moment after a change (see onInboxDirs), so the
   * worker has usually answered by then and this one read is all the leader needs; a task still waiting
   * is followed through a data watch until it is answered or deleted.
   */
  private async readDirect(dirName: string, dir: InboxDir, name: string, follow = true): Promise<void> {
    const path = `${this.layout.inbox}/${dirName}/${name}`;
    const got = await getOrNull(this.client, path);
    if (!got) {
      this.inbox.push(() => this.onDirectGone(dir, name));
      return;
    }
    const node = decodeInboxNode(name, got.data);
    this.inbox.push(() => this.onDirect(dir, name, path, node, got.stat.version, got.stat.ctime));
    if (follow && node.kind === "task" && got.stat.version === 0) void this.watchDirect(dir, name, path);
  }

  private async watchDirect(dir: InboxDir, name: string, path: string): Promise<void> {
    try {
      for await (const change of this.client.watchData(path, {
        signal: this.abort.signal,
        untilGone: true,
      })) {
        if (change === null) {
          this.inbox.push(() => this.onDirectGone(dir, name));
          this.kick();
          return;
        }
        const node = decodeInboxNode(name, change.data);
        const { version, ctime } = change.stat;
        this.inbox.push(() => this.onDirect(dir, name, path, node, version, ctime));
        this.kick();
        if (node.kind !== "task" || version !== 0) return;
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private onDirect(
    dir: InboxDir,
    name: string,
    path: string,
    node: ReturnType<typeof decodeInboxNode>,
    version: number,
    ctime: number,
  ): void {
    const mine = this.book.tasks.get(name)?.direct?.path === path;
    switch (node.kind) {
      case "task": {
        if (!mine && version > 0 && this.book.isKnown(name)) {
          // A decline the worker also reported (it is stopping), applied from that report already.
          this.reportNodesToDelete.push(path);
          return;
        }
        if (!mine) {
          const task = { path, version: 0 };
          if (!this.book.addDirect(dir.worker, dir.session, node.task, node.submittedAt, ctime, task)) {
            this.log("warn", "direct task under an id the grid knows; dropped", {
              task: name,
              worker: dir.worker,
            });
            this.reportNodesToDelete.push(path);
            return;
          }
        }
        if (version > 0) {
          // Written back unchanged: the worker declined it. It is queued again, its attempt unused.
          const at = Date.now();
          const update = { id: name, attempt: 1, state: "returned" as const, at };
          this.applyReport(dir, { v: 1, worker: dir.worker, session: dir.session, updates: [update] });
          this.reportNodesToDelete.push(path);
        }
        return;
      }
      case "outcome": {
        const { status } = node;
        if (status.worker !== dir.worker || (!mine && this.book.isKnown(name))) {
          // Another session's name, or an id the grid knows otherwise: not this task's result.
          this.log("warn", "direct task answer dropped", { task: name, worker: dir.worker });
          this.reportNodesToDelete.push(path);
          return;
        }
        // The answer is the result (also when no leader read the task before it was answered).
        this.book.markFinished(name);
        this.directResults.push(status);
        this.directNodes.push(path);
        this.scheduleCleanup();
        this.log("info", "task finished", {
          task: name,
          state: status.state,
          worker: dir.worker,
          attempt: 1,
        });
        return;
      }
      case "invalid": {
        const why = `inbox node ${dir.worker}@${dir.session}/${name}: ${node.error.message}`;
        if (!mine) this.reject(node.id, why);
        else {
          // Its task was read before someone overwrote it: handed out again.
          const status = this.book.loseDirect(name, why);
          if (status) this.publish(status);
        }
        this.reportNodesToDelete.push(path);
        return;
      }
    }
  }

  /** A direct task's node was deleted: by the clean-up (nothing to do), a cancel, or someone else. */
  private onDirectGone(dir: InboxDir, name: string): void {
    dir.followed.delete(name);
    const entry = this.book.tasks.get(name);
    if (!entry?.direct || entry.worker !== dir.worker || entry.session !== dir.session || entry.cancelling)
      return;
    const status = this.book.loseDirect(name, "its direct task node was deleted");
    if (status) this.publish(status);
    else this.log("warn", "direct task node deleted before its result; queued again", { task: name });
  }

  /** Deletes cancelled direct tasks' nodes: one deleted before any answer ends as cancelled. */
  private async deleteCancelledDirect(
    cancels: Array<{ id: string; path: string; version: number }>,
  ): Promise<void> {
    await Promise.all(
      cancels.map(async ({ id, path, version }) => {
        this.guard();
        this.counters.writes += 1;
        try {
          await this.client.delete(path, version);
        } catch (err) {
          // Answered first: the answer, read through the node's watch, stands.
          if (errors.isBadVersion(err)) return;
          if (!errors.isNoNode(err)) throw err;
        }
        const status = this.book.cancelledDirect(id, Date.now());
        if (status) this.publish(status);
      }),
    );
  }

  /**
   * Deletes a fenced session's inbox: each node already read, then the dir. A task put there after it
   * was listed makes the dir's delete fail; that task is read through the dir's watch and handed out
   * again with the next fence.
   */
  private async deleteInboxDir(dirName: string, names: string[]): Promise<void> {
    const dirPath = `${this.layout.inbox}/${dirName}`;
    await Promise.all(names.map((n) => this.deleteQuietly(`${dirPath}/${n}`)));
    try {
      this.counters.writes += 1;
      await this.client.delete(dirPath);
      this.inboxDirs.get(dirName)?.stop.abort();
      this.inboxDirs.delete(dirName);
    } catch (err) {
      if (errors.isNoNode(err)) return;
      if (!errors.isNotEmpty(err)) throw err;
    }
  }

  private drainInbox(): void {
    for (const apply of this.inbox.splice(0)) apply();
  }

  // ---------------------------------------------------------------------------------------------
  // The step loop

  private kick(): void {
    if (!this.ready || this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void (async () => {
      try {
        do {
          this.again = false;
          if (this.paused || this.stopped) break;
          await this.step();
        } while (this.again && !this.stopped);
      } catch (err) {
        this.onStepError(err);
      } finally {
        this.running = false;
      }
    })();
  }

  private onStepError(err: unknown): void {
    if (this.stopped) return;
    if (err instanceof NotLeaderError || errors.isBadVersion(err) || errors.isSessionExpired(err)) {
      this.fail(err);
      return;
    }
    // Connection trouble: the step is repeated once the connection is back (resume()) or shortly.
    this.log("warn", "step failed; retrying", { error: String(err) });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      void this.refreshAssignVersions().then(() => this.kick());
    }, 200);
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.log("error", "leader term ends", { error: String(err) });
    void this.stop();
  }

  private async step(): Promise<void> {
    this.counters.ticks += 1;
    this.drainInbox();
    const toDeleteDirs = await this.fenceDeadSessions();
    this.drainInbox();

    const homeless = this.book.takeHomeless();
    const now = Date.now();
    const onAssign = this.metrics
      ? (e: { submittedAt: number }) => this.metrics?.taskAssigned(e.submittedAt, now)
      : undefined;
    for (const w of this.book.schedule(now, onAssign)) this.dirtyAssign.add(w);

    // A direct task's answer is durable in its node, and its submitter has read it there: its result
    // waits for the clean-up, so that a stream of lone tasks shares result writes.
    const cleanup =
      this.cleanupDue ||
      this.cleanupNodes.length >= CLEANUP_BATCH ||
      this.directResults.length >= CLEANUP_BATCH;
    // A fenced inbox is deleted after this step's writes: its answers' results go with them.
    if ((cleanup || toDeleteDirs.inboxes.length > 0) && this.directResults.length > 0) {
      this.pendingResults.push(...this.directResults.splice(0));
      this.reportNodesToDelete.push(...this.directNodes.splice(0));
    }
    // Results and requeued tasks become durable before any assignment that drops them is written.
    const results = this.pendingResults.splice(0);
    const writes: Promise<unknown>[] = [];
    if (results.length > 0) writes.push(this.writeResults(results));
    if (homeless.length > 0) writes.push(this.writeRequeue(homeless));
    const accepts = [...this.cancelAccepts];
    this.cancelAccepts.clear();
    for (const [name, accept] of accepts)
      writes.push(this.writeCancelAccept(name, accept.request, accept.version));
    try {
      await Promise.all(writes);
    } catch (err) {
      this.pendingResults.unshift(...results);
      for (const [name, accept] of accepts)
        if (!this.cancelAccepts.has(name)) this.cancelAccepts.set(name, accept);
      throw err;
    }
    // Cancelled direct tasks: their `accepted` is durable now, so their nodes may go.
    const directCancels = this.directCancels.splice(0);
    if (directCancels.length > 0) {
      try {
        await this.deleteCancelledDirect(directCancels);
      } catch (err) {
        this.directCancels.unshift(...directCancels);
        throw err;
      }
      if (this.pendingResults.length > 0) this.again = true;
    }

    if (cleanup) for (const w of this.staleAssign) this.dirtyAssign.add(w);
    const dirty = [...this.dirtyAssign];
    this.dirtyAssign.clear();
    for (const w of dirty) this.staleAssign.delete(w);
    try {
      await Promise.all(dirty.map((w) => this.writeAssignment(w)));
    } catch (err) {
      for (const w of dirty) this.dirtyAssign.add(w);
      throw err;
    }

    // Only now are the inputs of this step redundant.
    for (const p of this.reportNodesToDelete.splice(0)) this.cleanupNodes.push(p);
    for (const n of this.book.drainedQueueNodes) this.cleanupNodes.push(`${this.layout.queue}/${n}`);
    this.book.drainedQueueNodes.clear();
    if (cleanup) this.cleanupDue = false;
    const redundant = cleanup ? this.cleanupNodes.splice(0) : [];
    if (this.cleanupNodes.length > 0) this.scheduleCleanup();
    const cancelNodes: string[] = [];
    for (const [name, waiting] of this.cancelNodes) {
      for (const id of waiting) if (!this.book.tasks.has(id)) waiting.delete(id);
      if (waiting.size === 0) {
        cancelNodes.push(name);
        this.cancelNodes.delete(name);
      }
    }
    // Clean-up only: the next step need not wait for it (a lost delete is redone on takeover).
    void Promise.all([
      ...cancelNodes.map((n) => this.deleteQuietly(`${this.layout.cancel}/${n}`)),
      ...redundant.map((p) =>
        this.deleteQuietly(p).catch((err: unknown) => {
          // Kept for the next clean-up: no later step would find it otherwise in this term.
          this.cleanupNodes.push(p);
          this.scheduleCleanup();
          throw err;
        }),
      ),
      ...toDeleteDirs.reports.map((d) => this.deleteDir(d)),
      ...toDeleteDirs.inboxes.map((d) => this.deleteInboxDir(d.dirName, d.names)),
    ]).catch((err) => this.onStepError(err));
  }

  private scheduleCleanup(): void {
    if (this.cleanupTimer || this.stopped) return;
    this.cleanupTimer = setTimeout(() => {
      this.cleanupTimer = undefined;
      this.cleanupDue = true;
      this.kick();
    }, CLEANUP_DELAY_MS);
  }

  /**
   * Sessions that no longer hold a worker's registration are fenced: their remaining reports are
   * applied, their tasks handed out again (or failed past maxAttempts), and their report dir is
   * deleted after this step's writes, so a worker that wakes up from a pause cannot publish into it.
   */
  private async fenceDeadSessions(): Promise<{
    reports: string[];
    inboxes: Array<{ dirName: string; names: string[] }>;
  }> {
    const suspects = new Map<string, { worker: string; session: string; holdsTasks: boolean }>();
    for (const [name, d] of [...this.dirs, ...this.inboxDirs]) {
      if (this.live.get(d.worker)?.session !== d.session)
        suspects.set(name, { worker: d.worker, session: d.session, holdsTasks: false });
    }
    for (const { worker, session } of this.book.holdingSessions()) {
      if (this.live.get(worker)?.session !== session) {
        suspects.set(`${worker}@${session}`, { worker, session, holdsTasks: true });
      }
    }
    if (suspects.size === 0) return { reports: [], inboxes: [] };
    const fenced: string[] = [];
    const fencedInboxes: Array<{ dirName: string; names: string[] }> = [];
    await Promise.all(
      [...suspects].map(async ([key, { worker, session, holdsTasks }]) => {
        // A fresh read: the watch may lag behind a worker that just registered this session.
        const stat = await this.client.exists(this.layout.worker(worker));
        if (stat && stat.ephemeralOwner === session) return;
        const dirName = `${worker}@${session}`;
        if (!holdsTasks && !this.seenSessions.has(key) && !(await this.dirIsStale(dirName))) return;
        const dir = this.dirs.get(dirName);
        if (dir) {
          const names = await this.client.getChildren(`${this.layout.reports}/${dirName}`).catch((err) => {
            if (errors.isNoNode(err)) return [] as string[];
            throw err;
          });
          await this.onReports(dirName, dir, names);
          this.drainInbox();
          fenced.push(dirName);
        }
        const inbox = this.inboxDirs.get(dirName);
        if (inbox) {
          // Every node is read (answers applied, tasks held) before the session's tasks are handed out.
          const names = await this.client.getChildren(`${this.layout.inbox}/${dirName}`).catch((err) => {
            if (errors.isNoNode(err)) return [] as string[];
            throw err;
          });
          await Promise.all(names.map((n) => this.readDirect(dirName, inbox, n, false)));
          this.drainInbox();
          fencedInboxes.push({ dirName, names });
        }
        for (const status of this.book.loseSession(worker, session)) {
          this.pendingResults.push(status);
          this.log("warn", "task failed: worker lost", { task: status.id, worker, attempt: status.attempt });
        }
        this.log("info", "fenced worker session", { worker, session, key });
      }),
    );
    return { reports: fenced, inboxes: fencedInboxes };
  }

  /**
   * A report dir of a session this term never saw registered and that holds no task may belong to a
   * worker between creating its dir and registering: it is fenced only once it is older than any
   * session could live unregistered. A retry is scheduled for then.
   */
  private async dirIsStale(dirName: string): Promise<boolean> {
    // A session's report dir, or its inbox when that is all it left.
    const stat =
      (await this.client.exists(`${this.layout.reports}/${dirName}`)) ??
      (await this.client.exists(`${this.layout.inbox}/${dirName}`));
    if (!stat) return false;
    const age = Date.now() - stat.ctime;
    if (age >= UNREGISTERED_DIR_GRACE_MS) return true;
    if (!this.staleDirTimer) {
      this.staleDirTimer = setTimeout(
        () => {
          this.staleDirTimer = undefined;
          this.kick();
        },
        UNREGISTERED_DIR_GRACE_MS - age + 100,
      );
      this.staleDirTimer.unref();
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  private guard(): void {
    if (this.stopped || this.leadership.signal.aborted) throw new NotLeaderError("leadership ended");
  }

  private async writeResults(results: TaskStatus[]): Promise<void> {
    const batches = encodeResultBatches(results, this.leadership.epoch);
    await Promise.all(
      batches.map(async (data) => {
        this.guard();
        this.counters.writes += 1;
        const path = await this.client.createProtected(
          `${this.layout.results}/${this.layout.resultNodePrefix}`,
          data,
          "persistent-sequential",
        );
        this.resultNodes.push(path.slice(path.lastIndexOf("/") + 1));
      }),
    );
    this.counters.finished += results.length;
    this.pruneResults();
    for (const r of results) this.metrics?.resultWritten(r);
  }

  /** Deletes the oldest result nodes beyond `keepResults`, without holding up the step. */
  private pruneResults(): void {
    if (this.resultNodes.length <= this.keepResults) return;
    this.resultNodes.sort(bySequence);
    const old = this.resultNodes.splice(0, this.resultNodes.length - this.keepResults);
    void Promise.all(old.map((n) => this.deleteQuietly(`${this.layout.results}/${n}`))).catch((err) =>
      this.onStepError(err),
    );
  }

  private async writeRequeue(entries: ReturnType<TaskBook["takeHomeless"]>): Promise<void> {
    const requeued: NonNullable<SubmitBatch["requeued"]> = {};
    for (const e of entries) requeued[e.id] = { attemptsUsed: e.attemptsUsed, submittedAt: e.submittedAt };
    const batch: SubmitBatch = {
      v: 1,
      batchId: newBatchId(),
      submittedAt: Date.now(),
      submitter: `leader@${this.leadership.epoch}`,
      tasks: entries.map((e) => e.spec),
      requeued,
    };
    this.guard();
    this.counters.writes += 1;
    const path = await this.client.createProtected(
      `${this.layout.queue}/${this.layout.queueNodePrefix}`,
      encodeSubmitBatch(batch),
      "persistent-sequential",
    );
    const node = path.slice(path.lastIndexOf("/") + 1);
    this.seenQueueNodes.add(node);
    this.book.rehome(node, entries);
  }

  private async writeCancelAccept(name: string, request: CancelRequest, version: number): Promise<void> {
    this.guard();
    this.counters.writes += 1;
    try {
      await this.client.set(`${this.layout.cancel}/${name}`, encodeCancelRequest(request), version);
    } catch (err) {
      if (!errors.isNoNode(err)) throw err;
    }
  }

  private async writeAssignment(worker: string): Promise<void> {
    const path = this.layout.assign(worker);
    const slot = this.book.workers.get(worker);
    const version = this.assignVersions.get(worker);
    this.guard();
    this.counters.writes += 1;
    if (!slot) {
      if (version === undefined) return;
      try {
        await this.client.delete(path, version);
      } catch (err) {
        if (!errors.isNoNode(err)) throw err;
      }
      this.assignVersions.delete(worker);
      return;
    }
    // Built here from tasks validated when they were read from the queue: no second validation.
    const head = JSON.stringify({ v: 1, epoch: this.leadership.epoch, worker, session: slot.session });
    const data = Buffer.from(`${head.slice(0, -1)},"tasks":${this.book.assignmentJson(worker)}}`, "utf8");
    if (version === undefined) {
      try {
        await this.client.create(path, data, "persistent");
        this.assignVersions.set(worker, 0);
        return;
      } catch (err) {
        if (!errors.isNodeExists(err)) throw err;
        throw new NotLeaderError(`assignment of ${worker} was created by someone else`);
      }
    }
    try {
      const stat = await this.client.set(path, data, version);
      this.assignVersions.set(worker, stat.version);
    } catch (err) {
      if (!errors.isBadVersion(err)) throw err;
      await this.writeOverForeignAssignment(worker, data);
    }
  }

  /**
   * Someone else wrote `R/assign/<worker>`. A newer leader's epoch there means this term is over.
   * Anything else (another client's garbage, which no worker can read) is written over under the version
   * just read, keeping this term's state: a rebuild would read that garbage and lose the worker's tasks.
   * Its writes are bound to this leader's session, so a deposed leader still cannot.
   */
  private async writeOverForeignAssignment(worker: string, data: Buffer): Promise<void> {
    const path = this.layout.assign(worker);
    const got = await getOrNull(this.client, path);
    const decoded = got ? decodeAssignment(got.data) : undefined;
    if (decoded?.ok && decoded.value.epoch > this.leadership.epoch) {
      throw new NotLeaderError(`assignment of ${worker} was written by epoch ${decoded.value.epoch}`);
    }
    this.log("warn", "assignment node changed by another client; writing it again", { worker });
    this.guard();
    if (!got) {
      this.assignVersions.delete(worker);
      this.dirtyAssign.add(worker);
      return;
    }
    const stat = await this.client.set(path, data, got.stat.version);
    this.assignVersions.set(worker, stat.version);
  }

  /** After a connection loss: learn the versions of assignment nodes whose last write may have landed. */
  private async refreshAssignVersions(): Promise<void> {
    if (this.stopped) return;
    try {
      await Promise.all(
        [...this.assignVersions.keys()].map(async (worker) => {
          const got = await getOrNull(this.client, this.layout.assign(worker));
          if (!got) {
            this.assignVersions.delete(worker);
            this.dirtyAssign.add(worker);
            return;
          }
          const decoded = decodeAssignment(got.data);
          if (decoded.ok && decoded.value.epoch > this.leadership.epoch) {
            throw new NotLeaderError(`assignment of ${worker} was written by epoch ${decoded.value.epoch}`);
          }
          this.assignVersions.set(worker, got.stat.version);
          this.dirtyAssign.add(worker);
        }),
      );
    } catch (err) {
      if (err instanceof NotLeaderError || errors.isSessionExpired(err)) this.fail(err);
      else this.log("warn", "could not refresh assignment versions", { error: String(err) });
    }
  }

  private async deleteQuietly(path: string): Promise<void> {
    try {
      this.counters.writes += 1;
      await this.client.delete(path);
    } catch (err) {
      if (!errors.isNoNode(err)) throw err;
    }
  }

  private async deleteDir(dirName: string): Promise<void> {
    this.dirs.get(dirName)?.stop.abort();
    this.counters.writes += 1;
    await this.client.deleteRecursive(`${this.layout.reports}/${dirName}`);
    this.dirs.delete(dirName);
  }

  /** Counters of this term; the task counts are computed on demand (a scan of the task table). */
  get stats(): LeaderStats {
    const c = this.book.counts();
    return {
      epoch: this.leadership.epoch,
      ...c,
      ...this.counters,
      workers: this.book.workers.size,
    };
  }
}

/** `queue-<16 hex digits of sha256(candidate)>`, with the candidate's `.<index>` suffix kept. */
function fallbackTaskId(candidate: string): string {
  const dot = candidate.lastIndexOf(".");
  const index = dot >= 0 && /^\d+$/.test(candidate.slice(dot + 1)) ? candidate.slice(dot) : "";
  return `queue-${createHash("sha256").update(candidate).digest("hex").slice(0, 16)}${index}`;
}

function bySequence(a: string, b: string): number {
  return (parseSequence(a) ?? 0) - (parseSequence(b) ?? 0);
}

async function getOrNull(client: SessionBoundClient, path: string) {
  try {
    return await client.get(path);
  } catch (err) {
    if (errors.isNoNode(err)) return null;
    throw err;
  }
}

/** Runs `fn` over items with at most `limit` in flight: pipelined reads without an unbounded burst. */
export async function forEachLimit<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}
