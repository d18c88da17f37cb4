import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeAssignment, type TaskSpec } from "@zkgrid/protocol";
import { type ServerHost, seededRandom, startEnsemble, waitFor, type ZkEnsemble } from "@zkgrid/testing";
import { AnswerTaps } from "./answer-taps.js";
import { Cluster, type GridProcess } from "./cluster.js";
import {
  checkRun,
  type Loss,
  readExecutions,
  recordingCommand,
  type StaleWindow,
  type Verdict,
} from "./ledger.js";
import { TimeLedger } from "./time-ledger.js";
import { ScheduleLedger } from "./schedules.js";
import {
  chaosLabels,
  checkGate,
  GateDriver,
  LIMITED_LABEL,
  START_LIMIT,
  WORKER_LABELS,
} from "./gate-ledger.js";

export interface ChaosOptions {
  /** At least this many tasks are submitted (more if the faults take longer than the stream). */
  tasks: number;
  /** How many times the whole fault schedule runs. */
  rounds: number;
  sessionTimeoutMs: number;
  workers: number;
  concurrency: number;
  seed: number;
  /** Share of tasks put straight into a live worker session's inbox instead of the queue. */
  directShare: number;
  /** Limit for the final wait for every result. */
  resultTimeoutMs: number;
  /** Say what happens, as it happens. */
  log?: (line: string) => void;
}

export interface ChaosReport {
  faults: Array<{ fault: string; count: number }>;
  submitted: number;
  verdict: Verdict;
  table: string;
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** Options from the environment (CHAOS_TASKS, CHAOS_ROUNDS, CHAOS_SESSION_TIMEOUT_MS, CHAOS_SEED, CHAOS_DIRECT). */
export function chaosOptions(defaults: Partial<ChaosOptions>): ChaosOptions {
  const env = (name: string, fallback: number) => {
    const value = process.env[name];
    return value === undefined || value === "" ? fallback : Number(value);
  };
  return {
    tasks: env("CHAOS_TASKS", defaults.tasks ?? 300),
    rounds: env("CHAOS_ROUNDS", defaults.rounds ?? 1),
    sessionTimeoutMs: env("CHAOS_SESSION_TIMEOUT_MS", defaults.sessionTimeoutMs ?? 4000),
    workers: defaults.workers ?? 3,
    concurrency: defaults.concurrency ?? 4,
    seed: env("CHAOS_SEED", defaults.seed ?? Date.now() % 1_000_000),
    directShare: env("CHAOS_DIRECT", defaults.directShare ?? 0.1),
    resultTimeoutMs: defaults.resultTimeoutMs ?? 300_000,
    log: defaults.log,
  };
}

/**
 * A chaos run: a 3-node ensemble on loopback, two masters and `workers` workers as real processes, a
 * stream of tasks that record each execution, and faults injected one after another while the stream
 * flows. close() kills everything, also when run() threw.
 */
export class ChaosRun {
  ensemble: ZkEnsemble | undefined;
  cluster: Cluster | undefined;
  private readonly faults = new Map<string, number>();
  protected readonly losses: Loss[] = [];
  protected readonly staleWindows: StaleWindow[] = [];
  /** When one ZooKeeper member was down. */
  private readonly memberDown: Array<{ from: number; to: number }> = [];
  private readonly accepted = new Map<string, { maxAttempts: number }>();
  /** Tasks put in a worker session's inbox (accepted too), and those queued because it was gone. */
  private readonly direct = new Set<string>();
  /** Wants on the workers' answer streams, and the answers they sent. */
  private readonly taps = new AnswerTaps();
  private directQueued = 0;
  private readonly rnd: () => number;
  /** Number of the next task id: a batch's tasks are made before any of them is accepted. */
  private nextId = 0;
  /** Picks direct tasks and their workers, apart from `rnd` so that a seed keeps its task mix. */
  private readonly directRnd: () => number;
  private execDir = "";
  /** Delayed and retried tasks of the stream: judged by their own ledger, not `accepted`'s. */
  private timeLedger: TimeLedger | undefined;
  private schedules: ScheduleLedger | undefined;
  private readonly timeRnd: () => number;
  private feeding = true;
  private faultsDone = false;
  private stopped = false;
  private masterCount = 0;
  protected readonly workerNames: string[];
  /** Labels of every accepted task, for the gate's ledger. */
  private readonly labels = new Map<string, readonly string[]>();
  /** Pauses and a start limit while the faults run (tests/chaos/gate-ledger.ts). */
  private gate: GateDriver | undefined;
  private gating: Promise<void> | undefined;

  constructor(readonly options: ChaosOptions) {
    this.crashed = new Promise<never>((_, reject) => {
      this.reportCrash = reject;
    });
    this.crashed.catch(() => {});
    this.rnd = seededRandom(options.seed);
    this.directRnd = seededRandom(options.seed + 1);
    this.timeRnd = seededRandom(options.seed + 2);
    this.workerNames = Array.from({ length: options.workers }, (_, i) => `w${i + 1}`);
  }

  /** The last worker holds twice its concurrency beyond it (--prefetch), so held reports meet faults too. */
  private workerFlags(name: string): { concurrency: number; prefetch: number; labels: string[] } {
    const { concurrency } = this.options;
    const prefetch = name === this.workerNames.at(-1) ? 2 * concurrency : 0;
    return { concurrency, prefetch, labels: WORKER_LABELS };
  }

  private say(line: string): void {
    this.options.log?.(`[chaos ${new Date().toISOString().slice(11, 23)}] ${line}`);
  }

  protected count(fault: string): void {
    this.faults.set(fault, (this.faults.get(fault) ?? 0) + 1);
    this.say(fault);
  }

  async run(): Promise<ChaosReport> {
    const o = this.options;
    this.say(
      `seed ${o.seed}, ${o.tasks} tasks (${o.directShare * 100}% direct), ${o.rounds} rounds, session timeout ${o.sessionTimeoutMs} ms`,
    );
    this.ensemble = await this.startEnsemble();
    const ensemble = this.ensemble;
    const c = new Cluster({
      hostOf: (name) => this.hostOf(name),
      connectString: ensemble.connectString,
      liveConnectString: () =>
        ensemble.members
          .filter((m) => m.running)
          .map((m) => m.connectString)
          .join(",") || ensemble.connectString,
      sessionTimeoutMs: o.sessionTimeoutMs,
      label: "chaos",
      deleteRoot: false,
    });
    this.cluster = c;
    this.execDir = join(c.dir, "exec");
    mkdirSync(this.execDir);
    this.timeLedger = new TimeLedger(this.execDir);

    this.startMaster();
    await waitFor(async () => (await c.leaderName()) !== undefined, {
      timeoutMs: 60_000,
      message: "a leader",
    });
    this.startMaster();
    for (const w of this.workerNames) this.watchProc(c.startWorker(w, this.workerFlags(w)));
    await waitFor(
      async () => (await Promise.all(this.workerNames.map((w) => c.workerSession(w)))).every(Boolean),
      {
        timeoutMs: 60_000,
        message: "workers to register",
      },
    );
    this.schedules = new ScheduleLedger(c);
    await this.schedules.install(this.execDir);
    const watcher = this.watchRegistrations();
    const gate = new GateDriver(c, o.sessionTimeoutMs + 2000);
    await gate.setLimit();
    this.gate = gate;
    this.gating = gate.drive(() => this.faultsDone);
    this.gating.catch(() => {});
    const feeder = this.feed();
    // Awaited below; handled now so that a fault that fails first does not leave it unhandled.
    feeder.catch(() => {});

    try {
      for (let round = 0; round < o.rounds; round++) await this.faultRound(round);
    } finally {
      this.faultsDone = true;
    }
    return this.finish(feeder, watcher);
  }

  /** run(), with the table printed, and the processes' last log lines when it fails or finds violations. */
  async runAndReport(transcriptLines: number): Promise<ChaosReport> {
    let report: ChaosReport;
    try {
      report = await this.run();
    } catch (error) {
      console.error(this.cluster?.transcript(transcriptLines));
      throw error;
    }
    console.log(report.table);
    if (report.verdict.violations.length > 0) console.error(this.cluster?.transcript(transcriptLines));
    return report;
  }

  /** The ensemble the grid runs on: 3 members on loopback here. */
  protected startEnsemble(): Promise<ZkEnsemble> {
    return startEnsemble(3);
  }

  /** The test host a master or worker runs on; undefined: this machine's own network. */
  protected hostOf(_name: string): ServerHost | undefined {
    return undefined;
  }

  /** The worker `i` places after `round`'s first, so each round hits other workers. */
  protected pick(round: number, i: number): string {
    return this.workerNames[(round + i) % this.workerNames.length] as string;
  }

  /** One round of the fault schedule, each fault followed by results flowing again. */
  protected async faultRound(round: number): Promise<void> {
    const pick = (i: number) => this.pick(round, i);
    await this.killLeadingMaster();
    await this.progress();
    if (this.schedules) {
      await this.schedules.untilFiring(this.options.seed % 10);
      await this.killLeadingMaster("SIGKILL of the leading master at a schedule's firing");
      await this.progress();
    }
    await this.killWorker(pick(0));
    await this.progress();
    await this.pauseWorker(pick(1));
    await this.progress();
    await this.killEnsembleMember(round);
    await this.progress();
    await this.restartUnderOldName(pick(2));
    await this.progress();
    await this.pauseLeadingMaster();
    await this.progress();
    await this.restartEnsemble(round);
    await this.progress();
  }

  private async finish(feeder: Promise<void>, watcher: Promise<void>): Promise<ChaosReport> {
    const o = this.options;
    const c = this.c;
    await feeder;
    await this.gating;
    const firings = (await this.schedules?.pauseAndExpect()) ?? [];
    for (const id of firings) this.accepted.set(id, { maxAttempts: 3 });
    this.say(
      `stream done: ${this.accepted.size} tasks accepted (${firings.length} schedule slots); waiting for every result`,
    );
    const timed = this.timeLedger?.tasks ?? new Map();
    const all = await c.waitForResults([...this.accepted.keys(), ...timed.keys()], o.resultTimeoutMs);
    const results = all.filter((r) => !timed.has(r.id));
    await waitFor(async () => (await c.children(c.layout.queue)).length === 0, {
      timeoutMs: 60_000,
      message: "the queue to be consumed",
    });
    this.stopped = true;
    await watcher;

    const crashed = c.procs.filter((p) => !p.alive && !this.deliberatelyKilled.has(p));
    const verdict = checkRun({
      accepted: this.accepted,
      results,
      executions: readExecutions(this.execDir),
      losses: this.losses,
      staleWindows: this.staleWindows,
      workers: new Set(this.workerNames),
      direct: this.direct,
      streamed: this.taps.streamed,
    });
    verdict.violations.push(...this.taps.junk);
    const gateVerdict = checkGate({
      results,
      labels: this.labels,
      pauses: this.gate?.pauses ?? [],
      limits: [{ label: LIMITED_LABEL, ...START_LIMIT }],
      learnMs: o.sessionTimeoutMs,
    });
    verdict.violations.push(...gateVerdict.violations);
    for (const p of crashed)
      verdict.violations.push(`${p.role} ${p.name} (pid ${p.pid}) exited with code ${p.exitCode}`);
    verdict.violations.push(...(this.timeLedger?.check(all, readExecutions(this.execDir)) ?? []));
    const faults = [...this.faults].map(([fault, count]) => ({ fault, count }));
    const whileDown = results.filter(
      (r) =>
        r.finishedAt !== undefined &&
        this.memberDown.some((w) => r.finishedAt! >= w.from && r.finishedAt! <= w.to),
    ).length;
    // Worker logs say which direct tasks were declined (no free slot then) and so went through the queue.
    const declined = c.procs
      .filter((p) => p.role === "worker")
      .reduce((n, p) => n + (p.log().match(/declined a direct task/g)?.length ?? 0), 0);
    const notes: Array<[string, number]> = [
      ["tasks sent direct to a worker session's inbox", this.direct.size],
      ["  of which declined by the worker (queued by the leader)", declined],
      ["  of which re-run", verdict.directReRun],
      ["  of which answered on the worker's answer stream", verdict.streamedAnswers],
      [
        "    whose recorded result is a later run's (its worker lost after the answer)",
        verdict.streamedThenRerun,
      ],
      ["direct tasks queued instead (no live session, or its inbox gone)", this.directQueued],
      ["tasks finished while one ZooKeeper member was down", whileDown],
      ["delayed tasks (none started before its runAt)", this.timeLedger?.count("delayed") ?? 0],
      ["retried tasks (every attempt in their history)", this.timeLedger?.count("retried") ?? 0],
      ["schedule slots (every second, by interval and by cron), each fired once", firings.length],
      [
        `pauses of label ${(this.gate?.pauses ?? [])[0]?.label ?? "held"} (gate)`,
        (this.gate?.pauses ?? []).length,
      ],
      ["  tasks held through a pause, handed out after it", gateVerdict.heldThrough],
      ["  hand-outs while the leader learned a pause (allowed)", gateVerdict.whileLearning],
      [
        `hand-outs checked against the ${START_LIMIT.starts}/${START_LIMIT.perMs}ms limit and pauses`,
        gateVerdict.handOutsChecked,
      ],
    ];
    return { faults, submitted: this.accepted.size, verdict, table: formatTable(faults, verdict, o, notes) };
  }

  /** Kills everything; keeps the run's logs (with the ZooKeeper members' logs) when `keepLogs`. */
  async close(options: { keepLogs?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.taps.close();
    this.feeding = false;
    this.faultsDone = true;
    await this.ensemble?.stop().catch(() => {});
    // The members' logs live in dirs removed at exit: keep a copy beside the grid's logs.
    for (const m of this.ensemble?.members ?? []) {
      if (options.keepLogs && this.cluster && existsSync(m.logFile))
        copyFileSync(m.logFile, join(this.cluster.logDir, `zookeeper-${m.id}.log`));
    }
    await this.cluster?.close({ keepDir: options.keepLogs }).catch(() => {});
  }

  // ---- processes ---------------------------------------------------------------------------

  private readonly deliberatelyKilled = new Set<GridProcess>();

  private startMaster(): GridProcess {
    this.masterCount++;
    return this.watchProc(this.c.startMaster(`m${this.masterCount}`));
  }

  protected get c(): Cluster {
    if (!this.cluster) throw new Error("not started");
    return this.cluster;
  }

  /** Rejects when a master or worker exits without this suite having killed it. */
  private readonly crashed: Promise<never>;
  private reportCrash: (error: Error) => void = () => {};

  private watchProc(p: GridProcess): GridProcess {
    void p.exited.then(() => {
      if (this.stopped || this.deliberatelyKilled.has(p)) return;
      const tail = p.log().trimEnd().split("\n").slice(-6).join("\n");
      this.reportCrash(
        new Error(`${p.role} ${p.name} (pid ${p.pid}) exited with code ${p.exitCode}:\n${tail}`),
      );
    });
    return p;
  }

  /** Waits for `promise`, or fails at once when a process crashes meanwhile. */
  protected orCrash<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.crashed]);
  }

  private async killProc(p: GridProcess | undefined): Promise<void> {
    if (!p) return;
    this.deliberatelyKilled.add(p);
    await p.kill();
  }

  // ---- the task stream ---------------------------------------------------------------------

  private nextTask(): TaskSpec {
    const r = this.rnd();
    const seconds = r < 0.6 ? 0.05 : r < 0.85 ? 0.3 : r < 0.97 ? 1 : 3;
    const n = this.nextId++;
    const id = `c${n.toString().padStart(6, "0")}`;
    return { id, cmd: recordingCommand(this.execDir, seconds), ...chaosLabels(n) };
  }

  /**
   * Keeps a backlog of about twice the workers' capacity until the faults are done and at least
   * `tasks` were submitted (at most three times that).
   */
  private async feed(): Promise<void> {
    const o = this.options;
    const backlog = 2 * o.workers * o.concurrency;
    while (this.feeding) {
      const enough = this.accepted.size >= o.tasks;
      if ((this.faultsDone && enough) || this.accepted.size >= 3 * o.tasks) break;
      let done = 0;
      try {
        done = new Set((await this.c.results()).map((r) => r.id).filter((id) => this.accepted.has(id))).size;
      } catch {
        // ZooKeeper is down: keep the stream where it is
      }
      const want = Math.min(backlog - (this.accepted.size - done), 3 * o.tasks - this.accepted.size);
      if (want <= 0) {
        await sleep(100);
        continue;
      }
      const batch = Array.from({ length: Math.min(want, 20) }, () => this.nextTask());
      const queued: TaskSpec[] = [];
      const timed = new Set<string>();
      for (let i = 0; i < batch.length; i++) {
        const t = batch[i] as TaskSpec;
        const other = this.timeLedger?.maybe(t.id, this.timeRnd());
        if (other) {
          batch[i] = other;
          timed.add(t.id);
          queued.push(other);
          // A gated task never goes direct: it must pass the leader (as the submit library does).
        } else if (this.directRnd() < o.directShare && !t.labels && (await this.submitDirect(t)))
          this.direct.add(t.id);
        else queued.push(t);
      }
      if (queued.length > 0) await this.c.submit(queued);
      for (const t of batch) {
        if (timed.has(t.id)) continue;
        this.accepted.set(t.id, { maxAttempts: t.maxAttempts ?? 3 });
        if (t.labels) this.labels.set(t.id, t.labels);
      }
    }
  }

  /**
   * Puts `task` in a live worker session's inbox (one in four with the task in the node's data, the
   * rest in its name when small enough); false when there is none or its inbox is gone.
   */
  private async submitDirect(task: TaskSpec): Promise<boolean> {
    const sessions = await this.c.retry(() => this.c.workerSessions(), "the workers' sessions", 180_000);
    const target = sessions[Math.floor(this.directRnd() * sessions.length)];
    const inData = this.directRnd() < 0.25;
    // It carries the key of a connection to the worker's answer stream, as the client library's do.
    const key =
      target?.answers === undefined
        ? undefined
        : this.taps.keyFor(target.worker, target.session, target.answers);
    if (target && (await this.c.submitDirect(task, target.worker, target.session, inData, key))) return true;
    this.directQueued++;
    return false;
  }

  /** Waits until at least a few more results have come in: the grid works again after the last fault. */
  protected async progress(): Promise<void> {
    await this.orCrash(this.progressOnce());
  }

  private async progressOnce(): Promise<void> {
    const before = await this.c.retry(
      async () => new Set((await this.c.results()).map((r) => r.id)).size,
      "results",
    );
    await waitFor(
      async () => {
        return new Set((await this.c.results()).map((r) => r.id)).size >= before + 5;
      },
      {
        timeoutMs: 120_000,
        intervalMs: 200,
        message: "results to flow again after a fault",
      },
    );
  }

  // ---- observation ---------------------------------------------------------------------------

  /** Polls each worker's registration and records every session that disappears as a loss. */
  private async watchRegistrations(): Promise<void> {
    const owners = new Map<string, string | undefined>();
    while (!this.stopped) {
      for (const w of this.workerNames) {
        let owner: string | undefined;
        try {
          owner = await this.c.workerSession(w);
        } catch {
          continue;
        }
        const before = owners.get(w);
        if (before !== undefined && before !== owner) {
          this.losses.push({
            worker: w,
            at: Date.now(),
            cause: "a session seen to end (no fault on that worker)",
          });
        }
        owners.set(w, owner);
      }
      await sleep(100);
    }
  }

  /**
   * Tasks `worker` is running now: assigned to it or in its session's inbox, started by it (a start
   * line), not finished.
   */
  private async runningOn(worker: string): Promise<number> {
    const data = await this.c.read(this.c.layout.assign(worker));
    const decoded = data && decodeAssignment(data);
    const tasks = decoded?.ok ? decoded.value.tasks.map((t) => ({ id: t.id, attempt: t.attempt })) : [];
    const session = await this.c.workerSession(worker);
    if (session) {
      for (const id of await this.c.children(this.c.layout.inboxDir(worker, session)))
        tasks.push({ id, attempt: 1 });
    }
    let running = 0;
    for (const t of tasks) {
      const file = join(this.execDir, t.id);
      if (!existsSync(file)) continue;
      const text = readFileSync(file, "utf8");
      if (text.includes(`s ${t.attempt} ${worker} `) && !text.includes(`e ${t.attempt} ${worker}\n`))
        running++;
    }
    return running;
  }

  protected async whenAnyRunning(): Promise<void> {
    const anyRunning = async () =>
      (await Promise.all(this.workerNames.map((w) => this.runningOn(w)))).some((n) => n > 0);
    await this.orCrash(
      waitFor(anyRunning, { timeoutMs: 120_000, intervalMs: 50, message: "a worker to be running a task" }),
    );
  }

  protected async whenRunning(worker: string): Promise<void> {
    await this.orCrash(
      waitFor(async () => (await this.runningOn(worker)) > 0, {
        timeoutMs: 120_000,
        intervalMs: 50,
        message: `${worker} to be running a task`,
      }),
    );
  }

  protected async leader(): Promise<GridProcess> {
    const name = await waitFor(() => this.c.leaderName(), { timeoutMs: 60_000, message: "a leading master" });
    const proc = this.c.proc(name);
    if (!proc) throw new Error(`unknown leader ${name}`);
    return proc;
  }

  protected async newLeaderOtherThan(name: string): Promise<void> {
    await waitFor(
      async () => {
        const now = await this.c.leaderName();
        return now !== undefined && now !== name;
      },
      { timeoutMs: 120_000, message: `a master other than ${name} to lead` },
    );
  }

  // ---- faults --------------------------------------------------------------------------------

  private async killLeadingMaster(fault = "SIGKILL of the leading master"): Promise<void> {
    await this.whenAnyRunning();
    const leader = await this.leader();
    await this.killProc(leader);
    this.count(fault);
    await this.newLeaderOtherThan(leader.name);
    this.startMaster();
  }

  private async killWorker(worker: string): Promise<void> {
    await this.whenRunning(worker);
    const session = await this.c.retry(() => this.c.workerSession(worker), `${worker}'s session`);
    await this.killProc(this.c.proc(worker));
    this.losses.push({ worker, at: Date.now(), cause: "SIGKILL" });
    this.count("SIGKILL of a worker running tasks");
    // Back once its session is gone, so this fault is not also the old-name case below.
    await waitFor(async () => (await this.c.workerSession(worker)) !== session, {
      timeoutMs: 60_000,
      message: `${worker}'s session to expire`,
    });
    this.watchProc(this.c.startWorker(worker, this.workerFlags(worker)));
  }

  /** SIGSTOP past the session timeout: the leader fences the session; SIGCONT; the worker comes back. */
  private async pauseWorker(worker: string): Promise<void> {
    await this.whenRunning(worker);
    const proc = this.c.proc(worker);
    const session = await this.c.retry(() => this.c.workerSession(worker), `${worker}'s session`);
    if (!proc || !session) throw new Error(`${worker} is not registered`);
    proc.signal("SIGSTOP");
    this.losses.push({ worker, at: Date.now(), cause: "SIGSTOP" });
    this.count("SIGSTOP of a worker past its session timeout, then SIGCONT");
    await this.orCrash(
      waitFor(
        async () =>
          (await this.c.workerSession(worker)) !== session &&
          !(await this.c.exists(`${this.c.layout.reports}/${worker}@${session}`)),
        {
          timeoutMs: 90_000,
          intervalMs: 100,
          message: `${worker}'s session ${session} to expire and be fenced`,
        },
      ),
    );
    const resumedAt = Date.now();
    proc.signal("SIGCONT");
    const fresh = await this.orCrash(
      waitFor(
        async () => {
          const now = await this.c.workerSession(worker);
          return now !== undefined && now !== session ? now : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 50, message: `${worker} to register a new session` },
      ),
    );
    this.staleWindows.push({ worker, from: resumedAt, to: registeredAt(proc, fresh) ?? Date.now() });
  }

  private async killEnsembleMember(round: number): Promise<void> {
    const ensemble = this.ensemble as ZkEnsemble;
    // The quorum leader on even rounds (an election follows), a follower on odd ones.
    const leader = await this.c.retry(() => ensemble.leader(), "the quorum leader");
    const member =
      round % 2 === 0 && leader
        ? leader
        : (ensemble.members.find((m) => m !== leader) ?? ensemble.members[0]);
    if (!member) return;
    await this.whenAnyRunning();
    const from = Date.now();
    await member.kill();
    this.count("SIGKILL of one ZooKeeper member, then restart");
    await ensemble.waitForQuorum(60_000);
    // Two members still form a quorum. How much work gets done meanwhile is reported, not required:
    // safety is what this suite checks; the next fault waits for results to flow again anyway.
    await sleep(2 * this.options.sessionTimeoutMs);
    this.memberDown.push({ from, to: Date.now() });
    await member.restart();
  }

  /** A worker killed and started again at once under its name, while its old session still lives. */
  private async restartUnderOldName(worker: string): Promise<void> {
    await this.whenRunning(worker);
    const session = await this.c.retry(() => this.c.workerSession(worker), `${worker}'s session`);
    await this.killProc(this.c.proc(worker));
    this.losses.push({ worker, at: Date.now(), cause: "SIGKILL, restarted at once" });
    this.watchProc(this.c.startWorker(worker, this.workerFlags(worker)));
    this.count("worker restarted under its old name while its old session lives");
    // A new process that gives up waiting for its name exits: orCrash() fails the run with its log.
    await this.orCrash(
      waitFor(
        async () => {
          const now = await this.c.workerSession(worker);
          return now !== undefined && now !== session;
        },
        { timeoutMs: 90_000, message: `the new ${worker} to register` },
      ),
    );
  }

  /** SIGSTOP of the leader past its session timeout: a standby takes over; the old one wakes up deposed. */
  private async pauseLeadingMaster(): Promise<void> {
    await this.whenAnyRunning();
    const leader = await this.leader();
    leader.signal("SIGSTOP");
    this.count("SIGSTOP of the leading master past its session timeout, then SIGCONT");
    try {
      await this.newLeaderOtherThan(leader.name);
      // Let the new leader act while the old one still believes it leads.
      await this.progress();
    } finally {
      leader.signal("SIGCONT");
    }
  }

  private async restartEnsemble(round: number): Promise<void> {
    const ensemble = this.ensemble as ZkEnsemble;
    await this.whenAnyRunning();
    if (round % 2 === 0) {
      this.count("restart of the whole ensemble (SIGTERM)");
      await ensemble.restartAll();
    } else {
      this.count("restart of the whole ensemble (SIGKILL)");
      await Promise.all(ensemble.members.map((m) => m.kill()));
      await Promise.all(ensemble.members.map((m) => m.restart()));
    }
    await ensemble.waitForQuorum(60_000);
    // Every worker was cut off from every member for longer than its cutoff stop: it stopped its
    // running tasks, and hands them back when its session comes back. Those run again.
    for (const worker of this.workerNames)
      this.losses.push({ worker, at: Date.now(), cause: "cut off by the ensemble's restart (cutoff stop)" });
  }
}

/** When the worker's log says it registered `session` (its own clock, same as ours). */
function registeredAt(proc: GridProcess, session: string): number | undefined {
  const line = proc
    .log()
    .split("\n")
    .find((l) => l.includes(`registered on session ${session}`));
  if (!line) return undefined;
  // A JSON line ({"time": "…"}) or a text line that starts with the time.
  const time = /"time":"([^"]+)"/.exec(line)?.[1] ?? line.slice(0, 24);
  const at = Date.parse(time);
  return Number.isNaN(at) ? undefined : at;
}

function formatTable(
  faults: Array<{ fault: string; count: number }>,
  v: Verdict,
  o: ChaosOptions,
  notes: Array<[string, number]>,
): string {
  const rows: Array<[string, string | number]> = [
    ...faults.map((f): [string, number] => [`fault: ${f.fault}`, f.count]),
    ["faults injected", faults.reduce((n, f) => n + f.count, 0)],
    ["tasks checked", v.tasksChecked],
    ["tasks re-run (worker lost while holding them)", v.reRun],
    ["extra executions", v.extraExecutions],
    ...[...v.reRunCauses].map(([cause, n]): [string, number] => [`  after: ${cause}`, n]),
    ["tasks failed after maxAttempts lost or cut-off workers", v.gaveUp],
    ["repeated identical result records", v.duplicateResults],
    ...notes,
    ["violations", v.violations.length],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, n]) => `${k.padEnd(width)}  ${String(n).padStart(6)}`);
  const head = `chaos: 3 ZooKeeper members, 2 masters, ${o.workers} workers x ${o.concurrency} (the last with prefetch ${2 * o.concurrency}), session timeout ${o.sessionTimeoutMs} ms, seed ${o.seed}`;
  const shown = v.violations.slice(0, 30).map((x) => `  violation: ${x}`);
  return [head, ...lines, ...shown].join("\n");
}
