import { errors } from "@zkgrid/core";
import type { TaskStatus } from "@zkgrid/protocol";
import { decodeAssignment, encodeResultBatches, parseSequence } from "@zkgrid/protocol";
import type { MasterMetrics } from "../metrics.js";
import { FinishedTally } from "./finished-tally.js";
import { type KnownResultNode, ResultPlaces } from "./result-places.js";
import { getOrNull, NotLeaderError, type Term } from "./term.js";

/** Result nodes kept under R/results and R/replies together; older ones are deleted. */
export const DEFAULT_KEEP_RESULTS = 5000;

/**
 * Clean-up (deleting applied report nodes and drained queue nodes, dropping finished tasks from an
 * assignment) waits this long, or for CLEANUP_BATCH items, so that a stream of lone tasks shares its
 * writes and the watch events they cause. No task waits for it: it only removes what is redundant.
 */
const CLEANUP_DELAY_MS = 50;
export const CLEANUP_BATCH = 1000;

/** Whether the clean-up waits for its timer, or the next step does it. */
type Cleanup = "idle" | "scheduled" | "due";

/**
 * The writes of a term: results, assignments (fenced by their versions), and the clean-up that
 * deletes what those writes made redundant. Parts of the term queue work here; the step writes it.
 */
export class GridWriter {
  /** Final statuses waiting for the next step's result write. */
  private pendingResults: TaskStatus[] = [];
  /** Where result nodes go, and which are pruned. */
  private readonly places: ResultPlaces;
  private readonly assignVersions = new Map<string, number>();
  private readonly dirtyAssign = new Set<string>();
  /** Workers whose assignment still lists finished tasks: rewritten with the next clean-up. */
  private readonly staleAssign = new Set<string>();
  /** Inputs (report nodes, answered inbox nodes) redundant once this step's writes are done. */
  private spent: string[] = [];
  /** Redundant nodes (paths) waiting for the next clean-up. */
  private cleanupNodes: string[] = [];
  private cleanup: Cleanup = "idle";
  private cleanupTimer: NodeJS.Timeout | undefined;
  /** Finished tasks, logged as a count per period at info. */
  private readonly tally: FinishedTally;

  constructor(
    private readonly term: Term,
    private readonly metrics: MasterMetrics | undefined,
    keepResults = DEFAULT_KEEP_RESULTS,
  ) {
    this.tally = new FinishedTally(term.log);
    this.places = new ResultPlaces(term.layout, keepResults);
  }

  /** Takeover: the result nodes already there (R/results and every reply dir), oldest first, for pruning. */
  knowResultNodes(nodes: readonly KnownResultNode[]): void {
    this.places.know(nodes);
  }

  /** Takeover: an assignment node read at `version`; it is rewritten (fenced) with this term's epoch. */
  knowAssignment(worker: string, version: number): void {
    this.assignVersions.set(worker, version);
  }

  /** Every assignment read at takeover is rewritten under the version read, with this epoch. */
  fenceAssignments(): void {
    for (const worker of this.assignVersions.keys()) this.dirtyAssign.add(worker);
  }

  /** A final status for the next result write, logged as a finished task (at debug). */
  publish(status: TaskStatus): void {
    this.pendingResults.push(status);
    this.term.log("debug", "task finished", {
      task: status.id,
      state: status.state,
      worker: status.worker,
      attempt: status.attempt,
    });
  }

  /** A final status for the next result write (the caller logs it). */
  addResult(status: TaskStatus): void {
    this.pendingResults.push(status);
  }

  get hasPendingResults(): boolean {
    return this.pendingResults.length > 0;
  }

  /** This worker's assignment is rewritten by the next step. */
  assignmentChanged(worker: string): void {
    this.dirtyAssign.add(worker);
  }

  /** This worker's assignment lists a finished task: it is rewritten with the next clean-up. */
  assignmentStale(worker: string): void {
    this.staleAssign.add(worker);
  }

  /** A node made redundant by this step's writes: deleted with the next clean-up. */
  spend(path: string): void {
    this.spent.push(path);
  }

  scheduleCleanup(): void {
    if (this.cleanup !== "idle" || this.term.isStopped()) return;
    this.cleanup = "scheduled";
    this.cleanupTimer = setTimeout(() => {
      this.cleanupTimer = undefined;
      this.cleanup = "due";
      this.term.kick();
    }, CLEANUP_DELAY_MS);
  }

  /** Whether this step does the clean-up: its timer fired, or enough waits (`more`: others' backlog). */
  cleanupWanted(more: number): boolean {
    return this.cleanup === "due" || this.cleanupNodes.length >= CLEANUP_BATCH || more >= CLEANUP_BATCH;
  }

  takeResults(): TaskStatus[] {
    return this.pendingResults.splice(0);
  }

  /**
   * This step's results in two parts: `first`, for a reply dir that may be gone (a create there may
   * meet NoNode and make the dir), written before the assignments; `beside`, for a place that surely
   * exists, written together with them (see writeResultsAndAssignments).
   */
  splitResults(results: TaskStatus[]): { first: TaskStatus[]; beside: TaskStatus[] } {
    const first: TaskStatus[] = [];
    const beside: TaskStatus[] = [];
    for (const status of results)
      (this.places.hasDir(this.term.book.replyAddressOf(status.id)) ? beside : first).push(status);
    return { first, beside };
  }

  /** A result write failed: its statuses go first in the next one. */
  restoreResults(results: TaskStatus[]): void {
    this.pendingResults.unshift(...results);
  }

  /**
   * Writes the statuses in batches, each batch to its tasks' reply dir (`R/replies/<address>/`), or to
   * `R/results` for tasks without a reply address: a submitter then reads only its own tasks' results.
   */
  async writeResults(results: TaskStatus[]): Promise<void> {
    const { term } = this;
    const byAddress = new Map<string | undefined, TaskStatus[]>();
    for (const status of results) {
      const address = term.book.replyAddressOf(status.id);
      const group = byAddress.get(address);
      if (group) group.push(status);
      else byAddress.set(address, [status]);
    }
    // A group's nodes are known once all are written, oldest first, its ids with the newest: each id
    // is remembered as finished until all of its group's nodes are pruned.
    await Promise.all(
      [...byAddress].map(async ([address, statuses]) => {
        const writes = await Promise.allSettled(
          encodeResultBatches(statuses, term.epoch).map((data) => this.writeResultNode(address, data)),
        );
        // Nodes written are known (for pruning) even when a sibling's write failed.
        const paths = writes.flatMap((w) => (w.status === "fulfilled" ? [w.value] : []));
        paths.sort((a, b) => sequenceOf(a) - sequenceOf(b));
        const last = paths.length - 1;
        for (const [i, path] of paths.entries())
          this.places.add(path, address, i === last ? statuses.map((s) => s.id) : []);
        const failed = writes.find((w) => w.status === "rejected");
        if (failed) throw failed.reason;
      }),
    );
    for (const status of results) term.book.forgetReplyAddress(status.id);
    term.counters.finished += results.length;
    this.tally.count(results);
    this.pruneResults();
    for (const r of results) this.metrics?.resultWritten(r);
  }

  /**
   * Writes `results` and every changed assignment at once, instead of one after the other: a step then
   * waits for one round of writes, not two. An assignment that drops a finished task must still be
   * applied after that task's result node (else a leader dying in between loses the task). That holds
   * because ZooKeeper applies one session's requests in the order they were sent, and every result
   * create is called here, and so sent, before any assignment write (see ZkClient). An assignment write
   * is not repeated after a connection loss (`setOnce`): a repeat could go after a result create's own
   * repeat. The step then fails, and the next one writes the assignment again. A create or delete of
   * an assignment node, and a write over a foreign one, wait for the results as before.
   */
  async writeResultsAndAssignments(results: TaskStatus[], cleanup: boolean): Promise<void> {
    if (results.length === 0) return this.writeAssignments(cleanup);
    const written = this.writeResults(results);
    const [r, a] = await Promise.allSettled([written, this.writeAssignments(cleanup, written)]);
    if (r.status === "rejected") {
      this.restoreResults(results);
      throw r.reason;
    }
    if (a.status === "rejected") throw a.reason;
  }

  /**
   * Writes every changed assignment (with `cleanup`, also those that only list finished tasks). With
   * `results`, a result write sent just before: see writeResultsAndAssignments.
   */
  async writeAssignments(cleanup: boolean, results?: Promise<void>): Promise<void> {
    if (cleanup) for (const w of this.staleAssign) this.dirtyAssign.add(w);
    const dirty = [...this.dirtyAssign];
    this.dirtyAssign.clear();
    for (const w of dirty) this.staleAssign.delete(w);
    try {
      // No await before the writes below are called when they go beside the results.
      const beside = results !== undefined && dirty.every((w) => this.writesInPlace(w));
      if (results !== undefined && !beside) await results;
      await Promise.all(dirty.map((w) => this.writeAssignment(w, beside ? results : undefined)));
    } catch (err) {
      for (const w of dirty) this.dirtyAssign.add(w);
      throw err;
    }
  }

  /** Whether this worker's assignment write is a versioned write over the node this term knows. */
  private writesInPlace(worker: string): boolean {
    return this.term.book.workers.has(worker) && this.assignVersions.has(worker);
  }

  /**
   * After this step's writes: its inputs (and `more`) are redundant. Returns the nodes to delete now,
   * with `cleanup`; the others wait for the next clean-up.
   */
  takeRedundant(cleanup: boolean, more: Iterable<string>): string[] {
    for (const p of this.spent.splice(0)) this.cleanupNodes.push(p);
    for (const p of more) this.cleanupNodes.push(p);
    if (cleanup) this.cleanup = this.cleanupTimer ? "scheduled" : "idle";
    const redundant = cleanup ? this.cleanupNodes.splice(0) : [];
    if (this.cleanupNodes.length > 0) this.scheduleCleanup();
    return redundant;
  }

  /** Deletes a redundant node; one that fails is kept for the next clean-up (no later step would find it). */
  deleteRedundant(path: string): Promise<void> {
    return this.deleteQuietly(path).catch((err: unknown) => {
      this.cleanupNodes.push(path);
      this.scheduleCleanup();
      throw err;
    });
  }

  /** Creates a result node for `address` and returns its path. */
  private async writeResultNode(address: string | undefined, data: Buffer): Promise<string> {
    const { term } = this;
    const prefix = this.places.nodePrefix(address);
    term.guard();
    term.counters.writes += 1;
    let path: string;
    try {
      path = await term.client.createProtected(prefix, data, "persistent-sequential");
    } catch (err) {
      // A reply dir is made by its submitter, or here by its first result; pruning may have removed it.
      if (address === undefined || !errors.isNoNode(err)) throw err;
      await term.client.ensurePath(term.layout.replyDir(address));
      term.guard();
      path = await term.client.createProtected(prefix, data, "persistent-sequential");
    }
    return path;
  }

  /**
   * Deletes the oldest result nodes beyond `keepResults`, then the reply dirs they leave with no kept
   * node (a live submitter's dir stays: its live node makes ZooKeeper refuse), without holding up the step.
   */
  private pruneResults(): void {
    const { nodes, emptiedDirs, ids } = this.places.takeExpired();
    if (nodes.length === 0) return;
    this.term.book.forgetFinished(ids);
    void (async () => {
      await Promise.all(nodes.map((path) => this.deleteQuietly(path)));
      await Promise.all(emptiedDirs.map((dir) => this.deleteReplyDir(dir)));
    })().catch((err) => this.term.onStepError(err));
  }

  /** Deletes a reply dir unless something is still in it (its submitter's live node, a newer result). */
  async deleteReplyDir(dir: string): Promise<void> {
    try {
      await this.deleteQuietly(dir);
    } catch (err) {
      if (!errors.isNotEmpty(err)) throw err;
    }
  }

  /** `results`: a result write sent just before this one, which it must not overtake. */
  private async writeAssignment(worker: string, results?: Promise<void>): Promise<void> {
    const { term } = this;
    const path = term.layout.assign(worker);
    const slot = term.book.workers.get(worker);
    const version = this.assignVersions.get(worker);
    term.guard();
    term.counters.writes += 1;
    if (!slot) {
      if (version === undefined) return;
      try {
        await term.client.delete(path, version);
      } catch (err) {
        if (!errors.isNoNode(err)) throw err;
      }
      this.assignVersions.delete(worker);
      return;
    }
    // Built here from tasks validated when they were read from the queue: no second validation.
    const head = JSON.stringify({ v: 1, epoch: term.epoch, worker, session: slot.session });
    const data = Buffer.from(`${head.slice(0, -1)},"tasks":${term.book.assignmentJson(worker)}}`, "utf8");
    if (version === undefined) {
      try {
        await term.client.create(path, data, "persistent");
        this.assignVersions.set(worker, 0);
        return;
      } catch (err) {
        if (!errors.isNodeExists(err)) throw err;
        throw new NotLeaderError(`assignment of ${worker} was created by someone else`);
      }
    }
    try {
      const stat = await (results
        ? term.client.setOnce(path, data, version)
        : term.client.set(path, data, version));
      this.assignVersions.set(worker, stat.version);
    } catch (err) {
      if (!errors.isBadVersion(err)) throw err;
      await results;
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
    const { term } = this;
    const path = term.layout.assign(worker);
    const got = await getOrNull(term.client, path);
    const decoded = got ? decodeAssignment(got.data) : undefined;
    if (decoded?.ok && decoded.value.epoch > term.epoch) {
      throw new NotLeaderError(`assignment of ${worker} was written by epoch ${decoded.value.epoch}`);
    }
    term.log("warn", "assignment node changed by another client; writing it again", { worker });
    term.guard();
    if (!got) {
      this.assignVersions.delete(worker);
      this.dirtyAssign.add(worker);
      return;
    }
    const stat = await term.client.set(path, data, got.stat.version);
    this.assignVersions.set(worker, stat.version);
  }

  /** After a connection loss: learn the versions of assignment nodes whose last write may have landed. */
  async refreshAssignVersions(): Promise<void> {
    const { term } = this;
    if (term.isStopped()) return;
    try {
      await Promise.all(
        [...this.assignVersions.keys()].map(async (worker) => {
          const got = await getOrNull(term.client, term.layout.assign(worker));
          if (!got) {
            this.assignVersions.delete(worker);
            this.dirtyAssign.add(worker);
            return;
          }
          const decoded = decodeAssignment(got.data);
          if (decoded.ok && decoded.value.epoch > term.epoch) {
            throw new NotLeaderError(`assignment of ${worker} was written by epoch ${decoded.value.epoch}`);
          }
          this.assignVersions.set(worker, got.stat.version);
          this.dirtyAssign.add(worker);
        }),
      );
    } catch (err) {
      if (err instanceof NotLeaderError || errors.isSessionExpired(err)) term.fail(err);
      else term.log("warn", "could not refresh assignment versions", { error: String(err) });
    }
  }

  async deleteQuietly(path: string): Promise<void> {
    try {
      this.term.counters.writes += 1;
      await this.term.client.delete(path);
    } catch (err) {
      if (!errors.isNoNode(err)) throw err;
    }
  }

  stop(): void {
    clearTimeout(this.cleanupTimer);
    this.tally.stop();
  }
}

/** The sequence number of a sequential node's path (its last name). */
function sequenceOf(path: string): number {
  return parseSequence(path.slice(path.lastIndexOf("/") + 1)) ?? 0;
}
