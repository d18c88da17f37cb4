import { describe, expect, test } from "vitest";
import {
  MAX_BATCH_TASKS,
  MAX_NODE_BYTES,
  ProtocolError,
  type StatusUpdate,
  type TaskSpec,
  type TaskStatus,
  decodeResultBatch,
  decodeSubmitBatch,
  decodeWorkerReport,
  encodeResultBatch,
  encodeSubmitBatch,
  encodeWorkerReport,
  packByBytes,
  encodeResultBatches,
  encodeSubmitBatches,
  encodeWorkerReports,
  packResultBatches,
  packSubmitBatches,
  packWorkerReports,
} from "../src/index.js";
import { seededRandom } from "@zkgrid/testing";

function randomTask(rand: () => number, index: number, maxCmd: number): TaskSpec {
  // "é" takes 2 bytes and '"' is escaped to 2, so at most maxCmd bytes either way.
  const char = rand() < 0.3 ? "é" : rand() < 0.1 ? '"' : "x";
  const length = Math.floor((rand() ** 3 * maxCmd) / (char === "x" ? 1 : 2));
  const task: TaskSpec = { id: `t-${index}`, cmd: `echo ${char.repeat(length)}` };
  if (rand() < 0.3) task.meta = { n: index, tag: "x".repeat(Math.floor(rand() * 100)) };
  if (rand() < 0.2) task.labels = ["gpu"];
  return task;
}

describe("packByBytes", () => {
  test("groups never exceed the byte budget (with commas) or the count, and keep the order", () => {
    const rand = seededRandom(7);
    for (let round = 0; round < 100; round++) {
      const maxBytes = 10 + Math.floor(rand() * 2000);
      const maxCount = 1 + Math.floor(rand() * 20);
      const sizes = Array.from({ length: Math.floor(rand() * 200) }, () => 1 + Math.floor(rand() * maxBytes));
      const groups = packByBytes(sizes, (s) => s, maxBytes, maxCount);
      expect(groups.flat()).toEqual(sizes);
      groups.forEach((group, i) => {
        expect(group.length).toBeGreaterThan(0);
        expect(group.length).toBeLessThanOrEqual(maxCount);
        const used = group.reduce((a, b) => a + b, 0) + group.length - 1;
        expect(used).toBeLessThanOrEqual(maxBytes);
        // Greedy: the next group's first item did not fit in this one.
        const next = groups[i + 1];
        if (next && group.length < maxCount) expect(used + 1 + next[0]!).toBeGreaterThan(maxBytes);
      });
    }
  });

  test("an item that fits nowhere is named", () => {
    expect(() => packByBytes([1, 50, 1], (s) => s, 10, 5)).toThrow(
      "[1]: encodes to 50 bytes; at most 10 fit in one batch",
    );
    expect(packByBytes([], (s: number) => s, 10, 5)).toEqual([]);
  });
});

describe("packSubmitBatches", () => {
  test("every batch encodes to at most MAX_NODE_BYTES and MAX_BATCH_TASKS, for random task sizes", () => {
    const rand = seededRandom(42);
    for (let round = 0; round < 12; round++) {
      const count = Math.floor(rand() * 3000);
      const tasks = Array.from({ length: count }, (_, i) => randomTask(rand, i, 60_000));
      const batches = packSubmitBatches(tasks, { submitter: "me@host", submittedAt: 1 });
      expect(batches.flatMap((b) => b.tasks)).toEqual(tasks);
      for (const batch of batches) {
        const bytes = encodeSubmitBatch(batch);
        expect(bytes.length).toBeLessThanOrEqual(MAX_NODE_BYTES);
        expect(batch.tasks.length).toBeLessThanOrEqual(MAX_BATCH_TASKS);
        const decoded = decodeSubmitBatch(bytes);
        expect(decoded.ok && decoded.tasks.every((t) => t.ok)).toBe(true);
      }
    }
  });

  test("a small byte limit is never exceeded either, with multi-byte and escaped characters", () => {
    const rand = seededRandom(3);
    for (let round = 0; round < 200; round++) {
      const maxBytes = 2000 + Math.floor(rand() * 5000);
      const tasks = Array.from({ length: 1 + Math.floor(rand() * 40) }, (_, i) => randomTask(rand, i, 1500));
      const maxTasks = 1 + Math.floor(rand() * 10);
      const batches = packSubmitBatches(tasks, { maxBytes, maxTasks });
      expect(batches.flatMap((b) => b.tasks)).toEqual(tasks);
      for (const batch of batches) {
        expect(encodeSubmitBatch(batch).length).toBeLessThanOrEqual(maxBytes);
        expect(batch.tasks.length).toBeLessThanOrEqual(maxTasks);
      }
    }
  });

  test("small tasks are split by count at MAX_BATCH_TASKS", () => {
    const tasks = Array.from({ length: 2500 }, (_, i) => ({ id: `t${i}`, cmd: "true" }));
    expect(packSubmitBatches(tasks).map((b) => b.tasks.length)).toEqual([1000, 1000, 500]);
  });

  test("each batch gets its own id, and the options are written into every batch", () => {
    let n = 0;
    const batches = packSubmitBatches(
      Array.from({ length: 3 }, (_, i) => ({ id: `t${i}`, cmd: "true" })),
      { maxTasks: 1, submittedAt: 5, submitter: "bob", newBatchId: () => `batch-${++n}` },
    );
    expect(batches.map((b) => [b.v, b.batchId, b.submittedAt, b.submitter])).toEqual([
      [1, "batch-1", 5, "bob"],
      [1, "batch-2", 5, "bob"],
      [1, "batch-3", 5, "bob"],
    ]);
  });

  test("no tasks make no batches; an invalid task is named by its index", () => {
    expect(packSubmitBatches([])).toEqual([]);
    const tasks = [
      { id: "a", cmd: "x" },
      { id: "b", cmd: "x", priority: 9999 },
    ];
    expect(() => packSubmitBatches(tasks)).toThrow(ProtocolError);
    expect(() => packSubmitBatches(tasks)).toThrow(
      "tasks[1].priority: expected an integer -1000..1000, got 9999",
    );
  });
});

describe("encodeSubmitBatches", () => {
  test("packs as packSubmitBatches does, each batch with the bytes encodeSubmitBatch gives it", () => {
    const rand = seededRandom(11);
    for (let round = 0; round < 50; round++) {
      const maxBytes = 2000 + Math.floor(rand() * 20_000);
      const tasks = Array.from({ length: Math.floor(rand() * 300) }, (_, i) => randomTask(rand, i, 1500));
      const options = {
        maxBytes,
        maxTasks: 1 + Math.floor(rand() * 50),
        submitter: "é@host",
        submittedAt: 7,
      };
      let n = 0;
      const encoded = encodeSubmitBatches(tasks, { ...options, newBatchId: () => `b-${++n}` });
      n = 0;
      const packed = packSubmitBatches(tasks, { ...options, newBatchId: () => `b-${++n}` });
      expect(encoded.map((e) => e.batch)).toEqual(packed);
      for (const { batch, data } of encoded) {
        expect(data.length).toBeLessThanOrEqual(maxBytes);
        expect(data.equals(encodeSubmitBatch(batch))).toBe(true);
      }
    }
  });

  test("an invalid task is named by its index, unless the tasks are said to be checked already", () => {
    const tasks = [
      { id: "a", cmd: "x" },
      { id: "b", cmd: "x", priority: 9999 },
    ];
    expect(() => encodeSubmitBatches(tasks)).toThrow("tasks[1].priority");
    expect(encodeSubmitBatches(tasks, { validated: true })[0]?.batch.tasks).toEqual(tasks);
  });
});

describe("packResultBatches and packWorkerReports", () => {
  test("result batches stay under the node limit and carry the epoch", () => {
    const rand = seededRandom(9);
    const results: TaskStatus[] = Array.from({ length: 400 }, (_, i) => ({
      v: 1,
      id: `t${i}`,
      state: "succeeded",
      attempt: 1,
      stdoutTail: "é".repeat(Math.floor(rand() * 2048)),
      stderrTail: "x".repeat(Math.floor(rand() * 4096)),
      meta: { i },
    }));
    const batches = packResultBatches(results, 12);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flatMap((b) => b.results)).toEqual(results);
    for (const batch of batches) {
      expect(batch.epoch).toBe(12);
      const bytes = encodeResultBatch(batch);
      expect(bytes.length).toBeLessThanOrEqual(MAX_NODE_BYTES);
      expect(decodeResultBatch(bytes).ok).toBe(true);
    }
  });

  test("a result batch refuses a status that is not final", () => {
    expect(() => packResultBatches([{ v: 1, id: "a", state: "running", attempt: 1 }], 1)).toThrow(
      'results[0].state: expected a final state, got "running"',
    );
  });

  test("worker reports stay under a given limit and name their worker and session", () => {
    const updates: StatusUpdate[] = Array.from({ length: 50 }, (_, i) => ({
      id: `t${i}`,
      attempt: 1,
      state: "failed",
      at: i,
      stderrTail: "x".repeat(i * 50),
    }));
    const reports = packWorkerReports("w1", "abc", updates, 10_000);
    expect(reports.flatMap((r) => r.updates)).toEqual(updates);
    for (const report of reports) {
      expect(report).toMatchObject({ v: 1, worker: "w1", session: "abc" });
      const bytes = encodeWorkerReport(report);
      expect(bytes.length).toBeLessThanOrEqual(10_000);
      expect(decodeWorkerReport(bytes).ok).toBe(true);
    }
    expect(() => packWorkerReports("../w", "abc", updates)).toThrow("invalid worker name");
  });

  test("the encoded variants give the same batches, byte for byte, as packing and then encoding", () => {
    const rand = seededRandom(4);
    const results: TaskStatus[] = Array.from({ length: 300 }, (_, i) => ({
      v: 1,
      id: `t${i}`,
      state: "failed",
      attempt: 1,
      reason: "é".repeat(Math.floor(rand() * 1000)),
      output: { i, s: "x".repeat(Math.floor(rand() * 3000)) },
    }));
    const packed = packResultBatches(results, 3, 50_000).map(encodeResultBatch);
    expect(packed.length).toBeGreaterThan(1);
    expect(encodeResultBatches(results, 3, 50_000)).toEqual(packed);
    const updates: StatusUpdate[] = results.map((r, i) => ({
      id: r.id,
      attempt: 1,
      state: "failed",
      at: i,
      error: r.reason,
    }));
    const reports = packWorkerReports("w1", "abc", updates, 20_000).map(encodeWorkerReport);
    expect(encodeWorkerReports("w1", "abc", updates, 20_000)).toEqual(reports);
    expect(() => encodeResultBatches([{ v: 1, id: "a", state: "queued", attempt: 0 }], 1)).toThrow(
      'results[0].state: expected a final state, got "queued"',
    );
    expect(() => encodeWorkerReports("w1", "abc", [{ id: "a", attempt: 0, state: "failed", at: 1 }])).toThrow(
      /^updates\[0\]\.attempt: /,
    );
  });

  test("a stopping worker's reports each carry draining: true, and decode with it", () => {
    const updates: StatusUpdate[] = [{ id: "a", attempt: 1, state: "returned", at: 1, startedAt: 1 }];
    const [node] = encodeWorkerReports("w1", "abc", updates, undefined, true);
    const decoded = decodeWorkerReport(node as Buffer);
    expect(decoded.ok && decoded.value).toEqual({
      v: 1,
      worker: "w1",
      session: "abc",
      draining: true,
      updates,
    });
    const plain = decodeWorkerReport((encodeWorkerReports("w1", "abc", updates) as Buffer[])[0] as Buffer);
    expect(plain.ok && plain.value.draining).toBeUndefined();
    const bad = decodeWorkerReport(
      Buffer.from('{"v":1,"worker":"w1","session":"abc","draining":"yes","updates":[]}'),
    );
    expect(bad.ok).toBe(false);
  });

  test("an update too big for the limit is named", () => {
    expect(() =>
      packWorkerReports(
        "w",
        "1",
        [{ id: "a", attempt: 1, state: "failed", at: 1, stderrTail: "x".repeat(4000) }],
        1000,
      ),
    ).toThrow(/^updates\[0\]: encodes to \d+ bytes/);
  });
});
