import { describe, expect, test } from "vitest";
import {
  type Assignment,
  MAX_NODE_BYTES,
  type MasterInfo,
  ProtocolError,
  type Result,
  type ResultBatch,
  type SubmitBatch,
  type TaskStatus,
  type WorkerRegistration,
  type WorkerReport,
  decodeAssignment,
  decodeJson,
  ACCEPTS_REPLY_TO,
  decodeMasterInfo,
  decodeResultBatch,
  decodeSubmitBatch,
  decodeTaskStatus,
  decodeWorkerRegistration,
  decodeWorkerReport,
  encodeAssignment,
  encodeMasterInfo,
  masterAcceptsReplyTo,
  encodeResultBatch,
  encodeSubmitBatch,
  encodeTaskStatus,
  encodeWorkerRegistration,
  encodeWorkerReport,
} from "../src/index.js";

const SESSION = "100000a2b3c0004";

const batch: SubmitBatch = {
  v: 1,
  batchId: "01JABCDEFGHJKMNPQRSTVWXYZ0",
  submittedAt: 1_700_000_000_000,
  submitter: "alice@host",
  tasks: [
    { id: "a", cmd: "echo a" },
    { id: "b", handler: "h", input: { n: 1 } },
  ],
};
const master: MasterInfo = { v: 1, name: "m1", host: "host-1", pid: 42, startedAt: 1, httpPort: 8080 };
const registration: WorkerRegistration = {
  v: 1,
  name: "w1",
  host: "host-1",
  pid: 43,
  capacity: 4,
  labels: ["gpu"],
  version: "0.1.0",
  startedAt: 2,
  session: SESSION,
};
const assignment: Assignment = {
  v: 1,
  epoch: 7,
  worker: "w1",
  session: SESSION,
  tasks: [{ id: "a", attempt: 1, assignedAt: 3, submittedAt: 1, spec: { id: "a", cmd: "echo a" } }],
};
const report: WorkerReport = {
  v: 1,
  worker: "w1",
  session: SESSION,
  updates: [
    { id: "a", attempt: 1, state: "running", at: 4, startedAt: 4 },
    {
      id: "a",
      attempt: 1,
      state: "succeeded",
      at: 5,
      startedAt: 4,
      finishedAt: 5,
      exitCode: 0,
      outputDir: "w1/a",
      stdoutTail: "a\n",
      stderrTail: "",
    },
    { id: "b", attempt: 2, state: "failed", at: 6, signal: "SIGKILL", error: "killed", output: { x: [1] } },
    { id: "c", attempt: 1, state: "returned", at: 7 },
  ],
};
const status: TaskStatus = {
  v: 1,
  id: "a",
  state: "succeeded",
  attempt: 1,
  worker: "w1",
  submittedAt: 1,
  assignedAt: 3,
  startedAt: 4,
  finishedAt: 5,
  exitCode: 0,
  outputDir: "w1/a",
  stdoutTail: "a\n",
  meta: { k: "v" },
};
const results: ResultBatch = {
  v: 1,
  epoch: 7,
  results: [status, { v: 1, id: "bad.0", state: "rejected", attempt: 0, reason: "id: invalid" }],
};

function errorOf<T>(result: Result<T>): ProtocolError {
  if (result.ok) return expect.fail("decoded");
  expect(result.error).toBeInstanceOf(ProtocolError);
  return result.error;
}

const codecs = [
  ["MasterInfo", master, encodeMasterInfo, decodeMasterInfo],
  ["WorkerRegistration", registration, encodeWorkerRegistration, decodeWorkerRegistration],
  ["Assignment", assignment, encodeAssignment, decodeAssignment],
  ["WorkerReport", report, encodeWorkerReport, decodeWorkerReport],
  ["TaskStatus", status, encodeTaskStatus, decodeTaskStatus],
  ["ResultBatch", results, encodeResultBatch, decodeResultBatch],
] as const;

describe.each(codecs)("%s", (_name, value, encode, decode) => {
  const enc = encode as (v: unknown) => Buffer;
  const dec = decode as (d: Uint8Array | string) => Result<unknown>;

  test("encodes to compact JSON that decodes to the same value", () => {
    const bytes = enc(value);
    expect(bytes).toBeInstanceOf(Buffer);
    expect(bytes.toString("utf8")).toBe(JSON.stringify(value));
    expect(dec(bytes)).toEqual({ ok: true, value });
    expect(dec(bytes.toString("utf8"))).toEqual({ ok: true, value });
  });

  test("an unknown schema version is refused before anything else", () => {
    expect(errorOf(dec(JSON.stringify({ ...value, v: 2 }))).message).toBe(
      "v: unsupported schema version 2; this reader knows 1",
    );
    expect(errorOf(dec(JSON.stringify({ v: "1" }))).message).toBe(
      'v: unsupported schema version "1"; this reader knows 1',
    );
    const { v: _v, ...unversioned } = value;
    expect(errorOf(dec(JSON.stringify(unversioned))).message).toBe("v: required: the schema version (1)");
  });

  test("a payload that is not a JSON object is refused", () => {
    for (const text of ["[]", "null", "1", '"x"', "true"]) {
      expect(errorOf(dec(text)).message).toMatch(/^expected a JSON object, got /);
    }
    expect(errorOf(dec("")).message).toMatch(/^not valid JSON/);
    expect(errorOf(dec("{")).message).toMatch(/^not valid JSON/);
  });

  test("an unknown key is refused", () => {
    expect(errorOf(dec(JSON.stringify({ ...value, extra: 1 }))).message).toMatch(/^extra: unknown key \(/);
  });

  test("encoding an invalid value throws ProtocolError", () => {
    expect(() => enc({ ...value, v: 2 })).toThrow(ProtocolError);
    expect(() => enc({ ...value, extra: true })).toThrow("extra: unknown key");
  });
});

describe("field rules of the other payloads", () => {
  test("a registration with a bad name, session or capacity says which", () => {
    const bad = (patch: object) =>
      errorOf(decodeWorkerRegistration(JSON.stringify({ ...registration, ...patch })));
    expect(bad({ name: "../w" }).message).toBe(
      'name: invalid worker name "../w": must start with a letter or digit (A-Z a-z 0-9)',
    );
    expect(bad({ name: "a/b" }).path).toBe("name");
    expect(bad({ session: "0x1" }).path).toBe("session");
    expect(bad({ capacity: 0 }).message).toBe("capacity: expected a capacity (an integer 1..100000), got 0");
    expect(bad({ pid: "1" }).message).toBe('pid: expected a process id (a positive integer), got "1"');
    expect(bad({ labels: ["a b"] }).path).toBe("labels[0]");
    expect(bad({ host: "" }).message).toBe("host: must not be empty");
    expect(bad({ startedAt: 1.5 }).message).toContain(
      "startedAt: expected a time in milliseconds since the epoch",
    );
    expect(bad({ startedAt: -1 }).path).toBe("startedAt");
  });

  test("a master info may list what its leader accepts, and refuses a list that is not one of names", () => {
    const accepting = { ...master, accepts: ["replyTo"] };
    const decoded = decodeMasterInfo(encodeMasterInfo(accepting));
    expect(decoded.ok && decoded.value).toEqual(accepting);
    expect(errorOf(decodeMasterInfo(JSON.stringify({ ...master, accepts: "replyTo" }))).path).toBe("accepts");
    expect(errorOf(decodeMasterInfo(JSON.stringify({ ...master, accepts: [""] }))).message).toBe(
      "accepts[0]: must not be empty",
    );
  });

  test("a master candidate takes replyTo only if its data is an object whose accepts lists it", () => {
    const data = (value: unknown) => Buffer.from(JSON.stringify(value));
    expect(masterAcceptsReplyTo(encodeMasterInfo({ ...master, accepts: [ACCEPTS_REPLY_TO] }))).toBe(true);
    expect(masterAcceptsReplyTo(data({ v: 2, accepts: ["x", "replyTo"], later: true }))).toBe(true);
    for (const value of [master, { accepts: "replyTo" }, { accepts: ["replyto"] }, ["replyTo"], null, 1]) {
      expect(masterAcceptsReplyTo(data(value)), JSON.stringify(value)).toBe(false);
    }
    expect(masterAcceptsReplyTo(Buffer.from("{accepts"))).toBe(false);
    expect(masterAcceptsReplyTo(Buffer.from([0xff, 0xfe]))).toBe(false);
  });

  test("a master info with a bad port says so", () => {
    expect(errorOf(decodeMasterInfo(JSON.stringify({ ...master, httpPort: 70000 }))).message).toBe(
      "httpPort: expected a TCP port (an integer 1..65535), got 70000",
    );
  });

  test("an assignment refuses a spec whose id differs and an id listed twice", () => {
    const first = assignment.tasks[0]!;
    const mismatch = { ...assignment, tasks: [{ ...first, spec: { ...first.spec, id: "b" } }] };
    expect(errorOf(decodeAssignment(JSON.stringify(mismatch))).message).toBe(
      'tasks[0].spec.id: must equal the assigned task\'s id "a", got "b"',
    );
    const twice = { ...assignment, tasks: [first, { ...first, attempt: 2 }] };
    expect(errorOf(decodeAssignment(JSON.stringify(twice))).message).toBe(
      "tasks[1].id: appears twice in one assignment",
    );
    const badSpec = { ...assignment, tasks: [{ ...first, spec: { id: "a", cmd: "x", timeoutMs: -5 } }] };
    expect(errorOf(decodeAssignment(JSON.stringify(badSpec))).message).toBe(
      "tasks[0].spec.timeoutMs: expected a positive integer of milliseconds ≤ 604800000 (7 days), got -5",
    );
    expect(
      errorOf(decodeAssignment(JSON.stringify({ ...assignment, tasks: [{ ...first, attempt: 0 }] }))).path,
    ).toBe("tasks[0].attempt");
  });

  test("a status update refuses an unknown state, an absolute outputDir and an oversized tail", () => {
    const update = report.updates[1]!;
    const bad = (patch: object) =>
      errorOf(decodeWorkerReport(JSON.stringify({ ...report, updates: [{ ...update, ...patch }] })));
    expect(bad({ state: "done" }).message).toBe(
      'updates[0].state: expected one of running, succeeded, failed, timed-out, cancelled, returned, got "done"',
    );
    expect(bad({ outputDir: "/abs" }).message).toBe("updates[0].outputDir: must be a relative path");
    expect(bad({ outputDir: "w/../../x" }).message).toBe(
      'updates[0].outputDir: must not contain a ".." segment',
    );
    expect(bad({ stdoutTail: "x".repeat(4097) }).message).toBe(
      "updates[0].stdoutTail: is 4097 bytes of UTF-8; at most 4096 are allowed",
    );
    expect(bad({ stderrTail: "é".repeat(2049) }).path).toBe("updates[0].stderrTail");
    expect(bad({ error: "x".repeat(1 << 20) }).message).toContain("at most 4096 are allowed");
    expect(bad({ signal: "kill" }).message).toBe(
      'updates[0].signal: expected a signal name such as SIGTERM, got "kill"',
    );
    expect(bad({ exitCode: 1.5 }).path).toBe("updates[0].exitCode");
    expect(bad({ output: "x".repeat(70_000) }).message).toMatch(
      /^updates\[0\]\.output: encodes to 70002 bytes/,
    );
  });

  test("a result batch holds only final states; a single status may hold any state", () => {
    const running = { ...status, state: "running" };
    expect(decodeTaskStatus(JSON.stringify(running)).ok).toBe(true);
    expect(errorOf(decodeResultBatch(JSON.stringify({ ...results, results: [running] }))).message).toBe(
      'results[0].state: expected a final state (succeeded, failed, timed-out, cancelled, rejected), got "running"',
    );
    expect(errorOf(decodeTaskStatus(JSON.stringify({ ...status, attempt: -1 }))).path).toBe("attempt");
  });

  test("encoding a payload over MAX_NODE_BYTES throws instead of writing it", () => {
    const tasks = Array.from({ length: 15 }, (_, i) => ({
      id: `t${i}`,
      attempt: 1,
      assignedAt: 1,
      submittedAt: 1,
      spec: { id: `t${i}`, cmd: "x".repeat(64_000) },
    }));
    expect(() => encodeAssignment({ ...assignment, tasks })).toThrow(
      new RegExp(`^encodes to \\d+ bytes; at most ${MAX_NODE_BYTES} fit in one node$`),
    );
  });
});

describe("hostile bytes", () => {
  test("bytes that are not UTF-8 are refused", () => {
    for (const bytes of [
      [0xff],
      [0x7b, 0xc3, 0x7d],
      [0xed, 0xa0, 0x80],
      [0x22, 0xf8, 0x88, 0x80, 0x80, 0x80, 0x22],
    ]) {
      const result = decodeJson(new Uint8Array(bytes));
      expect(errorOf(result).message).toBe("not valid UTF-8");
      expect(errorOf(decodeAssignment(new Uint8Array(bytes))).message).toBe("not valid UTF-8");
    }
  });

  test("100k-deep nesting is refused without parsing it", () => {
    for (const text of [
      "[".repeat(100_000),
      "[".repeat(100_000) + "]".repeat(100_000),
      '{"a":'.repeat(100_000),
    ]) {
      expect(errorOf(decodeJson(text)).message).toBe("nested deeper than 64 levels");
      const batch = decodeSubmitBatch(text);
      expect(batch.ok).toBe(false);
    }
  });

  test("nesting of 64 levels parses and 65 does not", () => {
    expect(decodeJson("[".repeat(64) + "]".repeat(64))).toMatchObject({ ok: true });
    expect(errorOf(decodeJson("[".repeat(65) + "]".repeat(65))).message).toBe("nested deeper than 64 levels");
  });

  test("brackets inside strings, including after escaped quotes, do not count as nesting", () => {
    const text = JSON.stringify({ s: "[".repeat(1000), t: '\\"[[[', u: "\\\\" });
    expect(decodeJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
  });

  test("a __proto__ key cannot reach an object's prototype", () => {
    const text =
      '{"v":1,"batchId":"b","submittedAt":1,"tasks":[{"id":"t","cmd":"x","env":{"__proto__":"x"},"meta":{"__proto__":{"polluted":true}}}]}';
    const decoded = decodeSubmitBatch(text);
    expect(decoded.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const bad = decodeSubmitBatch(text.replace('"cmd":"x"', '"cmd":"x","__proto__":{"a":1}'));
    if (!bad.ok) expect.fail(bad.error.message);
    expect(bad.tasks[0]).toMatchObject({ ok: false, id: "t" });
    if (!bad.tasks[0]!.ok) expect(bad.tasks[0]!.error.message).toMatch(/^tasks\[0\]\.__proto__: unknown key/);
  });

  test("a 1 MB string in any field is refused with a short message", () => {
    const big = "x".repeat(1 << 20);
    const cases: Array<[string, Result<unknown>]> = [
      ["worker", decodeWorkerReport(JSON.stringify({ ...report, worker: big }))],
      ["session", decodeAssignment(JSON.stringify({ ...assignment, session: big }))],
      ["host", decodeMasterInfo(JSON.stringify({ ...master, host: big }))],
      ["version", decodeWorkerRegistration(JSON.stringify({ ...registration, version: big }))],
      ["reason", decodeTaskStatus(JSON.stringify({ ...status, reason: big }))],
    ];
    for (const [path, result] of cases) {
      const error = errorOf(result);
      expect(error.path).toBe(path);
      expect(error.message.length).toBeLessThan(300);
    }
  });

  test("wrong types and missing fields name each field", () => {
    const error = errorOf(decodeWorkerReport(JSON.stringify({ v: 1, worker: 1, updates: {} })));
    expect(error.issues).toEqual([
      { path: "worker", problem: "expected a worker name, got 1" },
      { path: "session", problem: "required: expected a session id" },
      { path: "updates", problem: "expected an array of status updates, got an object" },
    ]);
  });
});

describe("decodeSubmitBatch", () => {
  test("a valid batch round-trips", () => {
    const decoded = decodeSubmitBatch(encodeSubmitBatch(batch));
    expect(decoded).toEqual({
      ok: true,
      batch: { v: 1, batchId: batch.batchId, submittedAt: batch.submittedAt, submitter: batch.submitter },
      tasks: [
        { ok: true, index: 0, task: batch.tasks[0] },
        { ok: true, index: 1, task: batch.tasks[1] },
      ],
    });
  });

  test("one bad task never sinks the rest, and each error is prefixed with its index", () => {
    const text = JSON.stringify({
      v: 1,
      batchId: "b1",
      submittedAt: 1,
      tasks: [
        { id: "ok-1", cmd: "x" },
        { id: "t3", cmd: "x", timeoutMs: -5 },
        { id: "../x", cmd: "x" },
        "not a task",
        { id: "ok-2", handler: "h" },
      ],
    });
    const decoded = decodeSubmitBatch(text);
    if (!decoded.ok) return expect.fail(decoded.error.message);
    expect(decoded.tasks.map((t) => t.ok)).toEqual([true, false, false, false, true]);
    const [, bad, badId, notTask] = decoded.tasks;
    expect(bad).toMatchObject({ ok: false, index: 1, id: "t3" });
    if (!bad!.ok) {
      expect(bad!.error.message).toBe(
        "tasks[1].timeoutMs: expected a positive integer of milliseconds ≤ 604800000 (7 days), got -5",
      );
    }
    expect(badId).toMatchObject({ ok: false, index: 2, id: undefined });
    if (!badId!.ok) expect(badId!.error.path).toBe("tasks[2].id");
    if (!notTask!.ok)
      expect(notTask!.error.message).toBe('tasks[3]: expected a task (a JSON object), got "not a task"');
  });

  test("a broken envelope fails the batch but still lists the ids it can", () => {
    const decoded = decodeSubmitBatch(
      JSON.stringify({ v: 1, batchId: "b1", submittedAt: 1.5, tasks: [{ id: "a" }, { id: "../b" }, 3] }),
    );
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.error.path).toBe("submittedAt");
    expect(decoded.ids).toEqual(["a", undefined, undefined]);
  });

  test("a batch of an unsupported version, or none, still lists the ids it can", () => {
    for (const v of [2, "1", undefined]) {
      const decoded = decodeSubmitBatch(
        JSON.stringify({
          v,
          batchId: "b1",
          submittedAt: 1,
          tasks: [{ id: "a" }, { id: "../b" }, { id: "c" }],
        }),
      );
      expect(decoded).toMatchObject({ ok: false, ids: ["a", undefined, "c"] });
      if (!decoded.ok) expect(decoded.error.path).toBe("v");
    }
  });

  test("a node that is no batch object lists no ids", () => {
    for (const value of [[{ id: "a" }], { v: 1, tasks: "a" }, "a", null]) {
      expect(decodeSubmitBatch(JSON.stringify(value))).toMatchObject({ ok: false, ids: [] });
    }
  });

  test("more than MAX_BATCH_TASKS tasks fails the batch", () => {
    const tasks = Array.from({ length: 1001 }, (_, i) => ({ id: `t${i}`, cmd: "x" }));
    const decoded = decodeSubmitBatch(JSON.stringify({ v: 1, batchId: "b", submittedAt: 1, tasks }));
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.error.message).toBe("tasks: expected at most 1000 tasks, got 1001");
    expect(decoded.ids).toHaveLength(1001);
  });

  test("a requeued map from the leader round-trips, and a bad one fails the batch naming the entry", () => {
    const requeued = { a: { attemptsUsed: 2, submittedAt: 5 } };
    const decoded = decodeSubmitBatch(encodeSubmitBatch({ ...batch, requeued }));
    expect(decoded).toMatchObject({ ok: true, batch: { requeued } });
    const bad = (value: unknown) => {
      const result = decodeSubmitBatch(JSON.stringify({ ...batch, requeued: value }));
      return result.ok ? expect.fail("decoded") : result.error.message;
    };
    expect(bad({ "../a": { attemptsUsed: 1, submittedAt: 1 } })).toBe(
      'requeued["../a"]: invalid task id: must start with a letter or digit (A-Z a-z 0-9)',
    );
    expect(bad({ a: { attemptsUsed: 101, submittedAt: 1 } })).toBe(
      "requeued.a.attemptsUsed: expected an integer 0..100, got 101",
    );
    expect(bad([])).toBe("requeued: expected an object mapping task ids to requeued tasks, got an array");
  });

  test("encodeSubmitBatch refuses a batch with an invalid task, naming it", () => {
    expect(() => encodeSubmitBatch({ ...batch, tasks: [...batch.tasks, { id: "c" }] })).toThrow(
      'tasks[2]: expected exactly one of "cmd" or "handler", got neither',
    );
  });
});
