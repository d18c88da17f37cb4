import { describe, expect, test } from "vitest";
import { FAST_CHECKS } from "../src/fast.js";
import {
  AssignmentSchema,
  ResultBatchSchema,
  SubmitBatchEnvelopeSchema,
  SubmitBatchSchema,
  TaskSpecSchema,
  TaskStatusSchema,
  WorkerReportSchema,
} from "../src/schemas.js";

const task = {
  id: "t-1",
  handler: "noop",
  input: { a: [1, "x", null] },
  env: { A_1: "v" },
  cwd: "sub/dir",
  timeoutMs: 1000,
  maxAttempts: 3,
  labels: ["gpu", "zone:a"],
  priority: -5,
  meta: { who: "me" },
};
const cmdTask = { id: "t-2", cmd: "echo", args: ["a", ""], cwd: "/abs/../x" };

const samples: Record<string, { schema: unknown; valid: Record<string, unknown> }> = {
  task: { schema: TaskSpecSchema, valid: task },
  batch: {
    schema: SubmitBatchSchema,
    valid: {
      v: 1,
      batchId: "b1",
      submittedAt: 5,
      submitter: "me@host",
      tasks: [task, cmdTask],
      requeued: { "t-1": { attemptsUsed: 1, submittedAt: 3 } },
    },
  },
  envelope: {
    schema: SubmitBatchEnvelopeSchema,
    valid: { v: 1, batchId: "b1", submittedAt: 5, tasks: [1, "junk"] },
  },
  assignment: {
    schema: AssignmentSchema,
    valid: {
      v: 1,
      epoch: 7,
      worker: "w1",
      session: "1a2b",
      tasks: [
        { id: "t-1", attempt: 1, assignedAt: 9, submittedAt: 5, spec: task },
        { id: "t-2", attempt: 2, assignedAt: 9, submittedAt: 5, spec: cmdTask },
      ],
    },
  },
  report: {
    schema: WorkerReportSchema,
    valid: {
      v: 1,
      worker: "w1",
      session: "1a2b",
      updates: [
        { id: "t-1", attempt: 1, state: "running", at: 10, startedAt: 10 },
        {
          id: "t-2",
          attempt: 2,
          state: "failed",
          at: 11,
          finishedAt: 11,
          exitCode: -1,
          signal: "SIGKILL",
          error: "boom\0",
          outputDir: "w1/t-2",
          stdoutTail: "out",
          stderrTail: "",
          output: [1, { b: false }],
        },
      ],
    },
  },
  results: {
    schema: ResultBatchSchema,
    valid: {
      v: 1,
      epoch: 3,
      results: [
        { v: 1, id: "t-1", state: "succeeded", attempt: 1, worker: "w1", output: 5, meta: { k: 1 } },
        { v: 1, id: "q0000000012.3", state: "rejected", attempt: 0, reason: "bad", submittedAt: 4 },
      ],
    },
  },
  status: {
    schema: TaskStatusSchema,
    valid: { v: 1, id: "t-1", state: "queued", attempt: 0, assignedAt: 1, outputDir: "a" },
  },
};

/** Values that break some rule somewhere: each is put in place of every field in turn. */
const junk: unknown[] = [
  undefined,
  null,
  -1,
  0,
  1.5,
  101,
  2 ** 31,
  Number.NaN,
  "",
  "x",
  "..",
  "/abs",
  "a/../b",
  "bad id",
  "a\0b",
  "é".repeat(3000),
  "x".repeat(70_000),
  [],
  ["x y"],
  {},
  { "1X": "v" },
  { A: 1 },
  Array.from({ length: 40 }, (_, i) => `l${i}`),
  "SIGKILL",
  "succeeded",
  "running",
];

/** Every value reachable by replacing one field (at any depth) of `value` with each junk value. */
function* mutations(value: unknown): Generator<unknown> {
  if (typeof value !== "object" || value === null) return;
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  for (const [key, child] of entries) {
    const put = (replacement: unknown): unknown => {
      if (Array.isArray(value)) return value.map((v, i) => (i === key ? replacement : v));
      return { ...value, [key]: replacement };
    };
    for (const j of junk) yield put(j);
    for (const deeper of mutations(child)) yield put(deeper);
    if (!Array.isArray(value)) {
      const { [key as string]: _dropped, ...without } = value as Record<string, unknown>;
      yield without;
    }
  }
  if (!Array.isArray(value)) yield { ...value, extra: 1 };
}

describe("fast acceptance checks", () => {
  for (const [name, { schema, valid }] of Object.entries(samples)) {
    const check = FAST_CHECKS.get(schema as never);
    const zod = schema as { safeParse(v: unknown): { success: boolean } };

    test(`a valid ${name} passes without zod`, () => {
      expect(check).toBeDefined();
      expect(zod.safeParse(valid).success).toBe(true);
      expect(check?.(valid)).toBe(true);
    });

    test(`a ${name} the fast check accepts is one the schema accepts, over every one-field mutation`, () => {
      let accepted = 0;
      let total = 0;
      for (const mutated of mutations(valid)) {
        total++;
        if (check?.(mutated)) {
          accepted++;
          expect(zod.safeParse(mutated).success, JSON.stringify(mutated)).toBe(true);
        }
      }
      expect(total).toBeGreaterThan(100);
      expect(accepted).toBeLessThan(total);
    });
  }
});

describe("a task's size", () => {
  const check = FAST_CHECKS.get(TaskSpecSchema as never);
  // MAX_TASK_BYTES is 64 KiB: the input is sized so that the whole task takes it, or one byte more.
  const sized = (inputChars: number, char = "x") => ({
    id: "t-1",
    handler: "h",
    input: char.repeat(inputChars),
  });

  test("is measured exactly where the bound cannot tell: 64 KiB is accepted, one byte more is not", () => {
    const overhead = JSON.stringify(sized(0)).length;
    const atLimit = sized(64 * 1024 - overhead);
    expect(JSON.stringify(atLimit).length).toBe(64 * 1024);
    expect(check?.(atLimit)).toBe(true);
    expect(TaskSpecSchema.safeParse(atLimit).success).toBe(true);
    const over = sized(64 * 1024 - overhead + 1);
    expect(check?.(over)).toBe(false);
    expect(TaskSpecSchema.safeParse(over).success).toBe(false);
  });

  test("counts escapes and multi-byte characters as encoded", () => {
    const overhead = JSON.stringify(sized(0)).length;
    // "\u0001" is encoded as 6 bytes, "€" as 3.
    const escapes = sized(Math.floor((64 * 1024 - overhead) / 6) + 1, "\u0001");
    expect(check?.(escapes)).toBe(false);
    expect(check?.(sized(Math.floor((64 * 1024 - overhead) / 6), "\u0001"))).toBe(true);
    expect(check?.(sized(Math.floor((64 * 1024 - overhead) / 3) + 1, "€"))).toBe(false);
    expect(check?.(sized(Math.floor((64 * 1024 - overhead) / 3), "€"))).toBe(true);
  });
});
