import { describe, expect, test } from "vitest";
import { decodeJson, encodedByteLength, headBytes, tailBytes, utf8ByteLength } from "../src/index.js";
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
