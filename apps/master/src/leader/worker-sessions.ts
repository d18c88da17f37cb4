import { decodeWorkerRegistration, isValidWorkerName } from "@zkgrid/protocol";
import type { DirectInboxes } from "./direct-inboxes.js";
import type { WorkerReports } from "./reports.js";
import { type ChildrenChange, forEachLimit, getOrNull, type Term } from "./term.js";
import { WorkerCapacities } from "./worker-capacities.js";
import type { GridWriter } from "./writer.js";

/** How long a report dir may exist without a registration of its session before it is fenced. */
const UNREGISTERED_DIR_GRACE_MS = 120_000;

interface LiveWorker {
  session: string;
  capacity: number;
  labels: string[];
}

/** A session that may be dead: one of its dirs, or the tasks it holds, outlive its registration. */
interface Suspect {
  worker: string;
  session: string;
  holdsTasks: boolean;
}

/** What a fence leaves to delete once the step's writes are done. */
export interface Fenced {
  reports: string[];
  inboxes: Array<{ dirName: string; names: string[] }>;
}

/**
 * R/workers: which worker sessions are live, fed to the TaskBook; and the fencing of every session that
 * is not (its reports applied, its inbox read, its tasks handed out again, its dirs deleted).
 */
export class WorkerSessions {
  private readonly live = new Map<string, LiveWorker>();
  /** `worker@session` of every registration this term has seen. */
  private readonly seen = new Set<string>();
  private staleDirTimer: NodeJS.Timeout | undefined;
  /** Each live worker's capacity as it changes with its prefetch. */
  private readonly capacities: WorkerCapacities;
  /** Whether the next step walks every session dir and holder (see suspects()); the first one does. */
  private walkWanted = true;
  /** Suspects a step could not fence yet (a registration not seen yet, a young dir): looked at again. */
  private readonly unsettled = new Map<string, Suspect>();

  constructor(
    private readonly term: Term,
    private readonly writer: GridWriter,
    private readonly reports: WorkerReports,
    private readonly direct: DirectInboxes,
  ) {
    this.capacities = new WorkerCapacities(term, (name) => this.readAgain(name));
  }

  /**
   * Reads the registrations of the names added only: a registration that ends or changes hands while
   * its name stays listed (deleted and created again between two reads of R/workers) is caught by its
   * capacity's watch, which reads it again (see WorkerCapacities).
   */
  async onWorkers({ added, removed }: ChildrenChange): Promise<void> {
    if (removed.length > 0)
      this.term.apply(() => {
        for (const name of removed) this.settle(name, undefined);
      });
    await forEachLimit(added, 32, (name) => this.readRegistration(name));
  }

  /**
   * Reads `name`'s registration and queues what it shows at once, so that changes are applied in the
   * order ZooKeeper answered their reads.
   */
  private async readRegistration(name: string): Promise<void> {
    const { term } = this;
    // Any client can create nodes here: a name that is no worker name, or a node that no session
    // owns (persistent), is not a worker, and must not reach layout.worker() or an assignment.
    if (!isValidWorkerName(name)) {
      term.log("warn", "unexpected node under workers; ignoring it", { node: name });
      return;
    }
    const got = await getOrNull(term.client, term.layout.worker(name));
    let worker: LiveWorker | undefined;
    if (got) {
      const reg = decodeWorkerRegistration(got.data);
      const session = got.stat.ephemeralOwner;
      if (session === "0") {
        term.log("warn", "worker registration is not ephemeral; ignoring it", { worker: name });
      } else if (!reg.ok) {
        term.log("warn", "worker registration unreadable; ignoring that worker", {
          worker: name,
          error: reg.error.message,
        });
      } else {
        worker = { session, capacity: reg.value.capacity, labels: reg.value.labels };
      }
    }
    term.apply(() => this.settle(name, worker));
  }

  /** Reads `name`'s registration again, until a read succeeds or the term ends. */
  private readAgain(name: string): void {
    const { term } = this;
    void this.readRegistration(name).then(
      () => term.kick(),
      (err) => {
        if (term.isStopped()) return;
        term.log("warn", "reading a worker registration failed; retrying", {
          worker: name,
          error: String(err),
        });
        setTimeout(() => this.readAgain(name), 200).unref();
      },
    );
  }

  /** `name` is held by `worker`'s session now, or by none. */
  private settle(name: string, worker: LiveWorker | undefined): void {
    const { book } = this.term;
    const before = this.live.get(name);
    if (before && before.session !== worker?.session) {
      // That session may leave dirs and tasks behind: the next step looks at every session.
      this.walkWanted = true;
      book.removeWorker(name);
      this.capacities.forget(name);
      this.writer.assignmentChanged(name);
      this.live.delete(name);
      this.term.log("info", "worker gone", { worker: name, session: before.session });
    }
    if (!worker) return;
    this.seen.add(`${name}@${worker.session}`);
    book.setWorker(name, worker.session, worker.capacity, worker.labels);
    this.capacities.follow(name, worker.session);
    this.live.set(name, worker);
    if (before?.session === worker.session) return;
    this.term.log("info", "worker joined", {
      worker: name,
      session: worker.session,
      capacity: worker.capacity,
    });
    this.writer.assignmentChanged(name);
  }

  /**
   * Sessions that no longer hold a worker's registration are fenced: their remaining reports are
   * applied, their tasks handed out again (or failed past maxAttempts), and their report dir is
   * deleted after this step's writes, so a worker that wakes up from a pause cannot publish into it.
   */
  async fenceDeadSessions(): Promise<Fenced> {
    const suspects = this.suspects();
    const fenced: Fenced = { reports: [], inboxes: [] };
    if (suspects.size === 0) return fenced;
    try {
      await Promise.all(
        [...suspects].map(async ([key, suspect]) => {
          if (!(await this.fence(key, suspect, fenced))) this.unsettled.set(key, suspect);
        }),
      );
    } catch (err) {
      this.recheckAll();
      throw err;
    }
    return fenced;
  }

  /**
   * The next step looks at every session again: a step or a clean-up failed (a fenced session's dir
   * may still be there), or the connection came back.
   */
  recheckAll(): void {
    this.walkWanted = true;
  }

  /** Report dirs or inboxes were listed anew: one may be a session's that is not registered. */
  dirsChanged(change: ChildrenChange): void {
    if (change.added.length > 0) this.walkWanted = true;
  }

  /**
   * The sessions that may be dead. Walking every session dir and holder costs O(workers), so it is
   * done only after something that may leave a session unregistered (a registration settled, a dir
   * listed, a failed step); other steps look at the sessions that took their first task since the
   * last step, and at those a step could not settle yet.
   */
  private suspects(): Map<string, Suspect> {
    const suspects = new Map<string, Suspect>();
    // One that left no dir and holds no task any more needs no fence.
    for (const [key, s] of this.unsettled) {
      if (this.term.book.holds(s.worker, s.session) || this.reports.follows(key) || this.direct.follows(key))
        suspects.set(key, s);
    }
    this.unsettled.clear();
    const holders = this.term.book.takeNewHolders();
    if (this.walkWanted) {
      this.walkWanted = false;
      for (const dirs of [this.reports.sessions(), this.direct.sessions()]) {
        for (const [name, d] of dirs) {
          if (!this.isLive(d))
            suspects.set(name, { worker: d.worker, session: d.session, holdsTasks: false });
        }
      }
      holders.push(...this.term.book.holdingSessions());
    }
    for (const h of holders) {
      if (!this.isLive(h)) suspects.set(`${h.worker}@${h.session}`, { ...h, holdsTasks: true });
    }
    for (const [key, suspect] of suspects) if (this.isLive(suspect)) suspects.delete(key);
    return suspects;
  }

  private isLive({ worker, session }: { worker: string; session: string }): boolean {
    return this.live.get(worker)?.session === session;
  }

  /** Fences one suspect; false if it may not be fenced yet (it is looked at again by the next step). */
  private async fence(
    key: string,
    { worker, session, holdsTasks }: Suspect,
    fenced: Fenced,
  ): Promise<boolean> {
    const { term } = this;
    // A fresh read: the watch may lag behind a worker that just registered this session.
    const stat = await term.client.exists(term.layout.worker(worker));
    if (stat && stat.ephemeralOwner === session) return false;
    const dirName = `${worker}@${session}`;
    if (!holdsTasks && !this.seen.has(key) && !(await this.dirIsStale(dirName))) return false;
    if (await this.reports.readAll(dirName)) {
      term.drain();
      fenced.reports.push(dirName);
    }
    const names = await this.direct.readAll(dirName);
    if (names) {
      term.drain();
      fenced.inboxes.push({ dirName, names });
    }
    for (const status of term.book.loseSession(worker, session)) {
      this.writer.addResult(status);
      term.log("warn", "task failed: worker lost", { task: status.id, worker, attempt: status.attempt });
    }
    term.log("info", "fenced worker session", { worker, session, key });
    return true;
  }

  stop(): void {
    clearTimeout(this.staleDirTimer);
    this.capacities.stop();
  }

  /**
   * A report dir of a session this term never saw registered and that holds no task may belong to a
   * worker between creating its dir and registering: it is fenced only once it is older than any
   * session could live unregistered. A retry is scheduled for then.
   */
  private async dirIsStale(dirName: string): Promise<boolean> {
    const { term } = this;
    // A session's report dir, or its inbox when that is all it left.
    const stat =
      (await term.client.exists(`${term.layout.reports}/${dirName}`)) ??
      (await term.client.exists(`${term.layout.inbox}/${dirName}`));
    if (!stat) return false;
    const age = Date.now() - stat.ctime;
    if (age >= UNREGISTERED_DIR_GRACE_MS) return true;
    if (!this.staleDirTimer) {
      this.staleDirTimer = setTimeout(
        () => {
          this.staleDirTimer = undefined;
          term.kick();
        },
        UNREGISTERED_DIR_GRACE_MS - age + 100,
      );
      this.staleDirTimer.unref();
    }
    return false;
  }
}
