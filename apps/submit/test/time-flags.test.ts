import type { ChildProcess } from "node:child_process";
import type { ZkClient } from "@zkgrid/core";
import { gridLayout } from "@zkgrid/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectGrid, InvalidTaskError, prepareTasks } from "../src/index.js";
import { bins, buildIfStale, killAll, type Run, runToEnd } from "./built-bins.js";
import { connectString, connectTestClient, randomRoot, readQueue } from "./helpers.js";

let zk: ZkClient;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  await buildIfStale("apps/submit", "@zkgrid/submit", "bin.js");
  zk = await connectTestClient();
});
afterEach(() => killAll(children));
afterAll(() => zk?.close());

function runBin(args: string[], root: string): Promise<Run> {
  return runToEnd(bins.submit, args, root, children, "");
}

describe("delay and retry flags of zkgrid submit", () => {
  it("--help lists the retry flags with the word backoff", async () => {
    const run = await runBin(["--help"], randomRoot());
    expect(run.code).toBe(0);
    for (const flag of [
      "--delay",
      "--at",
      "--retries",
      "--retry-on",
      "--backoff",
      "--max-backoff",
      "--jitter",
    ])
      expect(run.stdout).toContain(flag);
    expect(run.stdout).toContain("--no-retry-exit-codes");
  });

  it("writes runAt and the retry policy the flags describe into the task", async () => {
    const root = randomRoot();
    const run = await runBin(
      [
        "--cmd",
        "./fetch.sh",
        "--at",
        "2030-01-02T03:04:05Z",
        "--retries",
        "4",
        "--retry-on",
        "failed,timed-out",
        "--backoff",
        "exponential:2s",
        "--max-backoff",
        "1m",
        "--jitter",
        "0.25",
        "--no-retry-exit-codes",
        "3,64",
      ],
      root,
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const [node] = await readQueue(zk, gridLayout(root));
    expect(node?.tasks).toEqual([
      expect.objectContaining({
        cmd: "./fetch.sh",
        runAt: Date.parse("2030-01-02T03:04:05Z"),
        maxAttempts: 5,
        retry: {
          on: ["failed", "timed-out"],
          backoff: { type: "exponential", delayMs: 2000, maxDelayMs: 60_000, jitter: 0.25 },
          noRetryExitCodes: [3, 64],
        },
      }),
    ]);
    await zk.deleteRecursive(root);
  });

  it.each([
    [["--delay", "soon"], /--delay: expected a duration/],
    [["--at", "tomorrow"], /--at: expected an ISO time/],
    [["--delay", "1s", "--at", "2030-01-01T00:00:00Z"], /--delay and --at/],
    [["--retries", "x"], /--retries: expected an integer/],
    [["--retries", "2", "--max-attempts", "3"], /--retries and --max-attempts/],
    [["--retry-on", "cancelled"], /--retry-on: expected failed, timed-out/],
    [["--backoff", "linear:1s"], /--backoff: expected fixed:<duration> or exponential:<duration>/],
    [["--backoff", "fixed:5s", "--max-backoff", "1s"], /--max-backoff: must be at least delayMs/],
    [["--jitter", "2"], /--jitter: expected a fraction 0\.\.1/],
    [["--no-retry-exit-codes", "0"], /--no-retry-exit-codes: expected exit codes 1\.\.255/],
  ])("refuses %j with exit 2, naming the flag, and writes nothing", async (flags, message) => {
    const root = randomRoot();
    const run = await runBin(["--cmd", "true", ...flags], root);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(await zk.exists(root)).toBeNull();
  });
});

describe("delays and retries in the library", () => {
  it("turns delayMs into runAt, and refuses both at once or a bad delay before anything is written", () => {
    const before = Date.now();
    const [task] = prepareTasks([{ cmd: "true", delayMs: 30_000 }]);
    expect(task?.runAt).toBeGreaterThanOrEqual(before + 30_000);
    expect(task).not.toHaveProperty("delayMs");
    expect(() => prepareTasks([{ cmd: "true", delayMs: 5, runAt: 1 }])).toThrow(
      /delayMs: give runAt or delayMs/,
    );
    expect(() => prepareTasks([{ cmd: "true", delayMs: -1 }])).toThrow(InvalidTaskError);
    expect(() =>
      prepareTasks([{ cmd: "true", retry: { backoff: { type: "fixed", delayMs: 10, jitter: 3 } } }]),
    ).toThrow(/task 0: retry\.backoff\.jitter: expected a fraction 0\.\.1, got 3/);
  });

  it("never sends a lone delayed or retried task to a worker's inbox: it goes to the queue", async () => {
    const root = randomRoot();
    const grid = await connectGrid({ connectString: connectString(), root });
    try {
      await grid.submit({ cmd: "true", delayMs: 60_000 });
      await grid.submit({ cmd: "true", retry: {} });
      const nodes = await readQueue(zk, grid.layout);
      expect(nodes.flatMap((n) => n.tasks)).toHaveLength(2);
    } finally {
      await grid.close();
      await zk.deleteRecursive(root).catch(() => {});
    }
  });
});
