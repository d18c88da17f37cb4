import { errors, Follower, type ZkClient } from "@zkgrid/core";
import {
  decodeInboxNode,
  decodeWorkerRegistration,
  type GridLayout,
  inboxNodeName,
  type AnswerAddress,
  type SubmitBatch,
  type TaskStatus,
  withAnswerKey,
} from "@zkgrid/protocol";
import { AnswerStreams } from "./answer-stream.js";
import { GateWatch } from "./grid-gate.js";

interface Target {
  worker: string;
  session: string;
  labels: ReadonlySet<string>;
  /** Where its answer stream listens, if it has one. */
  answers: AnswerAddress | undefined;
}

/**
 * A direct task whose answer this client asked for on its worker's answer stream: `stop` ends the
 * wait for the stream (STREAM_FIRST_MS) or the follow of its node, whichever is under way; `answer`
 * holds one the stream sent before either began (before the create's reply).
 */
interface Flight {
  worker: string;
  stop?: () => void;
  answer?: TaskStatus;
}

/**
 * A direct task's answer once it has one: its final status, or undefined (the leader decides);
 * `declined`: the task was written back (the leader then read the task, not only an answer).
 */
type Answer = { status: TaskStatus | undefined; declined: boolean };

const EMPTY = Buffer.alloc(0);

/**
 * How long a lone task asked on an answer stream waits for the stream's answer before its node is
 * followed too (a read, and a watch): a task answered sooner costs its submitter only its create.
 */
export const STREAM_FIRST_MS = 50;

/** How many answers nobody has waited for yet are kept (oldest dropped first). */
export const KEEP_ANSWERS = 10_000;

/** Logs what the direct path skips; never throws. */
export type DirectLogger = (level: "warn" | "info", msg: string, fields?: Record<string, unknown>) => void;

/**
 * Direct tasks: a lone task goes straight into a live worker session's inbox, and its answer is read
 * from that node, without a hop through the leader either way. The worker runs it at once or declines
 * (the leader then queues it); the leader still records the result in `R/results`, where a waiter
 * looks when the direct answer does not come.
 */
export class DirectTasks {
  readonly #zk: ZkClient;
  readonly #layout: GridLayout;
  readonly #log: DirectLogger;
  /** A paused or limited task must pass the leader: it goes to the queue. */
  readonly #gate: GateWatch;
  #targets: Target[] = [];
  #next = 0;
  readonly #stop = new AbortController();
  readonly #follower: Follower;
  /** Resolves once the workers have been listed for the first time (or the follow has ended). */
  #listed: Promise<void> | undefined;
  /** Direct tasks in flight, and answers not yet taken, by id. */
  readonly #answers = new Map<string, Answer | Array<(answer: Answer) => void>>();
  /** Workers' answer streams; undefined when this client does not use them. */
  readonly #streams: AnswerStreams | undefined;
  /** Direct tasks in flight whose answer was asked for on a stream, by id. */
  readonly #flights = new Map<string, Flight>();

  constructor(zk: ZkClient, layout: GridLayout, log: DirectLogger, streams = true) {
    this.#zk = zk;
    this.#layout = layout;
    this.#log = log;
    this.#streams = streams
      ? new AnswerStreams(log, (worker, status) => this.#streamed(worker, status))
      : undefined;
    this.#gate = new GateWatch(zk, layout);
    this.#follower = new Follower(zk, {
      signal: this.#stop.signal,
      onError: (err) => {
        this.#log("info", "stopped following workers; the next lone task follows them again", {
          error: String(err),
        });
        this.#targets = [];
        this.#listed = undefined;
        return "end";
      },
    });
  }

  /**
   * Puts `batch` (one task, validated, sized and encoded as `data` by the submit pipeline) in a live
   * worker session's inbox. `sent` is false when no worker is known that could take it, or its inbox
   * is gone: the caller queues it instead. `lostReply`: the create's reply was lost, so it may have
   * happened, and been answered and recorded, before anything this client read after it.
   */
  async write(batch: SubmitBatch, data: Buffer): Promise<{ sent: boolean; lostReply: boolean }> {
    // The first write waits for the first listing: else a client's first lone task (the only one of
    // a short-lived client) would never find a worker.
    await this.#followWorkers();
    const task = batch.tasks[0];
    const queue = { sent: false, lostReply: false };
    if (task === undefined || batch.tasks.length !== 1) return queue;
    if (await this.#gate.holds(task.labels)) return queue;
    const target = this.#pick(task.labels);
    if (target === undefined) return queue;
    // It carries the key of this client's connection to the worker's answer stream, if it has one.
    let wire = data;
    if (this.#streams !== undefined && target.answers !== undefined) {
      const { worker, answers } = target;
      const key = this.#streams.keyFor({ worker, answers });
      if (key !== undefined) {
        wire = withAnswerKey(data, key);
        this.#flights.set(task.id, { worker });
      }
    }
    // A small task rides in the node's name, so its worker need not read the node (see inboxNodeName).
    const name = inboxNodeName(task.id, wire);
    const path = `${this.#layout.inboxDir(target.worker, target.session)}/${name}`;
    try {
      await this.#zk.create(path, name === task.id ? wire : EMPTY, "persistent");
    } catch (err) {
      this.#flights.delete(task.id);
      if (errors.isNoNode(err)) {
        // That session's inbox is gone: its worker may be back on a new one.
        this.#targets = this.#targets.filter((t) => t !== target);
        void this.#read(target.worker).then((fresh) => {
          if (fresh !== undefined && !this.#targets.some((t) => t.worker === fresh.worker))
            this.#targets = [...this.#targets, fresh];
        });
        return queue;
      }
      // A lost reply: the create may have happened. The node there is ours; a node not there may also
      // have been answered and recorded already, so the task goes to the queue, never into an inbox
      // again (the leader drops a queued id it knows). Any other refusal (an inbox's ACL): the queue.
      const lostReply = errors.isConnectionLoss(err);
      if (lostReply && (await this.#zk.exists(path).catch(() => null)) !== null) {
        this.#answers.set(task.id, []);
        void this.#follow(path, name, target.worker, batch);
        return { sent: true, lostReply };
      }
      if (!lostReply)
        this.#log("warn", "could not put a lone task in a worker's inbox; it goes to the queue", {
          task: task.id,
          worker: target.worker,
          error: String(err),
        });
      return { sent: false, lostReply };
    }
    this.#answers.set(task.id, []);
    void this.#follow(path, name, target.worker, batch);
    return { sent: true, lostReply: false };
  }

  /**
   * Calls `deliver` with the task's direct answer once there is one (at once if it is already in).
   * Returns false if `id` is not a direct task of this client, or its answer was taken already.
   */
  take(id: string, deliver: (status: TaskStatus | undefined, declined: boolean) => void): boolean {
    const entry = this.#answers.get(id);
    if (entry === undefined) return false;
    if (Array.isArray(entry)) entry.push((answer) => deliver(answer.status, answer.declined));
    else {
      this.#answers.delete(id);
      queueMicrotask(() => deliver(entry.status, entry.declined));
    }
    return true;
  }

  close(): void {
    this.#gate.close();
    this.#stop.abort();
    this.#streams?.close();
  }

  /** An answer from `worker`'s stream: the task's if it is in flight to that worker, else ignored. */
  #streamed(worker: string, status: TaskStatus): void {
    const flight = this.#flights.get(status.id);
    if (flight === undefined || flight.worker !== worker || status.worker !== worker) return;
    if (flight.stop === undefined) {
      flight.answer = status; // before its create's reply: #follow takes it
      return;
    }
    this.#flights.delete(status.id);
    flight.stop();
    this.#settle(status.id, { status, declined: false });
  }

  async #follow(path: string, name: string, worker: string, batch: SubmitBatch): Promise<void> {
    const task = batch.tasks[0] as SubmitBatch["tasks"][number];
    const flight = this.#flights.get(task.id);
    if (flight?.answer !== undefined) {
      this.#flights.delete(task.id);
      this.#settle(task.id, { status: flight.answer, declined: false });
      return;
    }
    if (flight !== undefined) {
      // Its answer is expected on the stream: the node is read only if none has come by then. A quick
      // task costs this client no read; a decline, a cancel or a broken stream is learned from the
      // node that much later.
      const streamed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), STREAM_FIRST_MS);
        flight.stop = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      if (streamed || this.#flights.get(task.id) !== flight) return;
    }
    let status: TaskStatus | undefined;
    let declined = false;
    const watch = this.#zk.watchData(path, { untilGone: true });
    if (flight !== undefined) flight.stop = () => setImmediate(() => watch.stop());
    try {
      for (;;) {
        const { value: change, done } = await watch.next();
        // Gone: cancelled, fenced or cleaned up; the leader's result counts.
        if (done || change === null) break;
        // Version 0 is the task as this client wrote it, still waiting; anything else ends the wait.
        if (change.stat.version === 0) continue;
        const node = decodeInboxNode(name, change.data, change.stat.version);
        if (node.kind === "outcome" && node.status.worker === worker) status = node.status;
        declined = node.kind === "task";
        break;
      }
    } catch (err) {
      if (!errors.isClosed(err))
        this.#log("warn", "lost a direct task's answer; waiting for its result", {
          task: task.id,
          error: String(err),
        });
    }
    // After the answer is handed on: ending a watch (an AbortController's abort) costs more than the
    // rest of the wait, and nothing reads the watch any more.
    setImmediate(() => watch.stop());
    if (this.#flights.get(task.id) === flight) this.#flights.delete(task.id);
    this.#settle(task.id, { status, declined });
  }

  /** Hands a direct task's answer on, once: to those waiting, or kept for the first to wait. */
  #settle(id: string, answer: Answer): void {
    const waiting = this.#answers.get(id);
    if (!Array.isArray(waiting)) return; // answered already (by the stream or the node), or forgotten
    if (waiting.length > 0) {
      this.#answers.delete(id);
      for (const deliver of waiting) deliver(answer);
      return;
    }
    this.#answers.set(id, answer);
    if (this.#answers.size > KEEP_ANSWERS) {
      for (const [old, entry] of this.#answers) {
        if (!Array.isArray(entry)) {
          this.#answers.delete(old);
          break;
        }
      }
    }
  }

  /** The next live worker session (in turn) whose labels cover `labels`. */
  #pick(labels: readonly string[] | undefined): Target | undefined {
    const n = this.#targets.length;
    for (let i = 0; i < n; i++) {
      const target = this.#targets[(this.#next + i) % n] as Target;
      if (labels === undefined || labels.every((l) => target.labels.has(l))) {
        this.#next = (this.#next + i + 1) % n;
        return target;
      }
    }
    return undefined;
  }

  /** The live session of worker `name` and its labels, or undefined (gone, unreadable, not ephemeral). */
  async #read(name: string): Promise<Target | undefined> {
    try {
      const { data, stat } = await this.#zk.get(`${this.#layout.workers}/${name}`);
      const reg = decodeWorkerRegistration(data);
      if (reg.ok && reg.value.name === name && reg.value.session === stat.ephemeralOwner)
        return {
          worker: name,
          session: reg.value.session,
          labels: new Set(reg.value.labels),
          answers: reg.value.answers,
        };
    } catch {
      // gone meanwhile, or the client closed
    }
    return undefined;
  }

  /** Keeps the list of live worker sessions (new names under `R/workers` are read as they come). */
  #followWorkers(): Promise<void> {
    this.#listed ??= this.#follower.children(this.#layout.workers, async (change) => {
      // Only new names are read: a fleet's join or leave costs one read, not one per worker. A
      // worker back on a new session under the same name shows as removed and added when its old
      // node went first; otherwise its old inbox is gone and the create there drops it (NONODE).
      const gone = new Set(change.removed);
      const kept = this.#targets.filter((t) => !gone.has(t.worker));
      const found: Target[] = [];
      await Promise.all(
        change.added.map(async (name) => {
          const target = await this.#read(name);
          if (target !== undefined) found.push(target);
        }),
      );
      const known = new Set(found.map((t) => t.worker));
      this.#targets = [...kept.filter((t) => !known.has(t.worker)), ...found].sort((a, b) =>
        a.worker < b.worker ? -1 : 1,
      );
    });
    return this.#listed;
  }
}
