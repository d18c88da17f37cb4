import type { ChildFollows } from "@zkgrid/core";
import type { WorkerReport } from "@zkgrid/protocol";
import { decodeWorkerReport } from "@zkgrid/protocol";
import {
  bySequence,
  type ChildrenChange,
  childrenOrNone,
  getOrNull,
  sessionDirs,
  type Term,
} from "./term.js";
import type { GridWriter } from "./writer.js";

/** A worker session's report dir, `R/reports/<worker>@<session>`. */
interface SessionDir {
  worker: string;
  session: string;
  /** Report nodes already applied (kept until the dir is gone, so a re-listed node is not applied twice). */
  applied: Set<string>;
}

/** R/reports: follows each session's report dir and applies its workers' status updates to the TaskBook. */
export class WorkerReports {
  private readonly dirs: ChildFollows<SessionDir>;
  /** Told of a report with no updates: its worker asks for its inbox to be listed now (a decline waits there). */
  private inboxNews: (dirName: string) => void = () => {};

  constructor(
    private readonly term: Term,
    private readonly writer: GridWriter,
  ) {
    this.dirs = sessionDirs(
      term,
      term.layout.reports,
      "reports",
      (parsed): SessionDir => ({ ...parsed, applied: new Set() }),
      (name, dir) => (c) => this.onReports(name, dir, c.added),
    );
  }

  /** Who lists a session's inbox when its worker asks (see SessionReporter.nudge). */
  onInboxNews(listener: (dirName: string) => void): void {
    this.inboxNews = listener;
  }

  onReportDirs(change: ChildrenChange): Promise<void> {
    return this.dirs.update(change);
  }

  /** The report dirs followed, by `worker@session`. */
  sessions(): Iterable<[string, { worker: string; session: string }]> {
    return this.dirs;
  }

  /** Whether the report dir `worker@session` is followed. */
  follows(dirName: string): boolean {
    return this.dirs.has(dirName);
  }

  /**
   * Fencing: applies every report left in the session's dir. Returns false if the dir is not followed.
   * The changes are queued (see Term.apply).
   */
  async readAll(dirName: string): Promise<boolean> {
    const dir = this.dirs.get(dirName);
    if (!dir) return false;
    const names = await childrenOrNone(this.term.client, `${this.term.layout.reports}/${dirName}`);
    await this.onReports(dirName, dir, names);
    return true;
  }

  private async onReports(dirName: string, dir: SessionDir, added: string[]): Promise<void> {
    const { term } = this;
    const fresh = added.filter((n) => !dir.applied.has(n)).sort(bySequence);
    const reports = await Promise.all(
      fresh.map(async (name) => {
        const got = await getOrNull(term.client, `${term.layout.reports}/${dirName}/${name}`);
        return { name, got };
      }),
    );
    term.apply(() => {
      for (const { name, got } of reports) {
        if (dir.applied.has(name)) continue;
        dir.applied.add(name);
        this.writer.spend(`${term.layout.reports}/${dirName}/${name}`);
        if (!got) continue;
        const decoded = decodeWorkerReport(got.data);
        if (!decoded.ok) {
          term.log("warn", "unreadable worker report; dropped", {
            worker: dir.worker,
            node: name,
            error: decoded.error.message,
          });
          continue;
        }
        this.applyReport(dir, decoded.value);
        if (decoded.value.updates.length === 0) this.inboxNews(dirName);
      }
    });
  }

  /** Applies one report of `dir`'s session (also a direct task's decline, read from its inbox node). */
  applyReport(dir: { worker: string; session: string }, report: WorkerReport): void {
    const { term, writer } = this;
    const { book } = term;
    // Before the updates: a task this report hands back must not go to the same stopping worker.
    if (report.draining === true && book.markDraining(dir.worker, dir.session))
      term.log("info", "worker stopping; it gets no new task", { worker: dir.worker, session: dir.session });
    for (const u of report.updates) {
      const before = book.tasks.get(u.id);
      // A direct task is in no assignment: its end leaves the worker's assignment as it is. One reported
      // here, not answered over its node (its worker could not write there), leaves that node to delete.
      const inAssignment = before?.direct === undefined;
      const held =
        before?.worker === dir.worker && before.session === dir.session && before.attemptsUsed === u.attempt;
      if (
        before?.direct &&
        u.state !== "running" &&
        before.worker === dir.worker &&
        before.session === dir.session
      )
        writer.spend(before.direct.path);
      const status = book.applyUpdate(dir.worker, dir.session, u);
      if (status) {
        writer.addResult(status);
        if (inAssignment) writer.assignmentStale(dir.worker);
        writer.scheduleCleanup();
        term.log("debug", "task finished", {
          task: u.id,
          state: status.state,
          worker: dir.worker,
          attempt: u.attempt,
        });
      } else if (u.state === "returned" && before && book.tasks.get(u.id)?.state === "queued") {
        if (inAssignment) writer.assignmentChanged(dir.worker);
        term.log("info", "task handed back", { task: u.id, worker: dir.worker });
      } else if (held && u.state !== "running" && u.state !== "returned") {
        // A failed attempt its retry policy tries again: back in the queue, delayed by its backoff.
        if (inAssignment) writer.assignmentChanged(dir.worker);
        term.log("info", "task will be retried", {
          task: u.id,
          state: u.state,
          worker: dir.worker,
          attempt: u.attempt,
          dueAt: book.tasks.get(u.id)?.dueAt,
        });
      }
    }
  }

  /** Deletes a fenced session's report dir, so a worker that wakes up cannot publish into it. */
  async deleteDir(dirName: string): Promise<void> {
    this.dirs.stop(dirName);
    this.term.counters.writes += 1;
    await this.term.client.deleteRecursive(`${this.term.layout.reports}/${dirName}`);
    this.dirs.delete(dirName);
  }

  stop(): void {
    this.dirs.stopAll();
  }
}
