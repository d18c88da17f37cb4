import { type ChildFollows, errors } from "@zkgrid/core";
import type { TaskStatus } from "@zkgrid/protocol";
import { decodeCancelRequest, decodeInboxNode, inboxNodeId } from "@zkgrid/protocol";
import type { QueueIntake } from "./queue-intake.js";
import type { WorkerReports } from "./reports.js";
import {
  type ChildrenChange,
  childrenOrNone,
  forEachLimit,
  getOrNull,
  sessionDirs,
  type Term,
} from "./term.js";
import type { GridWriter } from "./writer.js";

/**
 * An inbox is listed again this long after it changes: a stream of lone tasks shares one listing,
 * and their workers have usually answered by the time the leader reads them (see readDirect).
 */
const DIRECT_SETTLE_MS = 100;

/** A worker session's inbox of direct tasks, `R/inbox/<worker>@<session>`. */
interface InboxDir {
  worker: string;
  session: string;
  /** Names whose data watch runs (or ran): each node is followed until it is deleted. */
  followed: Set<string>;
}

/** A cancelled direct task whose node is deleted (under the version read) after this step's `accepted` writes. */
export interface DirectCancel {
  id: string;
  path: string;
  version: number;
}

/**
 * R/inbox: direct tasks that submitters put in a worker session's inbox. Each is held by that session
 * in the TaskBook; its answer (written over its node) becomes its result with the next clean-up.
 */
export class DirectInboxes {
  private readonly dirs: ChildFollows<InboxDir>;
  private cancels: DirectCancel[] = [];
  /** Final statuses of answered direct tasks, written with the next clean-up, and then their nodes deleted. */
  private answers: TaskStatus[] = [];
  private answerNodes: string[] = [];

  constructor(
    private readonly term: Term,
    private readonly writer: GridWriter,
    private readonly reports: WorkerReports,
    private readonly intake: QueueIntake,
  ) {
    this.dirs = sessionDirs(
      term,
      term.layout.inbox,
      "inbox",
      (parsed): InboxDir => ({ ...parsed, followed: new Set() }),
      (name, dir) => (c) => this.onInboxTasks(name, dir, c),
      DIRECT_SETTLE_MS,
    );
    reports.onInboxNews((dirName) => this.listNow(dirName));
  }

  onInboxDirs(change: ChildrenChange): Promise<void> {
    return this.dirs.update(change);
  }

  /** The inboxes followed, by `worker@session`. */
  sessions(): Iterable<[string, { worker: string; session: string }]> {
    return this.dirs;
  }

  /** Whether the inbox `worker@session` is followed. */
  follows(dirName: string): boolean {
    return this.dirs.has(dirName);
  }

  /**
   * Fencing: reads every node of the session's inbox (answers applied, tasks held) before the session's
   * tasks are handed out. Returns the names read, or undefined if the inbox is not followed.
   */
  async readAll(dirName: string): Promise<string[] | undefined> {
    const inbox = this.dirs.get(dirName);
    if (!inbox) return undefined;
    const names = await childrenOrNone(this.term.client, `${this.term.layout.inbox}/${dirName}`);
    await Promise.all(names.map((n) => this.readDirect(dirName, inbox, n, false)));
    return names;
  }

  /**
   * A cancel request may name a direct task this leader has not read yet (an inbox is listed a moment
   * after it changes): the inboxes are listed now, and such tasks read before the request is handled.
   */
  async findDirectTasks(requests: Array<{ got: { data: Buffer } | null }>): Promise<void> {
    const { term } = this;
    const unknown = new Set<string>();
    for (const { got } of requests) {
      const decoded = got ? decodeCancelRequest(got.data) : undefined;
      if (decoded?.ok) for (const id of decoded.value.ids) if (!term.book.isKnown(id)) unknown.add(id);
    }
    if (unknown.size === 0) return;
    // Listed afresh: an inbox its watch has not reported yet may hold one.
    const dirs = await childrenOrNone(term.client, term.layout.inbox);
    await forEachLimit(dirs, 32, async (dirName) => {
      const parsed = term.layout.parseReportDir(dirName);
      if (!parsed) return;
      // A dir not followed yet gets a stand-in; its watch reads the same nodes again later, harmlessly.
      const dir = this.dirs.get(dirName) ?? { ...parsed, followed: new Set<string>() };
      const names = await childrenOrNone(term.client, `${term.layout.inbox}/${dirName}`);
      const wanted = names.filter((n) => unknown.has(inboxNodeId(n)) && !dir.followed.has(n));
      for (const n of wanted) dir.followed.add(n);
      await Promise.all(wanted.map((n) => this.readDirect(dirName, dir, n)));
    });
  }

  /** A cancelled direct task: its node is deleted after this step's `accepted` writes. */
  cancel(c: DirectCancel): void {
    this.cancels.push(c);
  }

  /** How many answers wait for the clean-up. */
  get answersWaiting(): number {
    return this.answers.length;
  }

  /** Hands the waiting answers to the result write, and their nodes to the clean-up after it. */
  releaseAnswers(): void {
    if (this.answers.length === 0) return;
    for (const s of this.answers.splice(0)) this.writer.addResult(s);
    for (const p of this.answerNodes.splice(0)) this.writer.spend(p);
  }

  /** Deletes cancelled direct tasks' nodes (their `accepted` is durable now): one deleted before any answer ends as cancelled. */
  async deleteCancelled(): Promise<void> {
    const cancels = this.cancels.splice(0);
    if (cancels.length === 0) return;
    const { term } = this;
    try {
      await Promise.all(
        cancels.map(async ({ id, path, version }) => {
          term.guard();
          term.counters.writes += 1;
          try {
            await term.client.delete(path, version);
          } catch (err) {
            // Answered first: the answer, read through the node's watch, stands.
            if (errors.isBadVersion(err)) return;
            if (!errors.isNoNode(err)) throw err;
          }
          const status = term.book.cancelledDirect(id, Date.now());
          if (status) this.writer.publish(status);
        }),
      );
    } catch (err) {
      this.cancels.unshift(...cancels);
      throw err;
    }
    if (this.writer.hasPendingResults) term.kick();
  }

  /**
   * Deletes a fenced session's inbox: each node already read, then the dir. A task put there after it
   * was listed makes the dir's delete fail; that task is read through the dir's watch and handed out
   * again with the next fence.
   */
  async deleteInbox(dirName: string, names: string[]): Promise<void> {
    const dirPath = `${this.term.layout.inbox}/${dirName}`;
    await Promise.all(names.map((n) => this.writer.deleteQuietly(`${dirPath}/${n}`)));
    try {
      this.term.counters.writes += 1;
      await this.term.client.delete(dirPath);
      this.dirs.delete(dirName);
    } catch (err) {
      if (errors.isNoNode(err)) return;
      if (!errors.isNotEmpty(err)) throw err;
    }
  }

  stop(): void {
    this.dirs.stopAll();
  }

  /**
   * A worker asked for its inbox to be listed now (it declined a task there): the new nodes are read
   * without waiting for the listing to settle, so a declined task is queued at once. A failure is
   * left to that listing, which reads the same nodes.
   */
  private listNow(dirName: string): void {
    const dir = this.dirs.get(dirName);
    if (!dir) return;
    const { term } = this;
    void childrenOrNone(term.client, `${term.layout.inbox}/${dirName}`)
      .then(async (names) => {
        const fresh = names.filter((n) => !dir.followed.has(n));
        if (fresh.length === 0) return;
        term.log("debug", "inbox listed at its worker's request", {
          worker: dir.worker,
          session: dir.session,
          tasks: fresh,
        });
        await this.onInboxTasks(dirName, dir, { added: fresh, removed: [] });
        term.kick();
      })
      .catch(() => {});
  }

  /** Reads each new node of an inbox; resolves once each one's current data is handled. */
  private async onInboxTasks(
    dirName: string,
    dir: InboxDir,
    { added, removed }: Pick<ChildrenChange, "added" | "removed">,
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
    const { term } = this;
    const path = `${term.layout.inbox}/${dirName}/${name}`;
    const got = await getOrNull(term.client, path);
    if (!got) {
      term.apply(() => this.onDirectGone(dir, name));
      return;
    }
    const node = decodeInboxNode(name, got.data, got.stat.version);
    term.apply(() => this.onDirect(dir, name, path, node, got.stat.version, got.stat.ctime));
    if (follow && node.kind === "task" && got.stat.version === 0) this.watchDirect(dir, name, path);
  }

  /** Follows a waiting direct task's node until it is answered, declined or deleted. */
  private watchDirect(dir: InboxDir, name: string, path: string): void {
    const { term } = this;
    const following = term.follower.data(
      path,
      (change) => {
        if (change === null) {
          term.apply(() => this.onDirectGone(dir, name));
          return false;
        }
        const { version, ctime } = change.stat;
        const node = decodeInboxNode(name, change.data, version);
        term.apply(() => this.onDirect(dir, name, path, node, version, ctime));
        return node.kind === "task" && version === 0;
      },
      { untilGone: true },
    );
    following.catch((err) => term.fail(err));
  }

  private onDirect(
    dir: InboxDir,
    name: string,
    path: string,
    node: ReturnType<typeof decodeInboxNode>,
    version: number,
    ctime: number,
  ): void {
    const { term, writer } = this;
    const { book } = term;
    // The node's name is its task's id, or the id and the task itself (see inboxNodeName).
    const id = inboxNodeId(name);
    const mine = book.tasks.get(id)?.direct?.path === path;
    switch (node.kind) {
      case "task": {
        if (!mine && version > 0 && book.isKnown(id)) {
          // A decline the worker also reported (it is stopping), applied from that report already.
          writer.spend(path);
          return;
        }
        if (!mine) {
          const task = { path, version: 0 };
          if (!book.addDirect(dir.worker, dir.session, node.task, node.submittedAt, ctime, task)) {
            term.log("warn", "direct task under an id the grid knows; dropped", {
              task: id,
              worker: dir.worker,
            });
            writer.spend(path);
            return;
          }
        }
        if (version > 0) {
          // Written back unchanged: the worker declined it. It is queued again, its attempt unused.
          const at = Date.now();
          const update = { id, attempt: 1, state: "returned" as const, at };
          this.reports.applyReport(dir, {
            v: 1,
            worker: dir.worker,
            session: dir.session,
            updates: [update],
          });
          writer.spend(path);
        }
        return;
      }
      case "outcome": {
        const { status } = node;
        if (status.worker !== dir.worker || (!mine && book.isKnown(id))) {
          // Another session's name, or an id the grid knows otherwise: not this task's result.
          term.log("warn", "direct task answer dropped", { task: id, worker: dir.worker });
          writer.spend(path);
          return;
        }
        // The answer is the result (also when no leader read the task before it was answered).
        book.markFinished(id);
        this.answers.push(status);
        this.answerNodes.push(path);
        writer.scheduleCleanup();
        term.log("debug", "task finished", {
          task: id,
          state: status.state,
          worker: dir.worker,
          attempt: 1,
        });
        return;
      }
      case "invalid": {
        const why = `inbox node ${dir.worker}@${dir.session}/${name}: ${node.error.message}`;
        if (!mine) this.intake.reject(node.id, why);
        else {
          // Its task was read before someone overwrote it: handed out again.
          const status = book.loseDirect(id, why);
          if (status) writer.publish(status);
        }
        writer.spend(path);
        return;
      }
    }
  }

  /** A direct task's node was deleted: by the clean-up (nothing to do), a cancel, or someone else. */
  private onDirectGone(dir: InboxDir, name: string): void {
    dir.followed.delete(name);
    const id = inboxNodeId(name);
    const entry = this.term.book.tasks.get(id);
    if (!entry?.direct || entry.worker !== dir.worker || entry.session !== dir.session || entry.cancelling)
      return;
    const status = this.term.book.loseDirect(id, "its direct task node was deleted");
    if (status) this.writer.publish(status);
    else this.term.log("warn", "direct task node deleted before its result; queued again", { task: id });
  }
}
