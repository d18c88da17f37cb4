import { waitFor } from "@zkgrid/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AssignedTask } from "@zkgrid/protocol";
import { defineHandlers } from "../src/index.js";
import { assigned, Grid, layout } from "./helpers.js";

let grid: Grid;
beforeEach(async () => {
  grid = await Grid.create();
});
afterEach(async () => {
  await grid.cleanup();
});

/** Tasks running at once in this process, and the most seen. */
const load = { now: 0, most: 0 };
const handlers = defineHandlers({
  noop: async () => {
    load.now += 1;
    load.most = Math.max(load.most, load.now);
    await new Promise((resolve) => setImmediate(resolve));
    load.now -= 1;
  },
});

/** Task ids are unique across a test's rounds. */
let next = 0;

/**
 * Plays the leader of a deep queue for `rounds` rounds: hands w1 as many no-op tasks as its
 * registration asks for, waits until each has a final status, and again. Returns the capacity read
 * before each round and the most tasks an assignment listed.
 */
async function feedDeepQueue(
  session: string,
  rounds: number,
  until: (capacity: number) => boolean = () => false,
): Promise<number[]> {
  const capacities: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const capacity = (await grid.registration("w1"))?.capacity ?? 0;
    capacities.push(capacity);
    if (until(capacity)) break;
    const tasks: AssignedTask[] = [];
    for (let i = 0; i < capacity; i++) tasks.push(assigned(`t${next++}`, { handler: "noop" }));
    await grid.assign("w1", session, tasks);
    const ids = new Set(tasks.map((t) => t.id));
    await waitFor(
      async () => {
        const done = (await grid.updates("w1", session)).filter(
          (u) => ids.has(u.id) && u.state !== "running",
        );
        return done.length === ids.size && done.every((u) => u.state === "succeeded");
      },
      { timeoutMs: 20_000, intervalMs: 10, message: `round ${round}'s tasks to succeed` },
    );
  }
  return capacities;
}

describe("adaptive prefetch", () => {
  it("with a deep queue of short tasks, asks for more than concurrency, up to its bound, and runs at most concurrency at once", async () => {
    load.most = 0;
    const worker = await grid.start("w1", { concurrency: 2, handlers });
    const session = worker.sessionId!;
    expect((await grid.registration("w1"))?.capacity).toBe(2);

    // The bound with concurrency 2: 32 held (at least 32), so a capacity of 34.
    const capacities = await feedDeepQueue(session, 80, (c) => c === 34);
    expect(capacities.at(-1)).toBe(34);
    expect(Math.max(...capacities)).toBe(34);
    expect(load.most).toBeLessThanOrEqual(2);
    expect(grid.logs.filter((l) => l.level === "warn" || l.level === "error")).toEqual([]);

    // A few more rounds at the bound: it stays there.
    const more = await feedDeepQueue(session, 3);
    expect(more.every((c) => c === 34)).toBe(true);
  });

  it("shrinks when the queue runs short, and back to concurrency once idle", async () => {
    const worker = await grid.start("w1", { concurrency: 2, handlers });
    const session = worker.sessionId!;
    await feedDeepQueue(session, 80, (c) => c >= 10);
    const grown = (await grid.registration("w1"))!.capacity;
    expect(grown).toBeGreaterThanOrEqual(10);

    // An assignment with fewer tasks than concurrency: the leader had no more to give.
    await grid.assign("w1", session, [assigned("short", { handler: "noop" })]);
    await grid.final("w1", session, "short");
    // Halved at once, then 0 once idle: the capacity ends at concurrency.
    await waitFor(async () => (await grid.registration("w1"))?.capacity === 2, {
      message: "the capacity back at concurrency",
    });
  });

  it("a lone task starts at once and asks for nothing more", async () => {
    const worker = await grid.start("w1", { concurrency: 2, handlers });
    const session = worker.sessionId!;
    for (const id of ["lone1", "lone2", "lone3"]) {
      await grid.assign("w1", session, [assigned(id, { handler: "noop" })]);
      expect(await grid.final("w1", session, id)).toMatchObject({ state: "succeeded" });
    }
    // Never rewritten: the registration is still the one made at start.
    expect((await grid.zk.exists(layout.worker("w1")))?.version).toBe(0);
    expect((await grid.registration("w1"))?.capacity).toBe(2);
  });

  it("a fixed prefetch is honoured: the capacity stays concurrency + prefetch under a deep queue", async () => {
    const worker = await grid.start("w1", { concurrency: 2, prefetch: 5, handlers });
    const session = worker.sessionId!;
    const capacities = await feedDeepQueue(session, 6);
    expect(capacities).toEqual([7, 7, 7, 7, 7, 7]);
    expect((await grid.zk.exists(layout.worker("w1")))?.version).toBe(0);
  });

  it("--prefetch 0 never holds a task", async () => {
    const worker = await grid.start("w1", { concurrency: 2, prefetch: 0, handlers });
    const session = worker.sessionId!;
    const capacities = await feedDeepQueue(session, 6);
    expect(capacities).toEqual([2, 2, 2, 2, 2, 2]);
  });
});
