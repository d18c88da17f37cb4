import { describe, expect, test } from "vitest";
import {
  buildTaskStatus,
  decodeInboxNode,
  encodeSubmitBatch,
  encodeTaskStatus,
  INBOX_NAME_SEPARATOR,
  inboxNamedBatch,
  inboxNodeId,
  inboxNodeName,
  MAX_NAMED_BATCH_BYTES,
  statusFromUpdate,
  type TaskSpec,
} from "../src/index.js";

const task: TaskSpec = { id: "t1", cmd: "echo hi", meta: { owner: "me" } };
// Raw JSON: the encoders refuse the invalid payloads these tests need.
const batchOf = (tasks: TaskSpec[], extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ v: 1, batchId: "b1", submittedAt: 1000, tasks, ...extra }));
const raw = (value: unknown) => Buffer.from(JSON.stringify(value));

describe("statusFromUpdate", () => {
  test("builds the final status from the attempt's facts and the worker's update", () => {
    const status = statusFromUpdate(
      { id: "t1", spec: task, attemptsUsed: 1, worker: "w1", submittedAt: 1000, assignedAt: 1001 },
      {
        id: "t1",
        attempt: 1,
        state: "succeeded",
        at: 1010,
        startedAt: 1002,
        exitCode: 0,
        stdoutTail: "hi\n",
      },
    );
    expect(status).toEqual({
      v: 1,
      id: "t1",
      state: "succeeded",
      attempt: 1,
      worker: "w1",
      submittedAt: 1000,
      assignedAt: 1001,
      meta: { owner: "me" },
      startedAt: 1002,
      finishedAt: 1010,
      exitCode: 0,
      stdoutTail: "hi\n",
    });
  });

  test("an update without startedAt takes the one given; the error becomes the reason", () => {
    const status = statusFromUpdate(
      { id: "t1", spec: {}, attemptsUsed: 2 },
      { id: "t1", attempt: 2, state: "failed", at: 9, error: "spawn failed" },
      5,
    );
    expect(status).toEqual({
      v: 1,
      id: "t1",
      state: "failed",
      attempt: 2,
      startedAt: 5,
      finishedAt: 9,
      reason: "spawn failed",
    });
  });

  test("buildTaskStatus lets a key given in extra win, even as undefined", () => {
    const status = buildTaskStatus({ id: "t1", spec: task, attemptsUsed: 0, worker: "w1" }, "cancelled", {
      worker: undefined,
      reason: "cancelled before it ran",
    });
    expect(status).toEqual({
      v: 1,
      id: "t1",
      state: "cancelled",
      attempt: 0,
      meta: { owner: "me" },
      reason: "cancelled before it ran",
    });
  });
});

describe("decodeInboxNode", () => {
  test("a batch of the one task named like the node is a task", () => {
    const data = encodeSubmitBatch({ v: 1, batchId: "b1", submittedAt: 1000, tasks: [task] });
    expect(decodeInboxNode("t1", data, 0)).toEqual({ kind: "task", task, submittedAt: 1000 });
  });

  test("a final status of that id at attempt 1 is an answer", () => {
    const status = statusFromUpdate(
      { id: "t1", spec: task, attemptsUsed: 1, worker: "w1" },
      { id: "t1", attempt: 1, state: "succeeded", at: 5, output: { tasks: [1] } },
    );
    expect(decodeInboxNode("t1", encodeTaskStatus(status), 1)).toEqual({ kind: "outcome", status });
  });

  test.each([
    ["two tasks", batchOf([task, { id: "t2", cmd: "x" }]), /exactly one task/],
    ["another id", batchOf([{ ...task, id: "t2" }]), /tasks\[0\]\.id: expected "t1"/],
    ["requeued", batchOf([task], { requeued: { t1: { attemptsUsed: 1, submittedAt: 1 } } }), /requeued/],
    ["a bad task", batchOf([{ id: "t1" } as TaskSpec]), /exactly one of "cmd" or "handler"/],
    ["not JSON", Buffer.from("{nope"), /JSON/],
    ["a status of another id", raw({ v: 1, id: "t2", state: "succeeded", attempt: 1 }), /id: expected "t1"/],
    ["a state that is not final", raw({ v: 1, id: "t1", state: "running", attempt: 1 }), /final state/],
    ["a later attempt", raw({ v: 1, id: "t1", state: "succeeded", attempt: 2 }), /attempt 1/],
    ["rejected", raw({ v: 1, id: "t1", state: "rejected", attempt: 1 }), /final state/],
  ])("%s is invalid, and says why", (_what, data, why) => {
    const node = decodeInboxNode("t1", data, 0);
    expect(node.kind).toBe("invalid");
    if (node.kind === "invalid") {
      expect(node.id).toBe("t1");
      expect(node.error.message).toMatch(why);
    }
  });
});

describe("a direct task carried in its node's name", () => {
  const batch = encodeSubmitBatch({ v: 1, batchId: "b1", submittedAt: 1000, tasks: [task] });
  const name = inboxNodeName("t1", batch);
  const status = statusFromUpdate(
    { id: "t1", spec: task, attemptsUsed: 1, worker: "w1" },
    { id: "t1", attempt: 1, state: "succeeded", at: 5 },
  );

  test("a small batch rides in the name after the id and ~, in base64url; the id is what comes before", () => {
    expect(name).toBe(`t1${INBOX_NAME_SEPARATOR}${batch.toString("base64url")}`);
    expect(name).toMatch(/^t1~[A-Za-z0-9_-]+$/);
    expect(inboxNodeId(name)).toBe("t1");
    expect(inboxNodeId("t1")).toBe("t1");
    expect(inboxNamedBatch(name)).toEqual(batch);
    expect(inboxNamedBatch("t1")).toBeUndefined();
  });

  test("a batch over MAX_NAMED_BATCH_BYTES stays in the data: the name is the id alone", () => {
    const big = { ...task, cmd: "x".repeat(MAX_NAMED_BATCH_BYTES) };
    const data = encodeSubmitBatch({ v: 1, batchId: "b1", submittedAt: 1000, tasks: [big] });
    expect(data.length).toBeGreaterThan(MAX_NAMED_BATCH_BYTES);
    expect(inboxNodeName("t1", data)).toBe("t1");
    const justFits = Buffer.alloc(MAX_NAMED_BATCH_BYTES, 0x61);
    expect(inboxNodeName("t1", justFits).length).toBe(3 + Math.ceil((MAX_NAMED_BATCH_BYTES * 4) / 3));
  });

  test("at version 0 the name is the task, whatever the data holds; written back empty, it is declined", () => {
    const asTask = { kind: "task", task, submittedAt: 1000 };
    expect(decodeInboxNode(name, Buffer.alloc(0), 0)).toEqual(asTask);
    expect(decodeInboxNode(name, Buffer.from("{ not json"), 0)).toEqual(asTask);
    expect(decodeInboxNode(name, Buffer.alloc(0), 1)).toEqual(asTask);
  });

  test("after version 0 its data is the answer, whose id is the name's id", () => {
    expect(decodeInboxNode(name, encodeTaskStatus(status), 1)).toEqual({ kind: "outcome", status });
    const node = decodeInboxNode(name, batch, 1);
    expect(node.kind === "invalid" && node.error.message).toMatch(/written back with no data/);
  });

  test.each([
    ["a name that is not base64url after ~", "t1~not*base64", /name: .*not base64url/],
    ["a name whose task is over 384 bytes", `t1~${"A".repeat(516)}`, /over 384 bytes/],
    [
      "a name whose task has another id",
      `t2~${batch.toString("base64url")}`,
      /tasks\[0\]\.id: expected "t2"/,
    ],
    ["a name that carries no batch", `t1~${Buffer.from("[1]").toString("base64url")}`, /object/],
    ["a name that carries text that is not JSON", `t1~${Buffer.from("{").toString("base64url")}`, /JSON/],
  ])("%s is invalid at any version, and says why", (_what, badName, why) => {
    for (const version of [0, 1]) {
      const node = decodeInboxNode(badName, Buffer.alloc(0), version);
      expect(node.kind).toBe("invalid");
      if (node.kind === "invalid") {
        expect(node.id).toBe(inboxNodeId(badName));
        expect(node.error.message).toMatch(why);
      }
    }
  });
});
