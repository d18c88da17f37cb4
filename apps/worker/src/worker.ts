import { join } from "node:path";
import { connect, messageOf, type ZkClient } from "@zkgrid/core";
import type { AnswerAddress } from "@zkgrid/protocol";
import { AnswerStream } from "./answer-stream.js";
import { asError, WorkerOptionError, WorkerStoppedError } from "./errors.js";
import type { LauncherMode } from "./launcher.js";
import { LocalLock } from "./lock.js";
import { Prefetch } from "./prefetch.js";
import { type Session, SessionKeeper } from "./session.js";
import { TaskSupervisor } from "./supervisor.js";
import { TaskSource } from "./task-source.js";
import { type WorkerEvent, WorkerEvents, type WorkerState } from "./worker-events.js";
import {
  type CompiledWorkerOptions,
  compileWorkerOptions,
  durationOption,
  type WorkerOptions,
} from "./worker-options.js";

export interface StopOptions {
  /** How long running tasks may still run before they are killed and returned; default `graceMs`. */
  graceMs?: number;
}

/** A running worker, made by `startWorker()`. */
export interface Worker {
  readonly name: string;
  readonly state: WorkerState;
  /** The session the worker is registered on, if any. */
  readonly sessionId: string | undefined;
  /** The ZooKeeper client. */
  readonly client: ZkClient;
  /** The error that made the worker FAILED. */
  readonly error: Error | undefined;
  /** How many tasks are running now. */
  readonly running: number;
  /** How task processes are started: through the Perl launcher, or spawned by the worker itself. */
  readonly taskLauncher: LauncherMode;
  /** Its answer stream, if it has one: where it listens, connections open now, answers sent so far. */
  readonly answerStream:
    | { readonly address: AnswerAddress; readonly connections: number; readonly answersSent: number }
    | undefined;
  /** Calls `listener` for each event; returns an unsubscribe function. */
  on(listener: (event: WorkerEvent) => void): () => void;
  /** Events from now on; ends when the worker is STOPPED or FAILED. */
  events(options?: { signal?: AbortSignal }): AsyncIterableIterator<WorkerEvent>;
  /**
   * Takes nothing new, lets running tasks finish within the grace period, kills the rest, reports every
   * task assigned but not finished as `returned`, waits for the report to be written, unregisters and
   * closes. Calling it again with a shorter grace shortens the wait.
   */
  stop(options?: StopOptions): Promise<void>;
  /** Resolves when the worker is STOPPED or FAILED. */
  closed(): Promise<void>;
}

/**
 * The worker's lifecycle and events. What it does is in its parts: the sessions (session.ts), where
 * tasks come from (task-source.ts) and the supervisor that starts and kills them (supervisor.ts).
 */
class GridWorker implements Worker {
  readonly name: string;
  state: WorkerState = "INITIALIZED";
  error: Error | undefined;

  private zk: ZkClient | undefined;
  private readonly options: CompiledWorkerOptions;
  private readonly hub: WorkerEvents;
  private readonly supervisor: TaskSupervisor;
  private readonly sessions: SessionKeeper;
  private readonly source: TaskSource;
  private readonly prefetch: Prefetch;
  private lock: LocalLock | undefined;
  /** Where submitters ask for direct tasks' answers; undefined when off or not started. */
  private answers: AnswerStream | undefined;
  /** Aborts when the worker stops or fails: ends the session loop and the assignment watch. */
  private readonly lifetime = new AbortController();
  private stopping: Promise<void> | undefined;
  /** The first error passed to fail(). */
  private failure: Error | undefined;
  private failing: Promise<void> | undefined;
  private stopDeadline = Number.POSITIVE_INFINITY;
  private stopTimer: NodeJS.Timeout | undefined;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  private firstRegistration!: { resolve: () => void; reject: (error: Error) => void };

  constructor(options: WorkerOptions) {
    this.options = compileWorkerOptions(options);
    const { connection, log } = this.options;
    this.name = this.options.name;
    if ("client" in connection) this.zk = connection.client;
    this.hub = new WorkerEvents(log);
    const client = () => this.client;
    const fail = (error: Error) => void this.fail(error);
    // Not once stopping: the registration is about to be deleted, under the version last read.
    this.prefetch = new Prefetch(this.options.prefetch, this.options.concurrency, () => {
      if (this.state === "RUNNING") this.sessions.publishCapacity();
    });
    this.supervisor = new TaskSupervisor({
      options: this.options,
      client,
      answers: () => this.answers,
      events: this.hub,
      onTaskEnded: () => this.source.scheduleReconcile(),
    });
    this.sessions = new SessionKeeper({
      options: this.options,
      client,
      supervisor: this.supervisor,
      events: this.hub,
      lifetime: this.lifetime.signal,
      answerAddress: () => this.answers?.address,
      stopping: () => this.stopping !== undefined,
      // With tasks waiting to start, the leader need not hear of finished ones until the held tasks
      // are down to half, or to one round of `concurrency`: it then refills many slots with one
      // assignment, and the rest keep the slots busy until that assignment arrives.
      holdReports: () =>
        this.prefetch.tasks > 0 && this.state === "RUNNING" && this.source.backlog > this.prefetch.lowWater,
      prefetch: this.prefetch,
      // Every report written while stopping says so: the leader hands this session nothing more.
      draining: () => this.state === "STOPPING" || this.state === "DRAINING",
      joined: (session) => this.onJoined(session),
      changed: () => this.source.reconcile(),
      fail,
    });
    this.source = new TaskSource({
      options: this.options,
      client,
      supervisor: this.supervisor,
      sessions: this.sessions,
      prefetch: this.prefetch,
      events: this.hub,
      state: () => this.state,
      lifetime: this.lifetime.signal,
      fail,
    });
    this.closedPromise = new Promise((resolveClosed) => {
      this.resolveClosed = resolveClosed;
    });
  }

  get client(): ZkClient {
    if (this.zk === undefined) throw new WorkerStoppedError("the worker has no client yet");
    return this.zk;
  }

  get sessionId(): string | undefined {
    const session = this.sessions.current;
    return session?.status === "ended" ? undefined : session?.id;
  }

  get running(): number {
    return this.supervisor.running;
  }

  get taskLauncher(): LauncherMode {
    return this.supervisor.launcherMode;
  }

  get answerStream(): Worker["answerStream"] {
    return this.answers;
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async start(): Promise<void> {
    const registered = new Promise<void>((resolveFirst, rejectFirst) => {
      this.firstRegistration = { resolve: resolveFirst, reject: rejectFirst };
    });
    registered.catch(() => {}); // also rejected when nobody awaits it yet
    const { signal, connection, baseDir, name } = this.options;
    const onAbort = () => {
      if (this.state === "INITIALIZED")
        void this.fail(new WorkerStoppedError("the worker was stopped while starting"));
      else void this.stop();
    };
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.lock = await LocalLock.acquire(join(baseDir, name, ".lock")).catch((error: unknown) => {
        throw unusableCwd(error);
      });
      if (this.zk === undefined && !this.lifetime.signal.aborted && !("client" in connection)) {
        this.zk = await connect({
          ...connection,
          sessionTimeoutMs: this.options.sessionTimeoutMs,
          logger: this.options.log,
          signal: this.lifetime.signal,
        });
      }
      if (this.lifetime.signal.aborted) throw new WorkerStoppedError();
      const client = this.client;
      await this.listenForAnswers(client);
      void this.source.watchAssignment(client);
      client
        .keepRunning((ctx) => this.sessions.join(ctx.sessionId, ctx.signal), { signal: this.lifetime.signal })
        .catch((error: unknown) => {
          if (!this.lifetime.signal.aborted) void this.fail(asError(error));
        });
      await registered;
    } catch (error) {
      await this.fail(asError(error));
      throw this.failure ?? error;
    }
    this.setState("RUNNING");
    this.sessions.startTicking();
    this.source.reconcile();
  }

  /**
   * Opens the answer stream, if on. Where it cannot listen, an address given as an option fails the
   * start; one found by the worker itself is only warned of (answers then come from their nodes).
   */
  private async listenForAnswers(client: ZkClient): Promise<void> {
    const { answers, log } = this.options;
    if (answers === undefined) return;
    try {
      this.answers = await AnswerStream.listen(answers, client.servers, log);
      log("info", `answer stream on ${this.answers.address.host}:${this.answers.address.port}`);
    } catch (error) {
      const where = `${answers.host ?? "the address that reaches ZooKeeper"}, port ${answers.port}`;
      if (answers.host !== undefined)
        throw new WorkerOptionError("answerAddress", `cannot listen on ${where}: ${messageOf(error)}`);
      log(
        "warn",
        `no answer stream (cannot listen on ${where}: ${messageOf(error)}); direct tasks' submitters read their answers from ZooKeeper`,
      );
    }
  }

  private onJoined(session: Session): void {
    void this.source.watchInbox(session);
    if (this.state === "INITIALIZED") this.firstRegistration.resolve();
    else this.source.reconcile();
  }

  stop(options: StopOptions = {}): Promise<void> {
    if (this.failing !== undefined) return this.closedPromise;
    const graceMs = durationOption("graceMs", options.graceMs, this.options.graceMs);
    const deadline = Date.now() + graceMs;
    if (deadline < this.stopDeadline) {
      this.stopDeadline = deadline;
      clearTimeout(this.stopTimer);
      this.stopTimer = setTimeout(() => this.supervisor.killAll("stop"), graceMs);
    }
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  closed(): Promise<void> {
    return this.closedPromise;
  }

  private async shutdown(): Promise<void> {
    this.setState("STOPPING");
    this.options.log(
      "info",
      `stopping; running tasks get until ${new Date(this.stopDeadline).toISOString()}`,
    );
    this.source.reconcile(); // hands back what has not started
    this.setState("DRAINING");
    await this.supervisor.allRunsDone();
    clearTimeout(this.stopTimer);
    const session = this.sessions.current;
    if (session !== undefined && session.status !== "ended" && this.zk !== undefined) {
      const written = await this.unlessUnreachable(this.zk, async () => {
        // Answers first: one the node refused is reported instead.
        await this.supervisor.answersWritten();
        await session.reporter.flushed();
        // Only now that the reports are written: the leader fences the session once this node is gone.
        await this.sessions
          .unregister(session)
          .catch((error: unknown) =>
            this.options.log("warn", `could not delete the registration: ${messageOf(error)}`),
          );
      });
      if (!written) {
        this.options.log(
          "warn",
          "stopping without ZooKeeper: the final statuses not yet reported are dropped; the leader " +
            "hands this session's tasks out again once the session expires (their output stays on disk)",
          { session: session.id },
        );
        this.sessions.end(session, "closed");
      }
    }
    this.lifetime.abort();
    await this.release();
    this.setState("STOPPED");
    this.resolveClosed();
  }

  /** Ends the worker after an error (or a stop while starting); idempotent. */
  private fail(error: Error): Promise<void> {
    if (this.stopping !== undefined) {
      // Already on its way out: finish the stop rather than abandon the reports it is writing.
      this.options.log("error", `error while stopping: ${error.message}`);
      return this.stopping;
    }
    if (this.failure === undefined) {
      this.failure = error;
      this.failing = this.abandon(error);
    }
    return this.failing ?? Promise.resolve();
  }

  private async abandon(error: Error): Promise<void> {
    const stopped = error instanceof WorkerStoppedError;
    if (!stopped) {
      this.error = error;
      this.options.log("error", `failed: ${error.message}`);
    }
    this.firstRegistration.reject(error);
    const session = this.sessions.current;
    const registered = session !== undefined && session.status !== "ended";
    if (session !== undefined) this.sessions.end(session, "closed");
    this.lifetime.abort();
    await this.supervisor.allRunsDone();
    const zk = this.zk;
    if (registered && zk !== undefined)
      await this.unlessUnreachable(zk, () => this.sessions.unregister(session).catch(() => {}));
    await this.release();
    this.setState(stopped ? "STOPPED" : "FAILED", this.error);
    this.resolveClosed();
  }

  /**
   * Runs the final ZooKeeper writes of a stop, and resolves whether they finished. It gives up (false)
   * once the connection has been lost for a third of the session timeout: a reconnect to a live server
   * takes far less, so the server is taken as gone, and a stop does not wait for it (the session then
   * expires on the server, which is what the leader acts on).
   */
  private async unlessUnreachable(zk: ZkClient, writes: () => Promise<void>): Promise<boolean> {
    const patienceMs = this.options.sessionTimeoutMs / 3;
    let timer: NodeJS.Timeout | undefined;
    let giveUp!: () => void;
    const unreachable = new Promise<false>((resolve) => {
      giveUp = () => resolve(false);
    });
    const lost = () => {
      clearTimeout(timer);
      timer = setTimeout(giveUp, patienceMs);
    };
    const unsubscribe = [
      zk.on("suspended", lost),
      zk.on("reconnected", () => clearTimeout(timer)),
      zk.on("connected", () => clearTimeout(timer)),
    ];
    if (zk.state !== "connected") lost();
    try {
      return await Promise.race([writes().then(() => true), unreachable]);
    } finally {
      clearTimeout(timer);
      for (const off of unsubscribe) off();
    }
  }

  private async release(): Promise<void> {
    this.sessions.stopTicking();
    this.prefetch.stop();
    await this.supervisor.close();
    await this.answers?.close();
    if (!("client" in this.options.connection)) await this.zk?.close();
    await this.lock?.release();
  }

  private setState(state: WorkerState, error?: Error): void {
    this.state = state;
    this.hub.emit(error === undefined ? { type: "state", state } : { type: "state", state, error });
  }

  // ---- events --------------------------------------------------------------------------------

  on(listener: (event: WorkerEvent) => void): () => void {
    return this.hub.on(listener);
  }

  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<WorkerEvent> {
    return this.hub.events(this.state === "STOPPED" || this.state === "FAILED", options);
  }
}

/** A working directory the worker cannot write is a bad `cwd` option (exit 2 in the bin). */
function unusableCwd(error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === undefined || !["EROFS", "EACCES", "EPERM", "ENOTDIR", "ENOSPC", "EDQUOT"].includes(code))
    return error;
  return new WorkerOptionError("cwd", messageOf(error));
}

/**
 * Starts a worker: takes the local lock `<cwd>/<name>/.lock`, connects, registers on the first session
 * and starts watching its assignment. Resolves once registered (state RUNNING); rejects with
 * `WorkerNameTakenError` if a live worker holds the name, `WorkerLockedError` if a local one does.
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const worker = new GridWorker(options);
  await worker.start();
  return worker;
}
