import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { gridPerTest, type TestGrid } from "./grid.js";

const start = gridPerTest();

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** Runs `zkgrid <args>` and expects exit 0; resolves with ZooKeeper's mtime of the gate node after it. */
async function gateCommand(g: TestGrid, args: string[]): Promise<number> {
  const run = await g.submit(args);
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  const stat = await (await g.zk()).exists(g.layout.gate);
  return Number(stat?.mtime);
}

async function submitOne(g: TestGrid, args: string[]): Promise<string> {
  const sent = await g.submit(args);
  expect(sent.code).toBe(0);
  return lines(sent.stdout)[0] as string;
}

/** The most hand-outs (`assignedAt`) that fall in any one window of `perMs` milliseconds. */
function widestBurst(statuses: TaskStatus[], perMs: number): number {
  const times = statuses.map((s) => s.assignedAt as number).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (j < times.length && (times[j] as number) < (times[i] as number) + perMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

describe("pause, resume and start limits, end to end with real processes", () => {
  it("while the grid is paused the running task finishes and queued ones wait; after resume they run", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1", ["--concurrency", "4"]);
    const marker = join(g.dir, "long-started");
    const long = await submitOne(g, ["--cmd", `touch ${marker}; sleep 1.5`]);
    await waitFor(() => existsSync(marker), { timeoutMs: 30_000, message: "the long task to start" });

    const pausedAt = await gateCommand(g, ["pause"]);
    // A lone task (the direct path) and a batch through the queue, both sent while paused.
    const lone = await submitOne(g, ["--cmd", "echo lone"]);
    const batch = lines(
      (await g.submit([], [1, 2, 3].map((i) => JSON.stringify({ cmd: `echo q${i}` })).join("\n"))).stdout,
    );
    const first = await g.waitForResults([long]);
    expect(first.get(long)).toMatchObject({ state: "succeeded", worker: "w1" });
    expect(first.get(long)?.startedAt).toBeLessThan(pausedAt);
    // The worker is idle and the leader has stepped since: nothing else ends while paused.
    await g.submit([], JSON.stringify({ cmd: "echo one-more" }));
    expect((await g.results()).map((r) => r.id)).toEqual([long]);

    const resumedAt = await gateCommand(g, ["resume"]);
    const results = await g.waitForResults([lone, ...batch]);
    for (const id of [lone, ...batch]) {
      const status = results.get(id) as TaskStatus;
      expect(status).toMatchObject({ state: "succeeded", attempt: 1 });
      expect(status.assignedAt).toBeGreaterThanOrEqual(resumedAt);
      expect(status.startedAt).toBeGreaterThanOrEqual(resumedAt);
    }
  });

  it("a label pause holds only the tasks carrying that label", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1", ["--concurrency", "4", "--labels", "gpu,cpu"]);
    const pausedAt = await gateCommand(g, ["pause", "--label", "gpu"]);
    const gpu = await submitOne(g, ["--cmd", "echo gpu", "--label", "gpu"]);
    const cpu = await submitOne(g, ["--cmd", "echo cpu", "--label", "cpu"]);
    const plain = await submitOne(g, ["--cmd", "echo plain"]);
    const done = await g.waitForResults([cpu, plain]);
    for (const id of [cpu, plain]) expect(done.get(id)?.state).toBe("succeeded");
    expect((await g.results()).some((r) => r.id === gpu)).toBe(false);

    const resumedAt = await gateCommand(g, ["resume", "--label", "gpu"]);
    expect(resumedAt).toBeGreaterThanOrEqual(pausedAt);
    const later = await g.waitForResults([gpu]);
    expect(later.get(gpu)).toMatchObject({ state: "succeeded" });
    expect(later.get(gpu)?.assignedAt).toBeGreaterThanOrEqual(resumedAt);
  });

  it("a leader killed while the grid is paused leaves it paused: the new leader starts nothing until resume", async () => {
    const g = start();
    const m1 = g.master("m1");
    await waitFor(async () => (await g.leaderName()) === "m1", { timeoutMs: 30_000 });
    const m2 = g.master("m2");
    g.worker("w1", ["--concurrency", "4"]);
    await gateCommand(g, ["pause"]);
    const ids = lines(
      (await g.submit([], [1, 2, 3, 4].map((i) => JSON.stringify({ cmd: `echo t${i}` })).join("\n"))).stdout,
    );
    expect(ids).toHaveLength(4);
    await waitFor(() => m1.output().includes("grid paused"), { timeoutMs: 30_000 });

    m1.kill("SIGKILL");
    await waitFor(async () => (await g.leaderName()) === "m2", { timeoutMs: 30_000 });
    await waitFor(() => m2.output().includes("state rebuilt"), { timeoutMs: 30_000 });
    await g.submit([], JSON.stringify({ cmd: "echo after-failover" }));
    expect(await g.results()).toEqual([]);

    const resumedAt = await gateCommand(g, ["resume"]);
    const results = await g.waitForResults(ids);
    for (const id of ids) {
      expect(results.get(id)?.state).toBe("succeeded");
      expect(results.get(id)?.assignedAt).toBeGreaterThanOrEqual(resumedAt);
    }
  });

  it("a start limit of N per interval: no window of the hand-outs holds more than N", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1", ["--concurrency", "8", "--labels", "mail"]);
    g.worker("w2", ["--concurrency", "8", "--labels", "mail"]);
    const perMs = 500;
    await gateCommand(g, ["limit", "set", "mail", `3/${perMs}ms`]);
    const tasks = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({ cmd: "true", labels: ["mail"], id: `m${i}` }),
    );
    const free = Array.from({ length: 4 }, (_, i) => JSON.stringify({ cmd: "true", id: `f${i}` }));
    const sent = await g.submit([], [...tasks, ...free].join("\n"));
    expect(sent.code).toBe(0);
    const results = await g.waitForResults([...lines(sent.stdout)]);
    const mail = [...results.values()].filter((s) => s.id.startsWith("m"));
    expect(mail).toHaveLength(12);
    for (const s of results.values()) expect(s.state).toBe("succeeded");
    expect(widestBurst(mail, perMs)).toBeLessThanOrEqual(3);
    // 12 starts at 3 per window need at least 3 more windows after the first hand-outs.
    const times = mail.map((s) => s.assignedAt as number);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual(3 * perMs);
  });
});
