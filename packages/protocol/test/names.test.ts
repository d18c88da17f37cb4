import { afterEach, describe, expect, test, vi } from "vitest";
import {
  InvalidNameError,
  assertReplyAddress,
  assertSessionId,
  assertTaskId,
  assertWorkerName,
  formatSessionId,
  isValidLabel,
  isValidReplyAddress,
  isValidSessionId,
  isValidTaskId,
  isValidWorkerName,
  newBatchId,
  newTaskId,
  replyAddressProblem,
} from "../src/index.js";

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

describe("worker names", () => {
  test.each(["w", "worker-1", "a.b_c-d", "0", "x".repeat(64), "a..b"])(
    "%s is a valid worker name",
    (name) => {
      expect(isValidWorkerName(name)).toBe(true);
      expect(() => assertWorkerName(name)).not.toThrow();
    },
  );

  test.each([
    ["", "must not be empty"],
    [".", "must start with a letter or digit"],
    ["..", "must start with a letter or digit"],
    ["../x", "must start with a letter or digit"],
    ["-w", "must start with a letter or digit"],
    ["a/b", 'contains "/"'],
    ["a@b", 'contains "@"'],
    ["a\0b", 'contains "\\u0000"'],
    ["a b", 'contains " "'],
    ["ä", "must start with a letter or digit"],
    ["wä", 'contains "ä"'],
    ["x".repeat(65), "is 65 characters long; at most 64 are allowed"],
  ])("%j is refused as a worker name: %s", (name, problem) => {
    expect(isValidWorkerName(name)).toBe(false);
    expect(() => assertWorkerName(name)).toThrow(InvalidNameError);
    expect(() => assertWorkerName(name)).toThrow(problem);
  });

  test("a non-string is not a worker name, and the error says what it got", () => {
    expect(isValidWorkerName(7)).toBe(false);
    expect(() => assertWorkerName(undefined)).toThrow("invalid worker name nothing: expected a string");
  });

  test("InvalidNameError carries the kind and the value", () => {
    try {
      assertWorkerName("a/b");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidNameError);
      expect((error as InvalidNameError).kind).toBe("worker name");
      expect((error as InvalidNameError).value).toBe("a/b");
      expect((error as InvalidNameError).name).toBe("InvalidNameError");
    }
  });

  test("a 1 MB name is refused with a short message", () => {
    const name = "a".repeat(1 << 20);
    expect(isValidWorkerName(name)).toBe(false);
    expect(() => assertWorkerName(name)).toThrow(/1048576 characters long/);
    try {
      assertWorkerName(name);
    } catch (error) {
      expect((error as Error).message.length).toBeLessThan(200);
    }
  });
});

describe("task ids", () => {
  test.each(["t", "task-1", "a.b", "A_b-c.d", "x".repeat(128)])("%s is a valid task id", (id) => {
    expect(isValidTaskId(id)).toBe(true);
    expect(() => assertTaskId(id)).not.toThrow();
  });

  test.each([
    ["", "must not be empty"],
    ["a..b", 'must not contain ".."'],
    ["../x", "must start with a letter or digit"],
    ["_x", "must start with a letter or digit"],
    ["a/b", 'contains "/"'],
    ["a:b", 'contains ":"'],
    ["a\0", 'contains "\\u0000"'],
    ["x".repeat(129), "at most 128"],
  ])("%j is refused as a task id: %s", (id, problem) => {
    expect(isValidTaskId(id)).toBe(false);
    expect(() => assertTaskId(id)).toThrow(problem);
  });
});

describe("labels and session ids", () => {
  test("labels allow a colon but not a slash, and at most 64 characters", () => {
    expect(isValidLabel("gpu")).toBe(true);
    expect(isValidLabel("zone:eu-1")).toBe(true);
    expect(isValidLabel("a/b")).toBe(false);
    expect(isValidLabel(":a")).toBe(false);
    expect(isValidLabel("x".repeat(65))).toBe(false);
  });

  test("a session id is lower-case hex without leading zeros, as ZooKeeper prints it", () => {
    expect(isValidSessionId("100000a2b3c0004")).toBe(true);
    expect(isValidSessionId("1")).toBe(true);
    expect(isValidSessionId("0")).toBe(false);
    expect(isValidSessionId("0100000a2b3c0004")).toBe(false);
    expect(isValidSessionId("0x1")).toBe(false);
    expect(isValidSessionId("ABC")).toBe(false);
    expect(isValidSessionId("1".repeat(17))).toBe(false);
    expect(() => assertSessionId("ABC")).toThrow(InvalidNameError);
  });

  test("formatSessionId turns any spelling of a session id into the protocol's form", () => {
    expect(formatSessionId("0x0100000A2B3C0004")).toBe("100000a2b3c0004");
    expect(formatSessionId("00ff")).toBe("ff");
    expect(formatSessionId(72057594037927940n)).toBe("100000000000004");
    expect(formatSessionId(255)).toBe("ff");
    expect(formatSessionId("ffffffffffffffff")).toBe("ffffffffffffffff");
    expect(() => formatSessionId("0")).toThrow(InvalidNameError);
    expect(() => formatSessionId("xyz")).toThrow(InvalidNameError);
    expect(() => formatSessionId(2 ** 60)).toThrow(InvalidNameError);
    expect(() => formatSessionId("1ffffffffffffffff")).toThrow(InvalidNameError);
  });
});

describe("newTaskId", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  test("ids are 26 Crockford base32 characters and valid task ids", () => {
    for (let i = 0; i < 1000; i++) {
      const id = newTaskId();
      expect(id).toMatch(ULID);
      expect(isValidTaskId(id)).toBe(true);
    }
    expect(newBatchId()).toMatch(ULID);
  });

  test("100k ids made in a row are unique and strictly increasing, also within one millisecond", () => {
    const ids: string[] = [];
    for (let i = 0; i < 100_000; i++) ids.push(newTaskId());
    for (let i = 1; i < ids.length; i++) {
      if (!(ids[i - 1]! < ids[i]!)) expect.fail(`${ids[i - 1]} is not before ${ids[i]}`);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  test("ids keep increasing when the clock is frozen or steps back", () => {
    const now = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(now + 10_000);
    const a = newTaskId();
    const b = newTaskId();
    clock.mockReturnValue(now + 5_000);
    const c = newTaskId();
    expect(a < b).toBe(true);
    expect(b < c).toBe(true);
    expect(c.slice(0, 10)).toBe(a.slice(0, 10));
  });

  test("the first 10 characters encode the millisecond time as a ULID does", async () => {
    vi.resetModules();
    const fresh = await import("../src/names.js");
    vi.spyOn(Date, "now").mockReturnValue(1469918176385);
    expect(fresh.newTaskId().slice(0, 10)).toBe("01ARYZ6S41");
  });

  test("ids made in a later millisecond sort after earlier ones", async () => {
    vi.resetModules();
    const fresh = await import("../src/names.js");
    const clock = vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_000);
    const early = fresh.newTaskId();
    clock.mockReturnValue(1_700_000_000_001);
    const late = fresh.newTaskId();
    expect(early < late).toBe(true);
    expect(early.slice(0, 10)).not.toBe(late.slice(0, 10));
  });
});

describe("reply addresses", () => {
  test.each(["a", "0", "c-1_b", "x".repeat(64), "5d2b0c1e-8f1a-4a3b-9c2d-0e1f2a3b4c5d"])(
    "%s is a reply address",
    (address) => {
      expect(isValidReplyAddress(address)).toBe(true);
      expect(replyAddressProblem(address)).toBeUndefined();
    },
  );

  test.each([
    ["", "must not be empty"],
    [".hidden", "must start with a letter or digit"],
    ["_c_0", "must start with a letter or digit"],
    ["a.b", 'contains "."; only A-Z a-z 0-9 "_" "-" are allowed'],
    ["a/b", 'contains "/"'],
    ["a b", 'contains " "'],
    ["x".repeat(65), "is 65 characters long; at most 64 are allowed"],
  ])("%j is refused as a reply address: %s", (address, problem) => {
    expect(isValidReplyAddress(address)).toBe(false);
    expect(replyAddressProblem(address)).toContain(problem);
    expect(() => assertReplyAddress(address)).toThrow(InvalidNameError);
  });

  test("a reply address that is no string says so", () => {
    expect(replyAddressProblem(42)).toBe("expected a string");
  });
});
