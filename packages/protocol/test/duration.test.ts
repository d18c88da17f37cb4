import { describe, expect, test } from "vitest";
import { parseDuration } from "../src/index.js";

describe("durations", () => {
  test.each([
    ["30000", 30_000],
    ["500ms", 500],
    ["30s", 30_000],
    ["2m", 120_000],
    ["1.5s", 1500],
    [" 10s ", 10_000],
    ["0", 0],
  ])("%j is %d milliseconds", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["", "s", "-5", "10h", "1e3", "30 s", "soon"])("%j is not a duration", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
