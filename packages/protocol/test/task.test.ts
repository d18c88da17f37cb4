import { describe, expect, test } from "vitest";
import {
  DEFAULT_MAX_ATTEMPTS,
  MAX_TASK_BYTES,
  ProtocolError,
  type TaskSpec,
  decodeTask,
  encodeTask,
  taskLabels,
  taskMaxAttempts,
  taskPriority,
} from "../src/index.js";

/** The error message for `value`, failing the test if it decodes. */
function problemOf(value: unknown): string {
  const result = decodeTask(value);
  if (result.ok) return expect.fail(`decoded ${JSON.stringify(value).slice(0, 100)}`);
  expect(result.error).toBeInstanceOf(ProtocolError);
  return result.error.message;
}

function nest(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

describe("a valid task", () => {
  test("a shell command with every optional field decodes unchanged", () => {
    const task: TaskSpec = {
      id: "t-1",
      cmd: "echo hi",
      args: ["a", ""],
      env: { FOO: "bar", _x1: "" },
      cwd: "sub/dir",
      timeoutMs: 1000,
      maxAttempts: 5,
      labels: ["gpu", "zone:eu"],
      priority: -1000,
      meta: { owner: "me", nested: [1, { a: null }] },
    };
    expect(decodeTask(task)).toEqual({ ok: true, value: task });
  });

  test("a handler task may carry any JSON input, including null", () => {
    for (const input of [null, 0, "x", [1, 2], { deep: { er: true } }]) {
      expect(decodeTask({ id: "h", handler: "resize", input })).toEqual({
        ok: true,
        value: { id: "h", handler: "resize", input },
      });
    }
  });

  test("limits are inclusive: 7 days, 100 attempts, priority ±1000, 32 labels", () => {
    const result = decodeTask({
      id: "t",
      cmd: "x",
      timeoutMs: 7 * 24 * 3600 * 1000,
      maxAttempts: 100,
      priority: 1000,
      labels: Array.from({ length: 32 }, (_, i) => `l${i}`),
    });
    expect(result.ok).toBe(true);
  });

  test("an absolute cwd is allowed, and so is a relative one that stays inside", () => {
    expect(decodeTask({ id: "t", cmd: "x", cwd: "/tmp/../etc" }).ok).toBe(true);
    expect(decodeTask({ id: "t", cmd: "x", cwd: "a/b..c/./d" }).ok).toBe(true);
  });

  test("defaults are applied by helpers, not written on the wire", () => {
    const result = decodeTask({ id: "t", cmd: "x" });
    expect(result).toEqual({ ok: true, value: { id: "t", cmd: "x" } });
    if (!result.ok) return;
    expect(taskMaxAttempts(result.value)).toBe(DEFAULT_MAX_ATTEMPTS);
    expect(taskMaxAttempts({ maxAttempts: 1 })).toBe(1);
    expect(taskPriority(result.value)).toBe(0);
    expect(taskLabels(result.value)).toEqual([]);
  });

  test("unknown keys inside meta and input are kept", () => {
    const result = decodeTask({ id: "t", handler: "h", input: { anything: 1 }, meta: { whatever: [true] } });
    expect(result).toEqual({
      ok: true,
      value: { id: "t", handler: "h", input: { anything: 1 }, meta: { whatever: [true] } },
    });
  });
});

describe("the task rules", () => {
  test("a negative timeout names the field, the rule and the value", () => {
    expect(problemOf({ id: "t", cmd: "x", timeoutMs: -5 })).toBe(
      "timeoutMs: expected a positive integer of milliseconds ≤ 604800000 (7 days), got -5",
    );
  });

  test.each([
    [{ id: "t", cmd: "x", timeoutMs: 0 }, "timeoutMs: expected a positive integer"],
    [{ id: "t", cmd: "x", timeoutMs: 1.5 }, "timeoutMs: expected a positive integer"],
    [{ id: "t", cmd: "x", timeoutMs: 604800001 }, "got 604800001"],
    [
      { id: "t", cmd: "x", timeoutMs: "10" },
      'timeoutMs: expected a positive integer of milliseconds ≤ 604800000 (7 days), got "10"',
    ],
    [{ id: "t", cmd: "x", maxAttempts: 0 }, "maxAttempts: expected an integer 1..100, got 0"],
    [{ id: "t", cmd: "x", maxAttempts: 101 }, "maxAttempts: expected an integer 1..100, got 101"],
    [{ id: "t", cmd: "x", priority: 1001 }, "priority: expected an integer -1000..1000, got 1001"],
    [{ id: "t", cmd: "x", priority: 0.5 }, "priority: expected an integer -1000..1000, got 0.5"],
    [{ id: "t", cmd: "x", priority: null }, "priority: expected an integer -1000..1000, got null"],
  ])("%j is refused: %s", (task, message) => {
    expect(problemOf(task)).toContain(message);
  });

  test("exactly one of cmd and handler", () => {
    expect(problemOf({ id: "t" })).toBe('expected exactly one of "cmd" or "handler", got neither');
    expect(problemOf({ id: "t", cmd: "x", handler: "h" })).toBe(
      'expected exactly one of "cmd" or "handler", got both',
    );
  });

  test("args only with cmd, input only with handler", () => {
    expect(problemOf({ id: "t", handler: "h", args: [] })).toBe('args: allowed only with "cmd"');
    expect(problemOf({ id: "t", cmd: "x", input: null })).toBe('input: allowed only with "handler"');
  });

  test("cmd, args and env refuse NUL", () => {
    expect(problemOf({ id: "t", cmd: "a\0b" })).toBe("cmd: must not contain NUL (\\u0000)");
    expect(problemOf({ id: "t", cmd: "x", args: ["ok", "a\0"] })).toBe(
      "args[1]: must not contain NUL (\\u0000)",
    );
    expect(problemOf({ id: "t", cmd: "x", env: { A: "\0" } })).toBe("env.A: must not contain NUL (\\u0000)");
  });

  test("cmd and handler must not be empty", () => {
    expect(problemOf({ id: "t", cmd: "" })).toBe("cmd: must not be empty");
    expect(problemOf({ id: "t", handler: "" })).toBe("handler: must not be empty");
  });

  test("env names must look like shell variables and values must be strings", () => {
    expect(problemOf({ id: "t", cmd: "x", env: { "1A": "x" } })).toContain(
      'env["1A"]: invalid environment variable name "1A"',
    );
    expect(problemOf({ id: "t", cmd: "x", env: { "A=B": "x" } })).toContain('env["A=B"]');
    expect(problemOf({ id: "t", cmd: "x", env: { A: 1 } })).toBe("env.A: expected a string, got 1");
    expect(problemOf({ id: "t", cmd: "x", env: ["A"] })).toContain("env: expected an object");
  });

  test("labels follow their rule and there are at most 32", () => {
    expect(problemOf({ id: "t", cmd: "x", labels: ["ok", "a/b"] })).toContain(
      'labels[1]: invalid label "a/b"',
    );
    expect(problemOf({ id: "t", cmd: "x", labels: Array.from({ length: 33 }, (_, i) => `l${i}`) })).toContain(
      "labels: expected at most 32 labels, got 33",
    );
    expect(problemOf({ id: "t", cmd: "x", labels: "gpu" })).toContain(
      'labels: expected an array of at most 32 labels, got "gpu"',
    );
  });

  test("a relative cwd may not climb out of the task's folder", () => {
    expect(problemOf({ id: "t", cmd: "x", cwd: "../x" })).toContain("cwd: a relative cwd must stay inside");
    expect(problemOf({ id: "t", cmd: "x", cwd: "a/../../b" })).toContain("cwd:");
  });

  test("a bad id is named in the message", () => {
    expect(problemOf({ id: "../x", cmd: "x" })).toBe(
      'id: invalid task id "../x": must start with a letter or digit (A-Z a-z 0-9)',
    );
    expect(problemOf({ id: "a/b", cmd: "x" })).toContain('contains "/"');
    expect(problemOf({ cmd: "x" })).toBe("id: required: expected a task id");
    expect(problemOf({ id: 5, cmd: "x" })).toBe("id: expected a task id, got 5");
  });

  test("unknown keys are refused and the message lists the known ones", () => {
    const message = problemOf({ id: "t", cmd: "x", command: "y" });
    expect(message).toMatch(/^command: unknown key \(a task may have: id, cmd, args, handler, input/);
  });

  test("a task that is not an object says what it is", () => {
    expect(problemOf([])).toBe("expected a task (a JSON object), got an array");
    expect(problemOf(null)).toBe("expected a task (a JSON object), got null");
    expect(problemOf("t")).toBe('expected a task (a JSON object), got "t"');
  });

  test("meta must be a plain JSON object", () => {
    expect(problemOf({ id: "t", cmd: "x", meta: [] })).toBe("meta: expected an object, got an array");
    expect(problemOf({ id: "t", cmd: "x", meta: { when: new Date(0) } })).toContain(
      "meta: contains an object that is not a plain object",
    );
    expect(problemOf({ id: "t", cmd: "x", meta: { n: Number.NaN } })).toBe(
      "meta: contains NaN, which JSON cannot hold",
    );
  });

  test("input and meta may nest 60 levels but not 61", () => {
    expect(decodeTask({ id: "t", handler: "h", input: nest(60) }).ok).toBe(true);
    expect(problemOf({ id: "t", handler: "h", input: nest(61) })).toBe("input: nests deeper than 60 levels");
    expect(decodeTask({ id: "t", cmd: "x", meta: nest(60) }).ok).toBe(true);
    expect(problemOf({ id: "t", cmd: "x", meta: nest(61) })).toBe("meta: nests deeper than 60 levels");
  });

  test("a cyclic or 100k-deep input is refused without crashing", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(problemOf({ id: "t", handler: "h", input: cyclic })).toBe("input: nests deeper than 60 levels");
    expect(problemOf({ id: "t", handler: "h", input: nest(100_000) })).toBe(
      "input: nests deeper than 60 levels",
    );
  });

  test("values JSON cannot hold are refused in input", () => {
    expect(problemOf({ id: "t", handler: "h", input: [undefined] })).toContain("undefined");
    expect(problemOf({ id: "t", handler: "h", input: { f: () => 1 } })).toContain("a function");
    expect(problemOf({ id: "t", handler: "h", input: 10n })).toContain("a bigint");
    expect(problemOf({ id: "t", handler: "h", input: Number.POSITIVE_INFINITY })).toContain("Infinity");
  });

  test("a task of exactly MAX_TASK_BYTES is allowed and one byte more is not", () => {
    const base = JSON.stringify({ id: "t", cmd: "" }).length;
    const fits = { id: "t", cmd: "x".repeat(MAX_TASK_BYTES - base) };
    expect(encodeTask(fits).length).toBe(MAX_TASK_BYTES);
    expect(decodeTask(fits).ok).toBe(true);
    expect(problemOf({ ...fits, cmd: `${fits.cmd}x` })).toBe(
      `encodes to ${MAX_TASK_BYTES + 1} bytes of JSON; at most ${MAX_TASK_BYTES} are allowed`,
    );
  });

  test("the size limit counts UTF-8 bytes, not characters", () => {
    const result = decodeTask({ id: "t", cmd: "é".repeat(MAX_TASK_BYTES / 2) });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(/^encodes to \d+ bytes of JSON/);
  });

  test("a 1 MB command is refused with a short message", () => {
    const message = problemOf({ id: "t", cmd: "x".repeat(1 << 20) });
    expect(message).toContain("at most 65536 are allowed");
    expect(message.length).toBeLessThan(200);
  });

  test("several problems are all listed in issues, the first three in the message", () => {
    const result = decodeTask({ id: "t", cmd: 1, timeoutMs: -1, maxAttempts: 0, priority: 5000 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.issues.map((i) => i.path)).toEqual(["cmd", "timeoutMs", "maxAttempts", "priority"]);
    expect(result.error.path).toBe("cmd");
    expect(result.error.problem).toBe("expected a non-empty command string, got 1");
    expect(result.error.message).toMatch(/; and 1 more problem$/);
  });

  test("encodeTask throws the same ProtocolError that decoding reports", () => {
    expect(() => encodeTask({ id: "t", cmd: "x", timeoutMs: -5 })).toThrow(
      "timeoutMs: expected a positive integer of milliseconds",
    );
    expect(() => encodeTask({ id: "t" } as TaskSpec)).toThrow(ProtocolError);
  });
});
