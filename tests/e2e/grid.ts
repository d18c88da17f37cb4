import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type ZkClient } from "@zkgrid/core";
import { decodeResultBatch, decodeWorkerRegistration, gridLayout, type TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, inject } from "vitest";

const REPO = resolve(import.meta.dirname, "../..");
export const BIN = {
  master: join(REPO, "apps/master/dist/bin.js"),
  worker: join(REPO, "apps/worker/dist/bin.js"),
  submit: join(REPO, "apps/submit/dist/bin.js"),
};

export interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves with the exit code once the process exited and all its output was read. */
  closed: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** A grid under a random root on the given ZooKeeper; every process it starts is killed by close(). */
export class TestGrid {
  readonly root = `/e2e-${randomUUID()}`;
  readonly layout = gridLayout(this.root);
  readonly dir = mkdtempSync(join(tmpdir(), "zkgrid-e2e-"));
  private readonly procs: Proc[] = [];
  private client: ZkClient | undefined;

  /** `auth`: credentials of the test's own client (results(), leaderName(), the clean-up). */
  constructor(
    readonly connectString: string,
    private readonly options: { auth?: string } = {},
  ) {}

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, ZKGRID_CONNECT: this.connectString, ZKGRID_ROOT: this.root };
  }

  spawn(
    bin: string,
    args: string[],
    options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {},
  ): Proc {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? this.dir,
      env: { ...this.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    const closed = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    const proc: Proc = {
      child,
      output: () => out,
      exited,
      closed,
      kill: (signal = "SIGKILL") => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
    this.procs.push(proc);
    return proc;
  }

  master(name: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Proc {
    return this.spawn(BIN.master, [name, "--session-timeout", "4s", ...extra], { env });
  }

  worker(name: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Proc {
    return this.spawn(BIN.worker, [name, "--session-timeout", "4s", "--cwd", this.dir, ...extra], { env });
  }

  /**
   * Runs the submit bin to completion; its output is in the transcript. One still running after
   * `timeoutMs` is killed and the call throws (see {@link exitOf}).
   */
  async submit(
    args: string[],
    input?: string,
    env?: NodeJS.ProcessEnv,
    timeoutMs = 45_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const proc = this.spawn(BIN.submit, args, { input: input ?? "", ...(env === undefined ? {} : { env }) });
    let stdout = "";
    let stderr = "";
    proc.child.stdout?.on("data", (b: Buffer) => {
      stdout += b.toString();
    });
    proc.child.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await this.exitOf(proc, timeoutMs);
    return { code, stdout, stderr };
  }

  /**
   * `proc`'s exit code once it exited and its output was read. One still running after `timeoutMs` is
   * killed and the call throws, naming its command: a process that never ends fails the test with its
   * name and its output in the transcript, not with the test's time-out.
   */
  async exitOf(proc: Proc, timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((res) => {
      timer = setTimeout(() => res("timeout"), timeoutMs);
    });
    const code = await Promise.race([proc.closed, timedOut]);
    clearTimeout(timer);
    if (code !== "timeout") return code;
    proc.kill("SIGKILL");
    await proc.exited;
    throw new Error(
      `${proc.child.spawnargs.slice(1).join(" ")} did not exit within ${timeoutMs} ms; killed it`,
    );
  }

  async zk(): Promise<ZkClient> {
    this.client ??= await connect({
      connectString: this.connectString,
      sessionTimeoutMs: 10_000,
      ...(this.options.auth === undefined ? {} : { auth: this.options.auth }),
    });
    return this.client;
  }

  /**
   * Every final status in R/results and in each reply dir (R/replies/<address>), in order within each
   * place (duplicates included); a task's results all go to one place.
   */
  async results(): Promise<TaskStatus[]> {
    const zk = await this.zk();
    const replies = await zk.getChildren(this.layout.replies).catch(() => [] as string[]);
    const places = [this.layout.results, ...replies.map((address) => `${this.layout.replies}/${address}`)];
    const seq = (n: string) => Number(n.slice(-10));
    const out: TaskStatus[] = [];
    for (const place of places) {
      const names = await zk.getChildren(place).catch(() => [] as string[]);
      for (const name of names.filter((n) => /\d{10}$/.test(n)).sort((a, b) => seq(a) - seq(b))) {
        const got = await zk.get(`${place}/${name}`).catch(() => undefined);
        const decoded = got === undefined ? undefined : decodeResultBatch(got.data);
        if (decoded?.ok) out.push(...decoded.value.results);
      }
    }
    return out;
  }

  /** Waits until every id has a final status; returns the first status of each. */
  async waitForResults(ids: string[], timeoutMs = 60_000): Promise<Map<string, TaskStatus>> {
    let latest = new Map<string, TaskStatus>();
    await waitFor(
      async () => {
        latest = new Map();
        for (const r of await this.results()) if (!latest.has(r.id)) latest.set(r.id, r);
        return ids.every((id) => latest.has(id));
      },
      { timeoutMs, intervalMs: 200, message: `results for ${ids.length} tasks` },
    );
    return latest;
  }

  /** The candidate node data of the current leader, as the masters see it. */
  async leaderName(): Promise<string | undefined> {
    const zk = await this.zk();
    const names = await zk.getChildren(this.layout.masters).catch(() => [] as string[]);
    const first = names.sort((a, b) => Number(a.slice(-10)) - Number(b.slice(-10)))[0];
    if (!first) return undefined;
    const got = await zk.get(`${this.layout.masters}/${first}`).catch(() => undefined);
    return got ? (JSON.parse(got.data.toString()) as { name: string }).name : undefined;
  }

  /** Everything the processes printed, for a failing test's report. */
  transcript(): string {
    return this.procs.map((p) => `--- ${p.child.spawnargs.slice(1).join(" ")}\n${p.output()}`).join("\n");
  }

  async close(): Promise<void> {
    for (const p of this.procs) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => p.exited));
    if (this.client) {
      await this.client.deleteRecursive(this.root).catch(() => {});
      await this.client.close();
    }
  }
}

/**
 * A TestGrid per test on the test ZooKeeper: call in a test file's top level, then `start()` in each
 * test. After each test its processes are killed, and printed first if the test failed.
 */
export function gridPerTest(): () => TestGrid {
  let grid: TestGrid | undefined;
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail" && grid) console.error(grid.transcript());
    await grid?.close();
    grid = undefined;
  });
  return () => {
    grid = new TestGrid(inject("zkConnectString"));
    return grid;
  };
}

/** True while the process exists and is not a zombie. */
export { isProcessRunning as isAlive } from "@zkgrid/testing";

/** The session a worker registered with, once it has. */
export async function sessionOf(g: TestGrid, worker: string): Promise<string> {
  const zk = await g.zk();
  return waitFor(
    async () => {
      const got = await zk.get(g.layout.worker(worker)).catch(() => undefined);
      if (!got) return undefined;
      const decoded = decodeWorkerRegistration(got.data);
      return decoded.ok ? decoded.value.session : undefined;
    },
    { timeoutMs: 30_000, message: `${worker} to register` },
  );
}
