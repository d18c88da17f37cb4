import { createHash } from "node:crypto";
import type { RequeuedTask, SubmitBatch, TaskSpec } from "@zkgrid/protocol";
import {
  compareSequentialNames,
  decodeSubmitBatch,
  encodeSubmitBatch,
  headBytes,
  isValidTaskId,
  MAX_BATCH_TASKS,
  MAX_MESSAGE_BYTES,
  MAX_NODE_BYTES,
  newBatchId,
  packByBytes,
  packSubmitBatches,
  parseSequence,
  unnamedTaskId,
} from "@zkgrid/protocol";
import { finalStatus, type TaskBook } from "../task-book.js";
import { type ChildrenChange, forEachLimit, getOrNull, type Term } from "./term.js";
import type { GridWriter } from "./writer.js";

/**
 * R/queue: reads each new queue node into the TaskBook (a task it cannot take becomes `rejected`), and
 * writes the queue nodes that hold tasks put back in the queue.
 */
export class QueueIntake {
  /** Queue nodes read (or written) this term, so a re-listed node is not read again. */
  private readonly seen = new Set<string>();
  /**
   * Queue nodes this leader wrote itself: their tasks went to the book when written. A watch may list
   * one before its create returns (a reply lost to a connection loss, found again by the protected
   * create): read then, it must not count as a second, all-known node, which would mark it drained.
   */
  private readonly written = new Set<string>();

  constructor(
    private readonly term: Term,
    private readonly writer: GridWriter,
  ) {}

  async onQueue({ added, removed }: ChildrenChange): Promise<void> {
    const { term } = this;
    for (const name of removed) {
      this.seen.delete(name);
      this.written.delete(name);
    }
    // In sequence order (names sort by their protected-create prefix): each node's tasks then join the
    // end of their queue, where an out-of-order node would be spliced into its middle, task by task.
    const fresh = added.filter((n) => !this.seen.has(n)).sort(compareSequentialNames);
    for (const n of fresh) this.seen.add(n);
    await forEachLimit(fresh, 32, async (name) => {
      const got = await getOrNull(term.client, `${term.layout.queue}/${name}`);
      if (!got) return;
      const seq = parseSequence(name) ?? 0;
      const decoded = decodeSubmitBatch(got.data);
      term.apply(() => {
        if (this.written.has(name)) return;
        if (!decoded.ok) {
          // The node as a whole is unreadable: reject every task it names, or the node itself.
          const reason = `queue node ${name}: ${decoded.error.message}`;
          if (decoded.ids.length === 0) this.reject(unnamedTaskId(name, 0), reason);
          decoded.ids.forEach((id, index) => {
            this.reject(id ?? unnamedTaskId(name, index), reason);
          });
          term.book.drainedQueueNodes.add(name);
          return;
        }
        const good = [];
        for (const t of decoded.tasks) {
          if (t.ok) good.push(t.task);
          else this.reject(t.id ?? unnamedTaskId(name, t.index), t.error.message);
        }
        term.book.addQueueNode(name, seq, good, decoded.batch.submittedAt, decoded.batch.requeued);
      });
    });
  }

  /** Ends a task the grid cannot take as `rejected`, under its id (or one made from `candidate`). */
  reject(candidate: string, why: string): void {
    // A queue node's name may not make a valid id (any client names its nodes): fall back to one
    // that is, and keep the reason within its limit: readers refuse a result batch holding either.
    const id = isValidTaskId(candidate) ? candidate : fallbackTaskId(candidate);
    const reason = headBytes(why, MAX_MESSAGE_BYTES);
    if (this.term.book.isKnown(id)) return;
    this.term.log("warn", "task rejected", { task: id, reason });
    this.writer.addResult(
      finalStatus({ id, spec: { id }, attemptsUsed: 0, submittedAt: Date.now() } as never, "rejected", {
        reason,
        finishedAt: Date.now(),
      }),
    );
    this.term.book.markFinished(id);
  }

  /**
   * Writes tasks put back in the queue to queue nodes of their own, before any assignment drops them.
   * A retry waiting for its backoff keeps its due time (`notBefore`) there, and every task its history.
   */
  async writeRequeue(entries: ReturnType<TaskBook["takeHomeless"]>): Promise<void> {
    const records = new Map<string, RequeuedTask>();
    for (const e of entries) {
      const record: RequeuedTask = { attemptsUsed: e.attemptsUsed, submittedAt: e.submittedAt };
      if (e.state === "delayed" && e.dueAt !== undefined) record.notBefore = e.dueAt;
      if (e.history !== undefined) record.history = e.history;
      records.set(e.id, record);
    }
    // Each task with its record, sized generously: a node never outgrows the limit.
    const size = (e: (typeof entries)[number]) =>
      Buffer.byteLength(JSON.stringify(e.spec)) + Buffer.byteLength(JSON.stringify(records.get(e.id))) + 300;
    const chunks = packByBytes(entries, size, MAX_NODE_BYTES - 1024, MAX_BATCH_TASKS);
    await Promise.all(chunks.map((chunk) => this.writeRequeueNode(chunk, records)));
  }

  private async writeRequeueNode(
    entries: ReturnType<TaskBook["takeHomeless"]>,
    records: Map<string, RequeuedTask>,
  ): Promise<void> {
    const { term } = this;
    const requeued: NonNullable<SubmitBatch["requeued"]> = {};
    for (const e of entries) requeued[e.id] = records.get(e.id) as RequeuedTask;
    const batch: SubmitBatch = {
      v: 1,
      batchId: newBatchId(),
      submittedAt: Date.now(),
      submitter: `leader@${term.epoch}`,
      tasks: entries.map((e) => e.spec),
      requeued,
    };
    term.book.rehome(await this.writeQueueNode(batch), entries);
  }

  /**
   * Writes new tasks of the leader's own (a schedule's firings) to queue nodes, and takes them into
   * the book at once: a firing is known from the moment its node exists.
   */
  async writeTasks(tasks: TaskSpec[]): Promise<void> {
    const { term } = this;
    for (const batch of packSubmitBatches(tasks, { validated: true, submitter: `leader@${term.epoch}` })) {
      const node = await this.writeQueueNode(batch);
      term.book.addQueueNode(node, parseSequence(node) ?? 0, batch.tasks, batch.submittedAt);
    }
  }

  /** A queue node of the leader's own; its name is marked read, as its tasks go to the book directly. */
  private async writeQueueNode(batch: SubmitBatch): Promise<string> {
    const { term } = this;
    term.guard();
    term.counters.writes += 1;
    const path = await term.client.createProtected(
      `${term.layout.queue}/${term.layout.queueNodePrefix}`,
      encodeSubmitBatch(batch),
      "persistent-sequential",
    );
    const node = path.slice(path.lastIndexOf("/") + 1);
    this.seen.add(node);
    this.written.add(node);
    return node;
  }

  /** Paths of the queue nodes whose every task is assigned or final: deleted with the next clean-up. */
  takeDrained(): string[] {
    const paths = [...this.term.book.drainedQueueNodes].map((n) => `${this.term.layout.queue}/${n}`);
    this.term.book.drainedQueueNodes.clear();
    return paths;
  }
}

/** `queue-<16 hex digits of sha256(candidate)>`, with the candidate's `.<index>` suffix kept. */
function fallbackTaskId(candidate: string): string {
  const dot = candidate.lastIndexOf(".");
  const index = dot >= 0 && /^\d+$/.test(candidate.slice(dot + 1)) ? candidate.slice(dot) : "";
  return `queue-${createHash("sha256").update(candidate).digest("hex").slice(0, 16)}${index}`;
}
