import { describe, expect, it } from "vitest";
import { decodeTaskBytes, parseTaskText, TaskTextError } from "../src/task-text.js";

function located(text: string) {
  return parseTaskText(text, "tasks.ndjson").map(({ value, line }) => ({ value, line }));
}

function errorOf(text: string): TaskTextError {
  try {
    parseTaskText(text, "tasks.ndjson");
  } catch (err) {
    if (err instanceof TaskTextError) return err;
    throw err;
  }
  throw new Error("expected a TaskTextError");
}

describe("reading tasks from text", () => {
  it("reads NDJSON one task per line, skipping blank lines, and keeps each task's line", () => {
    expect(located('{"cmd":"a"}\n\n  \n{"cmd":"b"}\r\n{"cmd":"c"}\n')).toEqual([
      { value: { cmd: "a" }, line: 1 },
      { value: { cmd: "b" }, line: 4 },
      { value: { cmd: "c" }, line: 5 },
    ]);
  });

  it("reads one pretty-printed object as one task", () => {
    expect(located('\n{\n  "cmd": "ps aux",\n  "labels": ["x"]\n}\n')).toEqual([
      { value: { cmd: "ps aux", labels: ["x"] }, line: 2 },
    ]);
  });

  it("reads a JSON array as its elements, each at the line it starts on", () => {
    const text = '[\n  {"cmd": "a"},\n  {\n    "cmd": "b, with ] and \\" inside"\n  }\n]\n';
    expect(located(text)).toEqual([
      { value: { cmd: "a" }, line: 2 },
      { value: { cmd: 'b, with ] and " inside' }, line: 3 },
    ]);
  });

  it("names the line of an NDJSON line that is not JSON", () => {
    const err = errorOf('{"cmd":"a"}\n{"cmd":"b"}\n{"cmd": nope}\n{"cmd":"d"}\n');
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/^tasks\.ndjson:3: invalid JSON/);
  });

  it("names the line of an unterminated object", () => {
    expect(errorOf('{"cmd":"a"}\n\n{"cmd":"b"\n{"cmd":"c"}\n').line).toBe(3);
  });

  it("names the line of an array element that is not JSON", () => {
    expect(errorOf('[\n{"cmd":"a"},\n{"cmd":x}\n]').line).toBe(3);
  });

  it("refuses an array with a trailing comma at the array's line", () => {
    expect(errorOf('\n[{"cmd":"a"},]').line).toBe(2);
  });

  it("refuses values that are not objects, naming their line", () => {
    const err = errorOf('{"cmd":"a"}\n42\n');
    expect(err.line).toBe(2);
    expect(err.reason).toBe("expected a task object, got a number");
    expect(errorOf('[{"cmd":"a"},\n"b"]').message).toBe(
      "tasks.ndjson:2: expected a task object, got a string",
    );
  });

  it("finds no tasks in blank text", () => {
    expect(parseTaskText(" \n\n", "stdin")).toEqual([]);
  });
});

describe("decoding task text", () => {
  const decodeError = (bytes: number[]) => {
    try {
      decodeTaskBytes(Uint8Array.from(bytes), "tasks.ndjson");
    } catch (err) {
      if (err instanceof TaskTextError) return err.message;
      throw err;
    }
    throw new Error("expected a TaskTextError");
  };

  it("keeps every UTF-8 character, four-byte ones too, and drops a byte order mark", () => {
    const text = '{"cmd":"echo é € 😀"}\n';
    expect(decodeTaskBytes(Buffer.from(`\uFEFF${text}`), "stdin")).toBe(text);
  });

  it("refuses a stray byte, an encoded surrogate and an overlong form at their offset and line", () => {
    expect(decodeError([0x61, 0x0a, 0x62, 0xff])).toBe("tasks.ndjson:2: invalid UTF-8 at byte offset 3");
    expect(decodeError([0x0a, 0x0a, 0xed, 0xa0, 0x80])).toBe(
      "tasks.ndjson:3: invalid UTF-8 at byte offset 3",
    );
    expect(decodeError([0xc0, 0xaf])).toBe("tasks.ndjson:1: invalid UTF-8 at byte offset 0");
  });
});
