import { hostname } from "node:os";
import {
  isNodeExists,
  isRetryable,
  messageOf,
  type SessionBoundClient,
  sleep,
  type ZkClient,
} from "@zkgrid/core";
import { type AnswerAddress, gridLayout, type WorkerRegistration } from "@zkgrid/protocol";
import { CutoffClock } from "./cutoff.js";
import { asError } from "./errors.js";
import type { Prefetch } from "./prefetch.js";
import { claimWorkerName, releaseWorkerName, rewriteRegistration } from "./registration.js";
import { SessionReporter } from "./reporter.js";
import type { TaskSupervisor } from "./supervisor.js";
import type { WorkerEvents } from "./worker-events.js";
import { type CompiledWorkerOptions, VERSION } from "./worker-options.js";

/** One ZooKeeper session the worker is registered on. */
export interface Session {
  id: string;
  reportDir: string;
  /** `R/inbox/<worker>@<session>`: where submitters put direct tasks for this session. */
  inboxDir: string;
  /** Names in the inbox already read (taken, declined or left to the leader). */
  inboxSeen: Set<string>;
  /** Aborts when the session ends. */
  signal: AbortSignal;
  /** The worker's client bound to this session: its writes never land on a later one. */
  client: SessionBoundClient;
  reporter: SessionReporter;
  /** "fenced": the leader gave this session up; it stays registered but takes no tasks. */
  status: "active" | "fenced" | "ended";
  /** What `R/workers/<name>` holds for this session (its capacity follows the prefetch). */
  registration: WorkerRegistration;
}

export interface SessionKeeperOptions {
  options: CompiledWorkerOptions;
  client: () => ZkClient;
  supervisor: TaskSupervisor;
  events: WorkerEvents;
  /** Aborts when the worker stops or fails. */
  lifetime: AbortSignal;
  /** Where the answer stream listens, registered with each session; undefined: no stream. */
  answerAddress: () => AnswerAddress | undefined;
  /** True once the worker is stopping: no new session is joined. */
  stopping: () => boolean;
  /** Whether a report may wait (tasks are held to start; see SessionReporter's `hold`). */
  holdReports: () => boolean;
  /** The capacity registered is `prefetch.capacity`, rewritten by `publishCapacity()` as it changes. */
  prefetch: Prefetch;
  /** True once the worker is stopping: every report written from then on carries `draining`. */
  draining: () => boolean;
  /** Registered on a new session. */
  joined: (session: Session) => void;
  /** What may run changed: a report dir made again, a pause checked. */
  changed: () => void;
  /** The worker cannot go on (its name is taken, say). */
  fail: (error: Error) => void;
}

/**
 * The worker's sessions: registers on each new one (core's keepRunning calls `join`), opens its
 * reporter, makes its report dir again if another client deleted it, ends it (killing its tasks) when it
 * expires or is fenced, stops its tasks when cut off from the ensemble past `cutoffStopMs`, and notices
 * when the process was frozen long enough to have lost it.
 */
export class SessionKeeper {
  private session: Session | undefined;
  private readonly layout = gridLayout("/");
  private readonly startedAt = Date.now();
  private readonly options: CompiledWorkerOptions;
  /** When the freeze detector last ran; a long gap means the process was stopped (SIGSTOP, GC, VM). */
  private lastTick = Date.now();
  /** Set by a tick that saw such a gap, until a reconcile has checked the session. */
  private frozen = false;
  private tickTimer: NodeJS.Timeout | undefined;
  /** Set while a round trip checks that the session survived a freeze: nothing starts meanwhile. */
  private confirming: Promise<void> | undefined;
  private readonly cutoff: CutoffClock;
  /** Tasks stopped in the current cut, for the log line when the connection is back. */
  private stoppedCutOff = 0;
  /** A registration rewrite is under way; `publishAgain`: the capacity changed again meanwhile. */
  private publishing = false;
  private publishAgain = false;

  constructor(private readonly deps: SessionKeeperOptions) {
    this.options = deps.options;
    this.cutoff = new CutoffClock({
      boundMs: this.options.cutoffStopMs,
      onCutOff: (forMs) => this.stopCutOff(forMs),
      onBack: (forMs, cutOff) => {
        if (cutOff) {
          const session = this.session;
          const survived = session !== undefined && session.status === "active" && !session.signal.aborted;
          const handedBack =
            this.stoppedCutOff > 0 ? `: the ${this.stoppedCutOff} tasks stopped are handed back` : "";
          this.options.log(
            "info",
            `connected again after ${forMs} ms cut off${survived ? `; session ${session.id} survived${handedBack}` : ""}`,
          );
        }
        this.stoppedCutOff = 0;
        this.deps.changed();
      },
    });
  }

  /** The session the worker is registered on and serving, if any. */
  get current(): Session | undefined {
    return this.session;
  }

  /** Runs once per ZooKeeper session (core's keepRunning): registers, then serves it until it ends. */
  async join(sessionId: string, signal: AbortSignal): Promise<"completed" | undefined> {
    if (this.deps.lifetime.aborted || this.deps.stopping()) return "completed";
    const client = this.deps.client();
    this.cutoff.watch(client);
    const { name } = this.options;
    const reportDir = this.layout.reportDir(name, sessionId);
    const inboxDir = this.layout.inboxDir(name, sessionId);
    const registration: WorkerRegistration = {
      v: 1,
      name,
      host: hostname(),
      pid: process.pid,
      capacity: this.deps.prefetch.capacity,
      labels: [...this.options.labels],
      version: VERSION,
      startedAt: this.startedAt,
      session: sessionId,
    };
    const answers = this.deps.answerAddress();
    if (answers !== undefined) registration.answers = answers;
    try {
      await claimWorkerName({
        client,
        path: this.layout.worker(name),
        reportDir,
        inboxDir,
        registration,
        waitMs: this.options.nameWaitMs,
        signal,
        logger: this.options.log,
      });
    } catch (error) {
      if (signal.aborted) return; // the session ended meanwhile: the next one tries again
      this.deps.fail(asError(error));
      return "completed";
    }
    if (signal.aborted) return;
    const session = {
      id: sessionId,
      reportDir,
      inboxDir,
      inboxSeen: new Set(),
      signal,
      client: client.boundTo(sessionId),
      status: "active",
      registration,
    } as unknown as Session;
    session.reporter = this.openReporter(session);
    this.session = session;
    signal.addEventListener(
      "abort",
      () => this.end(session, this.deps.lifetime.aborted ? "closed" : "expired"),
      { once: true },
    );
    this.options.log("info", `registered on session ${sessionId} (capacity ${registration.capacity})`, {
      session: sessionId,
    });
    this.deps.events.emit({ type: "registered", sessionId, reportDir });
    this.deps.joined(session);
  }

  /**
   * The prefetch changed: the session's registration is rewritten with the new capacity, which the
   * leader follows. One write at a time; the last capacity wins.
   */
  publishCapacity(): void {
    const session = this.session;
    if (session === undefined || session.status !== "active") return;
    if (this.publishing) {
      this.publishAgain = true;
      return;
    }
    this.publishing = true;
    void this.writeCapacity(session).finally(() => {
      this.publishing = false;
      if (!this.publishAgain) return;
      this.publishAgain = false;
      this.publishCapacity();
    });
  }

  private async writeCapacity(session: Session): Promise<void> {
    // Bound to the session: a rewrite never lands on the next one's registration.
    const { client } = session;
    while (session.status === "active" && !session.signal.aborted) {
      const capacity = this.deps.prefetch.capacity;
      if (capacity === session.registration.capacity) return;
      const registration = { ...session.registration, capacity };
      try {
        if (!(await rewriteRegistration(client, this.layout.worker(this.options.name), registration))) return;
        session.registration = registration;
        this.options.log("debug", `capacity ${capacity} (prefetch ${this.deps.prefetch.tasks})`, {
          session: session.id,
        });
      } catch (error) {
        if (session.signal.aborted || !isRetryable(error)) {
          if (!session.signal.aborted)
            this.options.log("warn", `could not register capacity ${capacity}: ${messageOf(error)}`, {
              session: session.id,
            });
          return;
        }
        await sleep(200);
      }
    }
  }

  private openReporter(session: Session): SessionReporter {
    return new SessionReporter({
      // Bound: a report the session could not write (a task stopped while cut off) is never written
      // by a later session, into a dir the leader may not have fenced yet.
      client: session.client,
      dir: session.reportDir,
      worker: this.options.name,
      session: session.id,
      logger: this.options.log,
      signal: session.signal,
      onFenced: () => void this.recoverReportDir(session),
      hold: this.deps.holdReports,
      draining: this.deps.draining,
    });
  }

  /**
   * A report create found the session's report dir gone. The leader deletes it only when it fences a
   * session whose registration is gone, so while this session still owns the registration another
   * client deleted it: the dir is made again and every final status the leader may not have collected
   * (its task is still assigned) is reported again. Otherwise the session counts as fenced.
   */
  private async recoverReportDir(session: Session): Promise<void> {
    // Bound to the session: if it ends meanwhile, nothing is made for it on the next one.
    const { client } = session;
    let owned: boolean | undefined;
    while (owned === undefined && session.status === "active" && !session.signal.aborted) {
      owned = await client.exists(this.layout.worker(this.options.name)).then(
        (stat) => stat?.ephemeralOwner === session.id,
        () => undefined, // no answer: ask again, unless the session ends meanwhile
      );
      if (owned === undefined) await new Promise((wake) => setTimeout(wake, 500));
    }
    if (session.status !== "active" || session.signal.aborted) return;
    if (owned) {
      try {
        await client.create(session.reportDir, undefined, "persistent");
      } catch (error) {
        if (!isNodeExists(error)) owned = false;
      }
    }
    if (!owned) {
      this.end(session, "fenced");
      return;
    }
    if (session.status !== "active" || session.signal.aborted) return;
    session.reporter = this.openReporter(session);
    const again = this.deps.supervisor.finalUpdates(session);
    for (const update of again) session.reporter.report(update);
    this.options.log(
      "warn",
      `report dir ${session.reportDir} was deleted while session ${session.id} lives: made it again and reported ${again.length} final statuses again`,
      { session: session.id },
    );
    this.deps.changed();
  }

  /**
   * The session is over for this worker (expired, fenced, or closing): its running tasks are killed and
   * their results dropped, since the leader hands them out again.
   */
  end(session: Session, reason: "expired" | "fenced" | "closed"): void {
    if (session.status === "ended" || (session.status === "fenced" && reason === "fenced")) return;
    session.status = reason === "fenced" ? "fenced" : "ended";
    if (reason !== "fenced") session.reporter.close();
    const killed = this.deps.supervisor.dropSession(session);
    if (reason !== "closed" || killed > 0) {
      this.options.log("warn", `session ${session.id} ${reason}; killed ${killed} running tasks`, {
        session: session.id,
      });
    }
    this.deps.events.emit({ type: "session-ended", sessionId: session.id, reason });
  }

  /**
   * Cut off from every ensemble member for `forMs`: the running tasks are stopped, as a cancel stops
   * them, before the leader can fence the session and hand them out again. If the session survives,
   * they are reported `returned` (the leader queues them again, one attempt used, as for a lost
   * worker); if it expired, nothing is reported for them, by this session or by the next.
   */
  private stopCutOff(forMs: number): void {
    const session = this.session;
    const active = session !== undefined && session.status === "active" && !session.signal.aborted;
    const stopped = active ? this.deps.supervisor.stopCutOff(session) : 0;
    this.stoppedCutOff += stopped;
    this.options.log(
      "warn",
      `cut off from every ZooKeeper server for ${forMs} ms (cutoff stop ${this.options.cutoffStopMs} ms): stopped ${stopped} running tasks`,
      session === undefined ? {} : { session: session.id },
    );
    this.deps.events.emit({ type: "cut-off", sessionId: session?.id, forMs, stopped });
  }

  /** Deletes the registration if this session still owns it: the leader then fences the session. */
  unregister(session: Session): Promise<void> {
    return releaseWorkerName(this.deps.client(), this.layout.worker(this.options.name), session.id);
  }

  /** Starts the freeze detector. */
  startTicking(): void {
    // The start's own wait (a connect, a name a crashed session still held) is no freeze.
    this.lastTick = Date.now();
    this.tickTimer = setInterval(() => {
      // After a stop (SIGSTOP, a VM pause) timers run before I/O callbacks: this tick, not the
      // task that ended meanwhile, is the first to see the gap, so it must remember it.
      const now = Date.now();
      if (now - this.lastTick > this.options.freezeGapMs) this.frozen = true;
      this.lastTick = now;
    }, 250);
    this.tickTimer.unref();
  }

  /** Stops the freeze detector and the cut-off clock. */
  stopTicking(): void {
    clearInterval(this.tickTimer);
    this.cutoff.stop();
  }

  /**
   * True while the worker must not start tasks: while its connection is lost (a task started then could
   * outlive a fence), or because it may have been frozen past its session timeout without hearing of it
   * yet: the first call after a long gap asks ZooKeeper whether its registration still belongs to its
   * session, and ends the session if not.
   */
  heldAfterFreeze(session: Session): boolean {
    if (this.cutoff.lost) return true;
    if (this.confirming !== undefined) return true;
    if (!this.frozen && Date.now() - this.lastTick <= this.options.freezeGapMs) return false;
    this.frozen = false;
    this.lastTick = Date.now();
    this.confirming = this.deps
      .client()
      .exists(this.layout.worker(this.options.name))
      .then(
        (stat) => {
          if (stat?.ephemeralOwner !== session.id) this.end(session, "expired");
        },
        () => {
          // No answer: the connection events decide what happened to the session.
        },
      )
      .finally(() => {
        this.confirming = undefined;
        this.deps.changed();
      });
    return true;
  }
}
