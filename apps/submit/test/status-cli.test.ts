import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ZkClient } from "@zkgrid/core";
import type { GridSnapshot, TaskView } from "@zkgrid/observer";
import { decodeCancelRequest, gridLayout, inboxNodeId, type TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectGrid } from "../src/grid-client.js";
import { connectTestClient, finalStatus, randomRoot, writeResults } from "./helpers.js";
import { bins, buildBins, gridEnv, killAll, type Run, runToEnd } from "./built-bins.js";

let zk: ZkClient;
let scratch: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  await buildBins();
  zk = await connectTestClient();
  scratch = await mkdtemp(join(tmpdir(), "zkgrid-status-"));
}, 300_000);

afterEach(async () => {
  await killAll(children);
});

afterAll(async () => {
  await zk?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function start(bin: string, args: string[], root: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [bin, ...args], {
    env: gridEnv(root),
    cwd: scratch,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.once("exit", () => children.delete(child));
  return { child, output: () => output };
}

/** Runs `zkgrid <args>` (the submit app's bin) to completion. */
function zkgrid(args: string[], root: string, input = ""): Promise<Run> {
  return runToEnd(bins.submit, args, root, children, input);
}

/** A real grid: master m1 and worker w1 (2 slots, label "linux") as processes, under `root`. */
async function startGrid(root: string): Promise<void> {
  start(bins.master, ["m1", "--session-timeout", "4s"], root);
  start(
    bins.worker,
    ["w1", "--session-timeout", "4s", "--concurrency", "2", "--labels", "linux", "--cwd", scratch],
    root,
  );
  const layout = gridLayout(root);
  await waitFor(
    async () =>
      (await zk.exists(layout.worker("w1"))) !== null && (await zk.getChildren(layout.masters)).length > 0,
    {
      timeoutMs: 30_000,
      message: "master and worker up",
    },
  );
}

/** Submits with the built command; returns the ids it printed. */
async function submit(root: string, tasks: object[]): Promise<string[]> {
  const run = await zkgrid(["submit"], root, tasks.map((t) => JSON.stringify(t)).join("\n"));
  expect(run).toMatchObject({ code: 0, stderr: "" });
  return run.stdout.trimEnd().split("\n");
}

async function taskState(root: string, id: string): Promise<string | undefined> {
  const run = await zkgrid(["task", id, "--json"], root);
  return run.code === 0 ? (JSON.parse(run.stdout) as TaskView).state : undefined;
}

describe("zkgrid status, tasks and task", () => {
  it("status shows the leader, the worker's load and the queue by priority; --json gives the snapshot", async () => {
    const root = randomRoot();
    await startGrid(root);
    // No worker has "gpu": these wait in the queue.
    await submit(root, [
      { cmd: "true", labels: ["gpu"], priority: 5 },
      { cmd: "true", labels: ["gpu"], priority: 5 },
      { cmd: "true", labels: ["gpu"] },
    ]);
    await waitFor(async () => (await zkgrid(["status", "--json"], root)).stdout.includes('"depth":3'), {
      timeoutMs: 20_000,
    });
    const run = await zkgrid(["status"], root);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(run.stdout).toMatch(/^grid \/test-[0-9a-f-]+ {2}ZooKeeper connected {2}leader m1 \(epoch \d+\)\n/);
    expect(run.stdout).toMatch(/\nleader +m1 +/);
    expect(run.stdout).toContain("WORKERS  1 live, 0 of 2 slots in use\n");
    expect(run.stdout).toMatch(/\nw1 +\S+ +0% +0 +2 +\S+ +\S+ +linux\n/);
    expect(run.stdout).toContain("\nTASKS  queued 3  on workers 0\n");
    expect(run.stdout).toMatch(/QUEUE {2}3 queued in 1 node, oldest waiting /);
    expect(run.stdout).toMatch(/PRIORITY {2}TASKS\n +5 +2\n +0 +1\n/);

    const json = await zkgrid(["status", "--json"], root);
    const snapshot = JSON.parse(json.stdout) as GridSnapshot;
    expect(snapshot).toMatchObject({ root, leader: { name: "m1", leader: true }, queue: { depth: 3 } });
    expect(snapshot.workers.map((w) => [w.name, w.capacity, w.labels])).toEqual([["w1", 2, ["linux"]]]);
  });

  it("tasks lists by state and worker, and task <id> shows one task with its output (exit 1 when unknown)", async () => {
    const root = randomRoot();
    await startGrid(root);
    const [ok, bad] = await submit(root, [
      { cmd: "echo hello from the grid" },
      { cmd: "echo nope >&2; exit 3" },
    ]);
    const [waiting] = await submit(root, [{ cmd: "true", labels: ["gpu"], priority: 9 }]);
    await waitFor(
      async () => (await taskState(root, bad!)) === "failed" && (await taskState(root, ok!)) === "succeeded",
      {
        timeoutMs: 30_000,
        message: "both tasks final",
      },
    );

    const succeeded = await zkgrid(["tasks", "--state", "succeeded", "--json"], root);
    expect(succeeded.code).toBe(0);
    const views = succeeded.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as TaskView);
    expect(views.map((v) => [v.id, v.state, v.worker, v.exitCode])).toEqual([[ok, "succeeded", "w1", 0]]);

    const table = await zkgrid(["tasks"], root);
    expect(table.stdout).toMatch(/^ID +STATE +WORKER +ATTEMPT +WHEN +DETAIL\n/);
    expect(table.stdout).toMatch(
      new RegExp(`\\n${waiting} +queued +- +0 +waiting \\S+ +true \\[priority 9\\] \\[needs gpu\\]\\n`),
    );
    expect(table.stdout).toMatch(new RegExp(`\\n${bad} +failed +w1 +1 +\\S+ ago +exit 3 in \\S+\\n`));

    const byWorker = await zkgrid(["tasks", "--worker", "w1", "--limit", "1", "--json"], root);
    expect(byWorker.stdout.trimEnd().split("\n")).toHaveLength(1);
    const none = await zkgrid(["tasks", "--state", "timed-out"], root);
    expect(none).toMatchObject({ code: 0, stdout: "", stderr: "no task matches\n" });

    const detail = await zkgrid(["task", bad!], root);
    expect(detail.code).toBe(0);
    expect(detail.stdout).toMatch(new RegExp(`^id: +${bad}\\nstate: +failed\\nattempt: +1\\nworker: +w1\\n`));
    expect(detail.stdout).toContain("exit code:  3\n");
    expect(detail.stdout).toContain("stderr (last 5 chars):\n  ! nope\n");

    const unknown = await zkgrid(["task", "no-such-task"], root);
    expect(unknown).toMatchObject({ code: 1, stdout: "" });
    expect(unknown.stderr).toBe(`zkgrid: no task "no-such-task" in the grid at ${root}\n`);
  });
});

describe("zkgrid status, tasks and task on a direct task", () => {
  it("task <id> shows a lone --cmd task running from its worker's inbox as assigned to that worker, counted in its load", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await startGrid(root);
    const sent = await zkgrid(["submit", "--cmd", "sleep 30"], root);
    expect(sent).toMatchObject({ code: 0, stderr: "" });
    const id = sent.stdout.trim();
    // It went straight to the worker, not through the queue.
    const [dir] = await zk.getChildren(layout.inbox);
    expect(dir).toMatch(/^w1@[0-9a-f]+$/);
    // A task this small rides in its node's name, after its id (see inboxNodeName).
    const names = await zk.getChildren(`${layout.inbox}/${dir}`);
    expect(names.map(inboxNodeId)).toEqual([id]);
    expect(names[0]).toMatch(/^[^~]+~[A-Za-z0-9_-]+$/);

    const json = await zkgrid(["task", id, "--json"], root);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      id,
      state: "assigned",
      attempt: 1,
      worker: "w1",
      command: "sleep 30",
    });
    const detail = await zkgrid(["task", id], root);
    expect(detail.stdout).toMatch(
      new RegExp(`^id: +${id}\\nstate: +assigned\\nattempt: +1\\nworker: +w1\\n`),
    );
    const listed = await zkgrid(["tasks", "--worker", "w1"], root);
    expect(listed.stdout).toMatch(new RegExp(`\\n${id} +assigned +w1 +1 `));
    const status = await zkgrid(["status"], root);
    expect(status.stdout).toContain("WORKERS  1 live, 1 of 2 slots in use\n");
    expect(status.stdout).toContain("\nTASKS  queued 0  on workers 1\n");

    const cancel = await zkgrid(["cancel", id], root);
    expect(cancel).toMatchObject({ code: 0, stderr: "" });
    expect(cancel.stdout).toMatch(new RegExp(`^cancelled ${id}`));
  });
});

describe("zkgrid cancel", () => {
  it("stops a running task and a queued one, waits until both are cancelled, and exits 1 for a final or unknown id", async () => {
    const root = randomRoot();
    await startGrid(root);
    // Its own id sends it through the queue (a lone task without one goes to a worker's inbox).
    const [running] = await submit(root, [{ id: "sleeper", cmd: "sleep 60" }]);
    const [queued] = await submit(root, [{ cmd: "true", labels: ["gpu"] }]);
    await waitFor(async () => ["assigned", "running"].includes((await taskState(root, running!)) ?? ""), {
      timeoutMs: 20_000,
      message: "the sleep handed out",
    });
    await waitFor(async () => (await taskState(root, queued!)) === "queued", { timeoutMs: 20_000 });

    const run = await zkgrid(["cancel", running!, queued!], root);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^cancelled ${running}`)),
        `cancelled ${queued} (cancelled before it ran)`,
      ]),
    );
    expect(await taskState(root, running!)).toBe("cancelled");

    const again = await zkgrid(["cancel", running!, "never-was", "--json"], root);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      `zkgrid: ${running} is already cancelled; nothing to cancel\nzkgrid: no task "never-was" in the grid at ${root}\n`,
    );
    expect(JSON.parse(again.stdout)).toMatchObject({ id: running, state: "cancelled" });
  });

  it("writes one CancelRequest as the protocol says, and gives up after --wait-timeout with exit 1", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    // No leader: the request stays where it was written.
    await submit(root, [
      { id: "c-1", cmd: "true" },
      { id: "c-2", cmd: "true" },
    ]);
    // The time bounds the whole command: enough to look up and write on a busy machine.
    const run = await zkgrid(["cancel", "c-1", "c-2", "c-1", "--wait-timeout", "5s"], root);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/gave up waiting after 5000 ms for c-1 c-2; the request stays/);
    const names = await zk.getChildren(layout.cancel);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^_c_[0-9a-f-]{36}-c\d{10}$/);
    const decoded = decodeCancelRequest((await zk.get(`${layout.cancel}/${names[0]}`)).data);
    expect(decoded.ok && decoded.value).toMatchObject({
      v: 1,
      ids: ["c-1", "c-2"],
      // The client's submitter, as in the queue nodes it writes.
      by: expect.stringMatching(/^\S+@\S+$/),
    });
  });

  it("cancels thousands of queued tasks in one command, each ending cancelled; a tiny --wait-timeout ends it before anything is written", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await startGrid(root);
    // No worker has "gpu": they stay queued.
    const ids = Array.from({ length: 5000 }, (_, i) => `q-${String(i).padStart(4, "0")}`);
    await submit(
      root,
      ids.map((id) => ({ id, cmd: "true", labels: ["gpu"] })),
    );

    const hurried = await zkgrid(["cancel", "--wait-timeout", "1ms", ...ids], root);
    expect(hurried.code).toBe(1);
    expect(hurried.stdout).toBe("");
    expect(hurried.stderr).toMatch(
      /^zkgrid: gave up after 1 ms \(--wait-timeout\) while (connecting to ZooKeeper|reading the grid|looking up the tasks); nothing was written\n$/,
    );
    expect(
      (await zk.exists(layout.cancel)) === null || (await zk.getChildren(layout.cancel)).length === 0,
    ).toBe(true);

    const run = await zkgrid(["cancel", "--wait-timeout", "2m", ...ids], root);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd().split("\n").sort()).toEqual(
      ids.map((id) => `cancelled ${id} (cancelled before it ran)`),
    );
    // What the grid recorded, read apart from the command.
    const grid = await connectGrid(zk, { root });
    try {
      const results = await grid.wait(ids, { since: -1, timeoutMs: 30_000 });
      expect(new Set([...results.values()].map((status) => status.state))).toEqual(new Set(["cancelled"]));
      expect(results.size).toBe(ids.length);
    } finally {
      await grid.close();
    }
  }, 300_000);

  it("says so when a task finished another way before the cancel took effect", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await submit(root, [{ id: "race-1", cmd: "true" }]);
    // Play the leader: the task succeeds as the request arrives.
    const answering = (async () => {
      await waitFor(
        async () => ((await zk.exists(layout.cancel)) ? (await zk.getChildren(layout.cancel)).length : 0),
        {
          timeoutMs: 20_000,
        },
      );
      await writeResults(zk, layout, [finalStatus("race-1", "succeeded") satisfies TaskStatus]);
    })();
    const run = await zkgrid(["cancel", "race-1"], root);
    await answering;
    expect(run.code).toBe(1);
    expect(run.stderr).toBe("zkgrid: race-1 finished as succeeded before the cancel took effect\n");
  });
});

describe("zkgrid usage", () => {
  it("prints --help per command, --version, and exits 2 for bad usage", async () => {
    const root = randomRoot();
    for (const command of ["status", "tasks", "task", "cancel", "dashboard"]) {
      const run = await zkgrid([command, "--help"], root);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: zkgrid ${command} `));
    }
    const top = await zkgrid(["--help"], root);
    expect(top.stdout).toMatch(/^Usage: zkgrid-submit/);
    expect(top.stdout).toContain("  cancel <id>...");
    expect((await zkgrid(["--version"], root)).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);

    const bad: Array<[string[], RegExp]> = [
      [["frobnicate"], /^zkgrid: unknown command "frobnicate"/],
      [["status", "extra"], /^zkgrid status: unexpected argument "extra"/],
      [["tasks", "--state", "done"], /^zkgrid tasks: --state: expected one of queued, delayed, assigned/],
      [["tasks", "--limit", "0"], /^zkgrid tasks: --limit: expected a positive integer/],
      [["task"], /^zkgrid task: expected one task id, got 0/],
      [["cancel"], /^zkgrid cancel: give the ids/],
      [["cancel", "../x"], /^zkgrid cancel: invalid task id "..\/x"/],
      [["status", "--colour"], /^zkgrid status: Unknown option '--colour'/],
      [["dashboard", "--port", "70000"], /^zkgrid dashboard: --port: expected 0..65535/],
    ];
    for (const [args, message] of bad) {
      const run = await zkgrid(args, root);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(message);
    }
    expect(await zk.exists(root)).toBeNull();
  });

  it("status exits 1 when ZooKeeper cannot be reached", async () => {
    const run = await zkgrid(
      ["status", "--connect", "127.0.0.1:1", "--connect-timeout", "500"],
      randomRoot(),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^zkgrid: cannot read the grid at 127\.0\.0\.1:1\/test-/);
  });
});
