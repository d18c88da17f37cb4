import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { gridPerTest, type TestGrid } from "./grid.js";

const start = gridPerTest();
const HANDLERS = resolve(import.meta.dirname, "fixtures/retry-handlers.mjs");

/** A grid of master m1 and worker w1 (started with `workerFlags`). */
function smallGrid(workerFlags: string[] = []): TestGrid {
  const g = start();
  g.master("m1");
  g.worker("w1", workerFlags);
  return g;
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** Submits with the CLI; returns the one id it printed. */
async function submitOne(g: TestGrid, args: string[], input?: string): Promise<string> {
  const sent = await g.submit(args, input);
  expect(sent.stderr).toBe("");
  expect(sent.code).toBe(0);
  return lines(sent.stdout)[0] as string;
}

/** A shell command that counts its runs in `file` and fails until run `succeedOn`. */
function countingCommand(file: string, succeedOn: number): string {
  return `n=$(cat ${file} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${file}; [ $n -ge ${succeedOn} ]`;
}

/** Submits `cmd` with `flags` and waits for its end; returns the CLI's exit code and the status it printed. */
async function submitAndWait(
  g: TestGrid,
  cmd: string,
  flags: string[],
): Promise<{ code: number | null; status: TaskStatus }> {
  const out = await g.submit(["--cmd", cmd, ...flags, "--wait", "--json"]);
  return { code: out.code, status: JSON.parse(lines(out.stdout)[0] ?? "{}") as TaskStatus };
}

function outcomes(status: TaskStatus | undefined): Array<[number, string, number | undefined]> {
  return (status?.history ?? []).map((a) => [a.attempt, a.outcome, a.exitCode]);
}

describe("retries, end to end with real workers", () => {
  it("a command failing twice then succeeding ends succeeded, with its 3 attempts in its history", async () => {
    const g = smallGrid();
    const counter = join(g.dir, "runs");
    const { code, status } = await submitAndWait(g, countingCommand(counter, 3), [
      "--retries",
      "4",
      "--backoff",
      "fixed:200ms",
    ]);
    expect(code).toBe(0);
    expect(status).toMatchObject({ state: "succeeded", attempt: 3, exitCode: 0, worker: "w1" });
    expect(outcomes(status)).toEqual([
      [1, "failed", 1],
      [2, "failed", 1],
      [3, "succeeded", 0],
    ]);
    // Each retry waited for its backoff after the attempt before it.
    const [a1, a2, a3] = status.history ?? [];
    expect(a2?.startedAt).toBeGreaterThanOrEqual((a1?.finishedAt ?? 0) + 200);
    expect(a3?.startedAt).toBeGreaterThanOrEqual((a2?.finishedAt ?? 0) + 200);
    // Exactly one result, and the operator's view shows every attempt.
    expect((await g.results()).filter((r) => r.id === status.id)).toHaveLength(1);
    const shown = await g.submit(["task", status.id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /attempts:\n {2}#1 failed exit=1 w1.*\n {2}#2 failed exit=1 w1.*\n {2}#3 succeeded exit=0 w1/,
    );
  });

  it("an exit code the policy lists refuses the retry: the first failure is final", async () => {
    const g = smallGrid();
    const counter = join(g.dir, "runs");
    const { code, status } = await submitAndWait(g, `${countingCommand(counter, 99)} || exit 3`, [
      "--retries",
      "3",
      "--backoff",
      "fixed:100ms",
      "--no-retry-exit-codes",
      "3,4",
    ]);
    expect(code).toBe(1);
    expect(status).toMatchObject({ state: "failed", attempt: 1, exitCode: 3 });
    expect(status.history).toBeUndefined();
  });

  it("a handler's UnrecoverableError refuses the retry; a handler's other errors are retried", async () => {
    const g = smallGrid(["--handlers", HANDLERS]);
    const retry = { backoff: { type: "fixed", delayMs: 100 } };
    const refused = await submitOne(g, [], JSON.stringify({ handler: "refuse", retry, maxAttempts: 3 }));
    const flaky = await submitOne(g, [], JSON.stringify({ handler: "flaky", retry, maxAttempts: 3 }));
    const results = await g.waitForResults([refused, flaky]);
    expect(results.get(refused)).toMatchObject({
      state: "failed",
      attempt: 1,
      reason: "the input can never work",
    });
    expect(results.get(refused)?.history).toBeUndefined();
    expect(results.get(flaky)).toMatchObject({ state: "succeeded", attempt: 3, output: { attempt: 3 } });
    expect(outcomes(results.get(flaky)).map(([, outcome]) => outcome)).toEqual([
      "failed",
      "failed",
      "succeeded",
    ]);
  });

  it("a timed-out attempt is retried only when the policy names timed-out", async () => {
    const g = smallGrid(["--concurrency", "2"]);
    const flags = ["--cmd", "sleep 30", "--timeout", "300ms", "--retries", "1", "--backoff", "fixed:100ms"];
    const plain = await submitOne(g, flags);
    const asked = await submitOne(g, [...flags, "--retry-on", "failed,timed-out"]);
    const results = await g.waitForResults([plain, asked]);
    expect(results.get(plain)).toMatchObject({ state: "timed-out", attempt: 1 });
    expect(results.get(asked)).toMatchObject({ state: "timed-out", attempt: 2 });
    expect(outcomes(results.get(asked)).map(([, outcome]) => outcome)).toEqual(["timed-out", "timed-out"]);
  });
});

describe("delayed tasks, end to end with real workers", () => {
  it("a task delayed with --at shows as delayed, and starts not before its time", async () => {
    const g = smallGrid();
    // Far enough ahead that the listing below (a process start on a busy machine) comes first.
    const at = new Date(Date.now() + 10_000).toISOString();
    const runAt = Date.parse(at);
    const id = await submitOne(g, ["--cmd", "true", "--at", at]);
    const listed = await g.submit(["tasks", "--state", "delayed"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toMatch(/delayed .*due in/);
    const status = (await g.waitForResults([id])).get(id);
    expect(status).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(status?.assignedAt).toBeGreaterThanOrEqual(runAt);
    expect(status?.startedAt).toBeGreaterThanOrEqual(runAt);
  });

  it("a delayed task cancelled while it waits ends cancelled and never runs", async () => {
    const g = smallGrid();
    const id = await submitOne(g, ["--cmd", "true", "--delay", "60s"]);
    await waitFor(async () => (await g.submit(["task", id])).stdout.includes("delayed"), {
      timeoutMs: 30_000,
      message: "the task to show as delayed",
    });
    const cancelled = await g.submit(["cancel", id]);
    expect(cancelled.code).toBe(0);
    const status = (await g.waitForResults([id])).get(id);
    expect(status).toMatchObject({ state: "cancelled", attempt: 0 });
    expect(existsSync(join(g.dir, "w1", id))).toBe(false);
  });

  it("delayed tasks and a retry waiting for its backoff survive the leader's death: each runs once, never early", async () => {
    const g = start();
    const m1 = g.master("m1");
    await waitFor(async () => (await g.leaderName()) === "m1", { timeoutMs: 30_000, message: "m1 to lead" });
    g.master("m2");
    g.worker("w1", ["--concurrency", "4"]);
    const runAt = Date.now() + 6000;
    const delayed = [1, 2, 3].map((i) => ({ id: `later-${i}`, cmd: "true", runAt }));
    await submitOne(g, [], delayed.map((t) => JSON.stringify(t)).join("\n"));
    const counter = join(g.dir, "runs");
    const retried = await submitOne(g, [
      "--cmd",
      countingCommand(counter, 2),
      "--retries",
      "2",
      "--backoff",
      "fixed:5s",
    ]);
    // The first attempt failed and its retry waits for its backoff: kill the leader now.
    await waitFor(async () => (await g.submit(["task", retried])).stdout.includes("delayed"), {
      timeoutMs: 30_000,
      message: "the retry to wait for its backoff",
    });
    m1.kill("SIGKILL");
    const ids = [...delayed.map((t) => t.id), retried];
    const results = await g.waitForResults(ids, 90_000);
    for (const t of delayed) {
      expect(results.get(t.id)).toMatchObject({ state: "succeeded", attempt: 1 });
      expect(results.get(t.id)?.startedAt).toBeGreaterThanOrEqual(runAt);
    }
    const status = results.get(retried);
    expect(status).toMatchObject({ state: "succeeded", attempt: 2 });
    const [first, second] = status?.history ?? [];
    expect(outcomes(status)).toEqual([
      [1, "failed", 1],
      [2, "succeeded", 0],
    ]);
    expect(second?.startedAt).toBeGreaterThanOrEqual((first?.finishedAt ?? 0) + 5000);
    // Each task ended once, whichever leader recorded it.
    const all = await g.results();
    for (const id of ids) expect(all.filter((r) => r.id === id)).toHaveLength(1);
    expect(await g.leaderName()).toBe("m2");
  });
});
