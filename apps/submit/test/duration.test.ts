import { describe, expect, it } from "vitest";
import { formatStatus } from "../src/cli.js";
import { formatDuration } from "../src/duration.js";
import { finalStatus } from "./helpers.js";

describe("durations as the commands print them", () => {
  it("rounds to the unit shown before choosing the form, so no unit ever reads 60", () => {
    expect(formatDuration(119_600)).toBe("2m00s");
    expect(formatDuration(119_400)).toBe("1m59s");
    expect(formatDuration(59_960)).toBe("1m00s");
    expect(formatDuration(999.6)).toBe("1.0s");
    expect(formatDuration(3_599_600)).toBe("1h00m");
    expect(formatDuration(48 * 3_600_000 - 20_000)).toBe("2d0h");
  });

  it("reads 850ms, 1.2s, 12.3s, 4m05s, 3h12m and 2d4h", () => {
    expect([850, 1_240, 12_340, 245_000, 11_520_000, 187_200_000].map(formatDuration)).toEqual([
      "850ms",
      "1.2s",
      "12.3s",
      "4m05s",
      "3h12m",
      "2d4h",
    ]);
    expect(formatDuration(-5)).toBe("0ms");
  });

  it("a result's line in submit --wait uses the same durations", () => {
    const status = finalStatus("t-1", "succeeded", { startedAt: 1_000, finishedAt: 120_600 });
    expect(formatStatus(status)).toBe("t-1  succeeded  exit=0  w1  2m00s\n");
  });
});
