import { type ChildProcess, fork, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, NodeExistsError, NoNodeError, type ZkClient } from "@zkgrid/core";
import {
  type AnswerAddress,
  decodeResultBatch,
  decodeWorkerRegistration,
  encodeSubmitBatch,
  type GridLayout,
  gridLayout,
  inboxNodeName,
  packSubmitBatches,
  parseSequence,
  type TaskSpec,
  type TaskStatus,
} from "@zkgrid/protocol";
import { type ServerHost, waitFor } from "@zkgrid/testing";

const REPO = resolve(import.meta.dirname, "../..");
const BUILT = {
  master: join(REPO, "apps/master/dist/bin.js"),
  worker: join(REPO, "apps/worker/dist/bin.js"),
};

/** The suites run the built apps as real processes: say so plainly when they are missing. */
export function assertBuilt(): void {
  for (const bin of Object.values(BUILT)) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run "pnpm build" first`);
  }
}

let snapshot: { master: string; worker: string; core: string } | undefined;

/**
 * The built apps and packages, copied once per test file: a rebuild in the working tree while a run
 * is going (tsup empties dist/ first) must not hand half the processes other code, or none at all.
 */
export function bins(): { master: string; worker: string; core: string } {
  if (snapshot) return snapshot;
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), "zkgrid-bins-"));
  for (const group of ["apps", "packages"]) {
    for (const name of readdirSync(join(REPO, group))) {
      const from = join(REPO, group, name);
      if (!existsSync(join(from, "package.json"))) continue;
      const to = join(dir, group, name);
      mkdirSync(to, { recursive: true });
      cpSync(join(from, "package.json"), join(to, "package.json"));
      for (const sub of ["dist", "node_modules"]) {
        // node_modules holds symlinks only: kept as they are, they point into this copy or, through
        // the link below, into the repository's store.
        if (existsSync(join(from, sub)))
          cpSync(join(from, sub), join(to, sub), { recursive: true, verbatimSymlinks: true });
      }
    }
  }
  symlinkSync(join(REPO, "node_modules"), join(dir, "node_modules"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  snapshot = {
    master: join(dir, "apps/master/dist/bin.js"),
    worker: join(dir, "apps/worker/dist/bin.js"),
    core: join(dir, "packages/core/dist/index.js"),
  };
  return snapshot;
}

/** One master or worker process. Its stdout and stderr go to `logFile`. */
export class GridProcess {
  readonly exited: Promise<number | null>;
  exitCode: number | null = null;
  private done = false;

  constructor(
    readonly name: string,
    readonly role: "master" | "worker",
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((res) =>
      child.once("exit", (code) => {
        this.done = true;
        this.exitCode = code;
        res(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return !this.done;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.done) this.child.kill(signal);
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    this.signal("SIGCONT");
    this.signal("SIGKILL");
    await this.exited;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }
}

export interface ClusterOptions {
  connectString: string;
  /** The members running now, for the suite's own client (default: `connectString`). */
  liveConnectString?: () => string;
  sessionTimeoutMs: number;
  /** Prefix of the random root and temp dir. */
  label: string;
  /** Delete the root at close (default true; pointless on an ensemble that is thrown away). */
  deleteRoot?: boolean;
  /** The test host a master or worker of that name runs on (default: this machine's own network). */
  hostOf?: (name: string) => ServerHost | undefined;
}

/**
 * A grid under a random root: real master and worker processes, a client for reading and writing
 * ZooKeeper directly, and a temp dir for logs and worker output. close() kills everything it started,
 * including task processes still running after their worker was SIGKILLed.
 */
export class Cluster {
  readonly root: string;
  readonly layout: GridLayout;
  readonly dir: string;
  readonly workDir: string;
  readonly logDir: string;
  readonly procs: GridProcess[] = [];
  private client: ZkClient | undefined;
  private connecting: Promise<ZkClient> | undefined;
  /** The suite's own reads and submissions, through a client in a process of its own. */
  private readonly store: SuiteClient;
  private readonly resultNodes = new Map<string, TaskStatus[]>();
  private resultCount = 0;
  private closed = false;

  constructor(readonly options: ClusterOptions) {
    this.root = `/${options.label}-${randomUUID()}`;
    this.layout = gridLayout(this.root);
    this.dir = mkdtempSync(join(tmpdir(), `zkgrid-${options.label}-`));
    this.workDir = join(this.dir, "work");
    this.logDir = join(this.dir, "logs");
    mkdirSync(this.workDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    const logFile = join(this.logDir, "suite-client.log");
    this.store = new SuiteClient(
      () => this.options.liveConnectString?.() ?? this.options.connectString,
      (line) => {
        // The helper may still say something after close() removed the run's directory.
        if (this.closed) return;
        try {
          appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
        } catch {}
      },
    );
  }

  private spawn(role: "master" | "worker", name: string, args: string[]): GridProcess {
    if (this.closed) throw new Error("cluster closed");
    const bin = role === "master" ? bins().master : bins().worker;
    const index = this.procs.filter((p) => p.name === name).length;
    const logFile = join(this.logDir, `${name}.${index}.log`);
    const fd = openSync(logFile, "a");
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.ZKGRID_CONNECT;
    delete env.ZKGRID_ROOT;
    // On a test host, through its command prefix (`ip netns exec`, which execs: the pid is the app's).
    const [command, ...prefix] = [...(this.options.hostOf?.(name)?.commandPrefix ?? []), process.execPath];
    try {
      const child = spawn(
        command as string,
        [
          ...prefix,
          bin,
          name,
          "--connect",
          this.options.connectString,
          "--root",
          this.root,
          "--session-timeout",
          `${this.options.sessionTimeoutMs}ms`,
          ...args,
        ],
        { cwd: this.dir, env, stdio: ["ignore", fd, fd] },
      );
      const proc = new GridProcess(name, role, child, logFile);
      this.procs.push(proc);
      return proc;
    } finally {
      closeSync(fd);
    }
  }

  startMaster(name: string): GridProcess {
    return this.spawn("master", name, []);
  }

  startWorker(
    name: string,
    options: { concurrency?: number; prefetch?: number; cwd?: string; labels?: string[] } = {},
  ): GridProcess {
    return this.spawn("worker", name, [
      ...(options.labels?.length ? ["--labels", options.labels.join(",")] : []),
      "--cwd",
      options.cwd ?? this.workDir,
      "--concurrency",
      String(options.concurrency ?? 4),
      "--prefetch",
      String(options.prefetch ?? 0),
      "--grace",
      "1s",
    ]);
  }

  /** The newest process of that name. */
  proc(name: string): GridProcess | undefined {
    return this.procs.filter((p) => p.name === name).at(-1);
  }

  /** A client in this process, for tests that write straight into ZooKeeper. */
  async zk(): Promise<ZkClient> {
    this.connecting ??= connect({ connectString: this.options.connectString, sessionTimeoutMs: 10_000 });
    this.client = await this.connecting;
    return this.client;
  }

  /** Runs a read of the suite's own until it gets an answer (ZooKeeper may be restarting). */
  async retry<T>(op: () => Promise<T>, what: string, timeoutMs = 120_000): Promise<T> {
    const got = await waitFor(async () => ({ value: await op() }), {
      timeoutMs,
      intervalMs: 100,
      message: what,
    });
    return got.value;
  }

  /** Writes a node (creates it, or sets it if it exists), trying again while ZooKeeper is away. */
  async writeNode(path: string, data: Buffer): Promise<void> {
    await this.retry(async () => {
      if (await this.store.exists(path)) await this.store.set(path, data);
      else await this.store.create(path, data, "persistent");
      return true;
    }, `a write of ${path}`);
  }

  /**
   * Submits tasks as any client would: SubmitBatch nodes created under R/queue. A create that fails is
   * tried again with the same ids (ids are idempotency keys), so every task given here is accepted.
   */
  async submit(tasks: TaskSpec[]): Promise<void> {
    for (const batch of packSubmitBatches(tasks, { submitter: "chaos" })) {
      const data = encodeSubmitBatch(batch);
      const deadline = Date.now() + 180_000;
      for (;;) {
        if (this.closed) throw new Error("the cluster is closed");
        try {
          await this.store.ensurePath(this.layout.queue);
          await this.store.createProtected(
            `${this.layout.queue}/${this.layout.queueNodePrefix}`,
            data,
            "persistent-sequential",
          );
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((res) => setTimeout(res, 250));
        }
      }
    }
  }

  /**
   * Submits one task straight into `worker`'s inbox for `session`, as a submitter of direct tasks
   * would. A failed create is tried again like submit(); a node (or result) found on a retry is the one
   * a lost reply created (ids are unique here). Resolves false when the inbox is gone (NONODE): the
   * caller queues the task instead. A task of at most MAX_NAMED_BATCH_BYTES rides in the node's name,
   * as the client library sends it, unless `inData`. `answerKey`: the key of a want already written
   * to the worker's answer stream.
   */
  async submitDirect(
    task: TaskSpec,
    worker: string,
    session: string,
    inData = false,
    answerKey?: string,
  ): Promise<boolean> {
    const [batch] = packSubmitBatches([task], { submitter: "chaos" });
    if (!batch) throw new Error(`task ${task.id} packs into no batch`);
    const encoded = encodeSubmitBatch(answerKey === undefined ? batch : { ...batch, answerKey });
    const name = inData ? task.id : inboxNodeName(task.id, encoded);
    const path = `${this.layout.inboxDir(worker, session)}/${name}`;
    const data = name === task.id ? encoded : Buffer.alloc(0);
    const deadline = Date.now() + 180_000;
    for (let retry = false; ; retry = true) {
      if (this.closed) throw new Error("the cluster is closed");
      try {
        // The leader deletes an answered node once it has recorded the result: a lost reply's node may
        // be gone already, and creating it again would run the task again.
        if (retry && (await this.results()).some((r) => r.id === task.id)) return true;
        await this.store.create(path, data, "persistent");
        return true;
      } catch (error) {
        if (error instanceof NoNodeError) return false;
        if (error instanceof NodeExistsError && retry) return true;
        if (Date.now() > deadline || error instanceof NodeExistsError) throw error;
        await new Promise((res) => setTimeout(res, 250));
      }
    }
  }

  /** Every live worker session: R/workers children whose registration names its owning session. */
  async workerSessions(): Promise<
    Array<{ worker: string; session: string; answers?: AnswerAddress | undefined }>
  > {
    const names = await this.store.children(this.layout.workers);
    const found = await Promise.all(
      names.map(async (worker) => {
        const got = await this.store.get(this.layout.worker(worker));
        if (!got) return undefined;
        const reg = decodeWorkerRegistration(got.data);
        return reg.ok && reg.value.session === got.stat.ephemeralOwner
          ? { worker, session: reg.value.session, answers: reg.value.answers }
          : undefined;
      }),
    );
    return found.filter((s) => s !== undefined);
  }

  /** Every result status so far, in R/results order (duplicates included). Reads only new nodes. */
  async results(): Promise<TaskStatus[]> {
    const names = await this.store.children(this.layout.results);
    const fresh = names.filter((n) => !this.resultNodes.has(n));
    for (let i = 0; i < fresh.length; i += 64) {
      await Promise.all(
        fresh.slice(i, i + 64).map(async (name) => {
          const got = await this.store.get(`${this.layout.results}/${name}`);
          if (!got) return;
          const decoded = decodeResultBatch(got.data);
          // An unreadable result node is kept as a status that fails every check.
          const statuses = decoded.ok
            ? decoded.value.results
            : [{ v: 1, id: `(unreadable ${name})`, state: "failed", attempt: 0 } as TaskStatus];
          this.resultNodes.set(name, statuses);
          this.resultCount += statuses.length;
        }),
      );
    }
    const seq = (n: string) => parseSequence(n) ?? 0;
    return [...this.resultNodes.keys()]
      .sort((a, b) => seq(a) - seq(b))
      .flatMap((n) => this.resultNodes.get(n) ?? []);
  }

  /** How many statuses have been read so far (cheap; call results() to refresh). */
  get resultsSeen(): number {
    return this.resultCount;
  }

  /** Waits until every id has at least one final status; returns all statuses. */
  async waitForResults(ids: Iterable<string>, timeoutMs: number): Promise<TaskStatus[]> {
    const wanted = new Set(ids);
    let all: TaskStatus[] = [];
    await waitFor(
      async () => {
        all = await this.results();
        const have = new Set(all.map((r) => r.id));
        for (const id of wanted) if (!have.has(id)) return false;
        return true;
      },
      { timeoutMs, intervalMs: 500, message: `results for ${wanted.size} tasks` },
    );
    return all;
  }

  /** The name in the leading candidate node, as the masters see it. */
  async leaderName(): Promise<string | undefined> {
    const names = await this.store.children(this.layout.masters).catch(() => [] as string[]);
    const first = names.sort((a, b) => (parseSequence(a) ?? 0) - (parseSequence(b) ?? 0))[0];
    if (!first) return undefined;
    const got = await this.store.get(`${this.layout.masters}/${first}`).catch(() => undefined);
    if (!got) return undefined;
    try {
      return (JSON.parse(got.data.toString()) as { name: string }).name;
    } catch {
      return undefined;
    }
  }

  /** The session owning R/workers/<name>, or undefined. */
  async workerSession(name: string): Promise<string | undefined> {
    const got = await this.store.get(this.layout.worker(name));
    if (!got) return undefined;
    return decodeWorkerRegistration(got.data).ok ? got.stat.ephemeralOwner : undefined;
  }

  /** Data of a node, or undefined when it does not exist. */
  async read(path: string): Promise<Buffer | undefined> {
    return (await this.store.get(path))?.data;
  }

  async exists(path: string): Promise<boolean> {
    return this.store.exists(path);
  }

  async children(path: string): Promise<string[]> {
    return this.store.children(path);
  }

  /** The last lines of every process's log, for a failing test. */
  transcript(lines = 60): string {
    return this.procs
      .map((p) => {
        const tail = p.log().trimEnd().split("\n").slice(-lines).join("\n");
        return `--- ${p.role} ${p.name} pid ${p.pid} (exit ${p.alive ? "-" : p.exitCode})\n${tail}`;
      })
      .join("\n");
  }

  /**
   * Kills every process (and every task process left by a killed worker) and removes the root. The
   * temp dir (logs, worker output) is removed too unless `keepDir`: a failed test leaves it to read.
   */
  async close(options: { keepDir?: boolean } = {}): Promise<void> {
    this.closed = true;
    await Promise.all(this.procs.map((p) => p.kill()));
    killTaskProcesses(this.dir);
    this.store.close();
    if (this.client) {
      if (this.options.deleteRoot !== false) await this.client.deleteRecursive(this.root).catch(() => {});
      await this.client.close();
    }
    if (options.keepDir) console.error(`logs and output of this run: ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Task processes run in their own process groups; a SIGKILLed worker's launcher kills them only after
 * its kill grace. Every shell a task started names this run's temp dir in its command line: kill those
 * groups, and nothing else.
 */
export function killTaskProcesses(marker: string): void {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (!cmdline.startsWith("/bin/sh\0-c\0") || !cmdline.includes(marker)) continue;
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
}

interface StoredNode {
  data: Buffer;
  stat: { version: number; ephemeralOwner: string };
}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout };

/**
 * The suite's own ZooKeeper client, in a child process (zk-helper.mjs) that is replaced when it stops
 * answering. The suite is not under test: a client that cannot get a session again after a fault
 * (seen with one ensemble member down) must not keep it from reading what the grid did, and a fresh
 * process starts with a fresh client library.
 */
class SuiteClient {
  private child: ChildProcess | undefined;
  private ready: Promise<ChildProcess> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly connectString: () => string,
    private readonly log: (line: string) => void,
  ) {}

  async get(path: string): Promise<StoredNode | undefined> {
    const got = (await this.request("get", { path }).catch(noNodeAs(undefined))) as
      | { data: string; stat: StoredNode["stat"] }
      | undefined;
    return got && { data: Buffer.from(got.data, "base64"), stat: got.stat };
  }

  async children(path: string): Promise<string[]> {
    return (await this.request("children", { path }).catch(noNodeAs([]))) as string[];
  }

  async exists(path: string): Promise<boolean> {
    return (await this.request("exists", { path })) !== null;
  }

  async ensurePath(path: string): Promise<void> {
    await this.request("ensurePath", { path });
  }

  async create(path: string, data: Buffer, mode: string): Promise<string> {
    return (await this.request("create", { path, data: data.toString("base64"), mode })) as string;
  }

  async createProtected(path: string, data: Buffer, mode: string): Promise<string> {
    return (await this.request("createProtected", { path, data: data.toString("base64"), mode })) as string;
  }

  async set(path: string, data: Buffer): Promise<void> {
    await this.request("set", { path, data: data.toString("base64") });
  }

  close(): void {
    this.closed = true;
    this.child?.kill("SIGKILL");
  }

  private start(): Promise<ChildProcess> {
    if (this.closed) return Promise.reject(new Error("the suite's client is closed"));
    this.ready ??= new Promise<ChildProcess>((resolve, reject) => {
      const connectString = this.connectString();
      this.log(`starting a client process for ${connectString}`);
      const child = fork(HELPER, [bins().core, connectString], {
        stdio: ["ignore", "ignore", "pipe", "ipc"],
      });
      this.child = child;
      child.stderr?.on("data", (b: Buffer) => this.log(`client process: ${b.toString().trimEnd()}`));
      const startTimer = setTimeout(() => {
        this.log("the client process got no session in time; replacing it");
        child.kill("SIGKILL");
      }, 30_000);
      child.on(
        "message",
        (m: {
          ready?: boolean;
          id?: number;
          ok?: boolean;
          value?: unknown;
          error?: { code?: number; message: string };
        }) => {
          if (m.ready) {
            clearTimeout(startTimer);
            resolve(child);
            return;
          }
          const call = m.id === undefined ? undefined : this.pending.get(m.id);
          if (!call || m.id === undefined) return;
          this.pending.delete(m.id);
          clearTimeout(call.timer);
          if (m.ok) call.resolve(m.value);
          else if (m.error?.code === -101) call.reject(new NoNodeError());
          else if (m.error?.code === -110) call.reject(new NodeExistsError());
          else call.reject(new Error(m.error?.message ?? "failed"));
        },
      );
      child.once("exit", (code, signal) => {
        clearTimeout(startTimer);
        this.log(`client process exited (${code ?? signal})`);
        if (this.child === child) {
          this.child = undefined;
          this.ready = undefined;
        }
        for (const [id, call] of this.pending) {
          clearTimeout(call.timer);
          call.reject(new Error("the suite's client process exited"));
          this.pending.delete(id);
        }
        reject(new Error("the suite's client process exited before it had a session"));
      });
    });
    return this.ready;
  }

  private async request(op: string, args: Record<string, unknown>): Promise<unknown> {
    const child = await this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.log(`no answer to ${op} ${String(args.path)} in 30 s; replacing the client process`);
        child.kill("SIGKILL");
      }, 30_000);
      this.pending.set(id, { resolve, reject, timer });
      child.send({ id, op, ...args });
    });
  }
}

const HELPER = join(import.meta.dirname, "zk-helper.mjs");

function noNodeAs<T>(value: T): (error: unknown) => T {
  return (error) => {
    if (error instanceof NoNodeError) return value;
    throw error;
  };
}
