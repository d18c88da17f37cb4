import { seededRandom } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { diffSorted } from "../src/watch.js";

describe("diffSorted (a children watch's added and removed)", () => {
  it("gives what a set difference gives, in order, for random sorted listings", () => {
    const rand = seededRandom(5);
    const names = Array.from({ length: 60 }, (_, i) => `n-${String(i).padStart(10, "0")}`);
    names.push("a", "B", "é", "z", "Z9");
    const pick = () => names.filter(() => rand() < 0.5).sort();
    for (let round = 0; round < 500; round++) {
      const before = pick();
      const after = pick();
      const inBefore = new Set(before);
      const inAfter = new Set(after);
      expect(diffSorted(before, after)).toEqual({
        added: after.filter((n) => !inBefore.has(n)),
        removed: before.filter((n) => !inAfter.has(n)),
      });
    }
    expect(diffSorted([], [])).toEqual({ added: [], removed: [] });
  });
});
