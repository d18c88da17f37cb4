import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type ZkClient } from "@zkgrid/core";
import {
  type AssignedTask,
  compareSequentialNames,
  decodeWorkerRegistration,
  decodeWorkerReport,
  gridLayout,
  type StatusUpdate,
  type TaskSpec,
  type WorkerRegistration,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, beforeEach, inject } from "vitest";
import {
  type LogLevel,
  startWorker,
  type Worker,
  type WorkerEvent,
  type WorkerOptions,
} from "../src/index.js";

export const layout = gridLayout("/");

/** A log line as the worker produced it. */
export interface LogLine {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown>;
}

/**
 * One test's grid: a random root on the shared ZooKeeper, the test's own client (which plays the
 * leader), a temporary working directory, and cleanup of every worker and client it made.
 */
export class Grid {
  readonly root = `/test-${randomUUID()}`;
  readonly workers: Worker[] = [];
  readonly clients: ZkClient[] = [];
  readonly logs: LogLine[] = [];
  zk!: ZkClient;
  cwd!: string;
  private epoch = 1;

  private constructor(readonly connectString: string) {}

  /** A grid on the shared ZooKeeper, or on the server at `connectString`. */
  static async create(connectString: string = inject("zkConnectString")): Promise<Grid> {
    const grid = new Grid(connectString);
    grid.zk = await grid.client();
    grid.cwd = await mkdtemp(join(tmpdir(), "zkgrid-worker-test-"));
    return grid;
  }

  /** Another client on this grid's root, closed at cleanup. */
  async client(): Promise<ZkClient> {
    const client = await connect({
      connectString: this.connectString,
      root: this.root,
      sessionTimeoutMs: 4_000,
    });
    this.clients.push(client);
    return client;
  }

  /** Starts a worker on this grid; its log lines land in `logs`. */
  async start(name: string, options: Partial<WorkerOptions> = {}): Promise<Worker> {
    const worker = await startWorker(this.workerOptions(name, options));
    this.workers.push(worker);
    return worker;
  }

  workerOptions(name: string, options: Partial<WorkerOptions> = {}): WorkerOptions {
    return {
      name,
      connectString: this.connectString,
      root: this.root,
      cwd: this.cwd,
      sessionTimeoutMs: 4_000,
      concurrency: 2,
      killGraceMs: 1_000,
      logger: (level, msg, fields = {}) => this.logs.push({ level, msg, fields }),
      ...options,
    };
  }

  /** Writes `R/assign/<worker>` as the leader would (the payload as is: tests may break the rules). */
  async assignRaw(worker: string, payload: unknown): Promise<void> {
    const path = layout.assign(worker);
    const data = JSON.stringify(payload);
    await this.zk.ensurePath(layout.assignDir);
    if ((await this.zk.exists(path)) === null) await this.zk.create(path, data);
    else await this.zk.set(path, data);
  }

  /** Writes a valid assignment of `tasks` to `worker` on `session`, with the current epoch. */
  async assign(worker: string, session: string, tasks: AssignedTask[], epoch = this.epoch): Promise<void> {
    this.epoch = epoch;
    await this.assignRaw(worker, { v: 1, epoch, worker, session, tasks });
  }

  /** Every update reported under `R/reports/<worker>@<session>`, in report order. */
  async updates(worker: string, session: string): Promise<StatusUpdate[]> {
    const dir = layout.reportDir(worker, session);
    const names = (await this.zk.getChildren(dir)).sort(compareSequentialNames);
    const out: StatusUpdate[] = [];
    for (const name of names) {
      const { data } = await this.zk.get(`${dir}/${name}`);
      const report = decodeWorkerReport(data);
      if (!report.ok) throw report.error;
      out.push(...report.value.updates);
    }
    return out;
  }

  /** Waits for the first update of task `id` in a state other than `running`. */
  async final(worker: string, session: string, id: string, attempt = 1): Promise<StatusUpdate> {
    return waitFor(
      async () =>
        (await this.updates(worker, session)).find(
          (u) => u.id === id && u.attempt === attempt && u.state !== "running",
        ),
      { timeoutMs: 20_000, message: `a final update for ${id}` },
    );
  }

  async registration(worker: string): Promise<WorkerRegistration | null> {
    const node = await this.zk.get(layout.worker(worker)).catch(() => null);
    if (node === null) return null;
    const decoded = decodeWorkerRegistration(node.data);
    if (!decoded.ok) throw decoded.error;
    return decoded.value;
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.stop({ graceMs: 0 })));
    await this.zk.deleteRecursive("/").catch(() => {});
    await Promise.allSettled(this.clients.map((c) => c.close()));
    await rm(this.cwd, { recursive: true, force: true });
  }
}

/**
 * Gives each test of the file a fresh grid on the shared ZooKeeper, cleaned up after it; call the
 * returned function in a test to get the test's grid.
 */
export function gridPerTest(): () => Grid {
  let current: Grid | undefined;
  beforeEach(async () => {
    current = await Grid.create();
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  return () => {
    if (current === undefined) throw new Error("no grid: call this inside a test");
    return current;
  };
}

/** An assigned task as the leader hands it out. */
export function assigned(id: string, spec: Omit<TaskSpec, "id">, attempt = 1): AssignedTask {
  const now = Date.now();
  return { id, attempt, assignedAt: now, submittedAt: now, spec: { id, ...spec } };
}

/** Resolves with the first event matching `predicate` (events from now on). */
export function nextEvent<T extends WorkerEvent>(
  worker: Worker,
  predicate: (event: WorkerEvent) => event is T,
): Promise<T>;
export function nextEvent(worker: Worker, predicate: (event: WorkerEvent) => boolean): Promise<WorkerEvent>;
export function nextEvent(worker: Worker, predicate: (event: WorkerEvent) => boolean): Promise<WorkerEvent> {
  return new Promise((resolve) => {
    const off = worker.on((event) => {
      if (predicate(event)) {
        off();
        resolve(event);
      }
    });
  });
}

/** True while a process with this pid exists and is not a zombie. */
export async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The state follows the command name in parentheses: "123 (sleep) S ...".
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export async function readPidFile(file: string): Promise<number> {
  return waitFor(async () => {
    const pid = Number.parseInt(await readFile(file, "utf8"), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  });
}

/** The built bin (`pnpm build` first). */
export const WORKER_BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

/** A worker bin this test started: its process, its stderr so far, and its exit. */
export interface WorkerBin {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; stderr: string }>;
}

/**
 * Starts the worker's bin on `grid`, with `env` added to this process's environment; it is killed after
 * 30 s if it has not exited by then.
 */
export function startWorkerBin(
  grid: Grid,
  args: string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): WorkerBin {
  const child = spawn(process.execPath, [WORKER_BIN, ...args], {
    env: { ...process.env, ZKGRID_CONNECT: grid.connectString, ZKGRID_ROOT: grid.root, ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  return { child, stderr: () => stderr, exited };
}
