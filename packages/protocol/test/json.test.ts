import { describe, expect, test } from "vitest";
import { decodeJson, encodedByteLength, headBytes, tailBytes, utf8ByteLength } from "../src/index.js";
import { surelyEncodesWithin } from "../src/json.js";
import { seededRandom } from "@zkgrid/testing";

const CHARS = ["a", "é", "€", "😀", "\n", "\0"];

function randomText(rand: () => number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += CHARS[Math.floor(rand() * CHARS.length)];
  return out;
}

describe("decodeJson", () => {
  test("valid UTF-8 JSON of any kind parses", () => {
    expect(decodeJson(Buffer.from('{"a":"é😀"}'))).toEqual({ ok: true, value: { a: "é😀" } });
    expect(decodeJson("[1,2]")).toEqual({ ok: true, value: [1, 2] });
  });

  test("trailing garbage is not JSON", () => {
    expect(decodeJson("{} x").ok).toBe(false);
  });
});

describe("tailBytes", () => {
  test("short text is returned whole", () => {
    expect(tailBytes("hello", 4096)).toBe("hello");
    expect(tailBytes(Buffer.from("héllo"), 4096)).toBe("héllo");
  });

  test("the cut lands on a character boundary", () => {
    expect(tailBytes("aé", 2)).toBe("é");
    expect(tailBytes("aé", 1)).toBe("");
    expect(tailBytes("x😀", 4)).toBe("😀");
    expect(tailBytes("x😀", 3)).toBe("");
    expect(tailBytes(Buffer.from("x😀"), 3)).toBe("");
    expect(tailBytes(Buffer.from("aé"), 2)).toBe("é");
    expect(tailBytes("anything", 0)).toBe("");
  });

  test("random text and bytes never give more than n bytes, and give the longest such tail", () => {
    const rand = seededRandom(1);
    for (let round = 0; round < 500; round++) {
      const text = randomText(rand, Math.floor(rand() * 300));
      const n = Math.floor(rand() * 400);
      for (const input of [text, Buffer.from(text)]) {
        const tail = tailBytes(input, n);
        expect(utf8ByteLength(tail)).toBeLessThanOrEqual(n);
        expect(text.endsWith(tail)).toBe(true);
        const chars = [...text];
        const tailChars = [...tail].length;
        if (tailChars < chars.length) {
          const longer = chars.slice(chars.length - tailChars - 1).join("");
          expect(utf8ByteLength(longer)).toBeGreaterThan(n);
        }
      }
    }
  });

  test("bytes that are not UTF-8 become U+FFFD and still fit in n bytes", () => {
    const tail = tailBytes(Buffer.alloc(4096, 0xff), 4096);
    expect(utf8ByteLength(tail)).toBeLessThanOrEqual(4096);
    expect(tail).toMatch(/^\uFFFD+$/);
  });

  test("a lone surrogate counts as three bytes", () => {
    const text = "ab\ud800";
    expect(utf8ByteLength(tailBytes(text, 3))).toBeLessThanOrEqual(3);
  });
});

describe("headBytes", () => {
  test("short text is returned whole and long text is cut with an ellipsis", () => {
    expect(headBytes("hello", 5)).toBe("hello");
    expect(headBytes("hello world", 8)).toBe("hello…");
    expect(headBytes("€€€", 8)).toBe("€…");
  });

  test("random text never exceeds n bytes", () => {
    const rand = seededRandom(2);
    for (let round = 0; round < 300; round++) {
      const text = randomText(rand, Math.floor(rand() * 200));
      const n = 3 + Math.floor(rand() * 300);
      const head = headBytes(text, n);
      expect(utf8ByteLength(head)).toBeLessThanOrEqual(n);
      expect(text.startsWith(head.endsWith("…") && head !== text ? head.slice(0, -1) : head)).toBe(true);
    }
  });
});

describe("encodedByteLength", () => {
  test("counts UTF-8 bytes of the JSON text", () => {
    expect(encodedByteLength({ a: "é" })).toBe(10);
    expect(encodedByteLength(undefined)).toBeUndefined();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(encodedByteLength(cyclic)).toBeUndefined();
  });
});

describe("surelyEncodesWithin", () => {
  const values: unknown[] = [
    null,
    true,
    false,
    0,
    -0,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -1.2345678901234567e-308,
    -0.0000012345678901234567,
    -123456789012345680000,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    "",
    '\0\u001f"\\',
    "é€😀",
    "\ud800 lone \udfff",
    [undefined, () => 1, Symbol("s"), null],
    { a: undefined, b: () => 1, c: Symbol("s"), 'k"\n': 1 },
    { nested: [{ deep: ["é", 1.5, { x: null }] }] },
    Object.assign(Object.create(null) as object, { a: 1 }),
  ];

  test("never says a value fits that does not: its bound is at least the exact size", () => {
    const rand = seededRandom(7);
    const random = Array.from({ length: 200 }, () => ({
      t: randomText(rand, Math.floor(rand() * 50)),
      n: (rand() - 0.5) * 10 ** Math.floor(rand() * 40 - 20),
      a: [randomText(rand, 3), rand() > 0.5, null],
    }));
    for (const value of [...values, ...random]) {
      const exact = encodedByteLength(value);
      if (exact === undefined) continue;
      // The smallest budget it says yes to is never below the exact size.
      expect(surelyEncodesWithin(value, exact - 1), JSON.stringify(value)).toBe(false);
      expect(surelyEncodesWithin(value, exact * 6 + 64)).toBe(true);
    }
  });

  test("is not sure of what it cannot bound: cycles, deep nesting, bigints, class instances, toJSON", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    for (const value of [cyclic, deep, 1n, [1n], new Date(0), { toJSON: () => "x" }, new Map()]) {
      expect(surelyEncodesWithin(value, 1_000_000)).toBe(false);
    }
  });

  test("stops once past the budget", () => {
    const big = Array.from({ length: 100_000 }, (_, i) => ({ i }));
    expect(surelyEncodesWithin(big, 100)).toBe(false);
    expect(surelyEncodesWithin(big, 10_000_000)).toBe(true);
  });
});
