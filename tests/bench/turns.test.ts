import { describe, expect, it } from "vitest";
import { rotated, type Side, share, takeTurns } from "../../bench/src/turns.js";

// The bench's sides take turns round by round (bench/src/turns.ts). These sides only write down what
// was asked of them, in order, so the test reads the schedule off one shared log, a phase a line.
function recordingSide(name: string, log: string[], failAt?: string): Side<string> {
  const step = async (what: string) => {
    log.push(`${name} ${what}`);
    if (what === failAt) throw new Error(`${name} broke at ${what}`);
  };
  return {
    start: () => step("start"),
    round: (i) => step(`round ${i}`),
    finish: async (error) => {
      log.push(`${name} finish`);
      return error === undefined ? `${name} ok` : `${name} failed: ${(error as Error).message}`;
    },
  };
}

describe("takeTurns", () => {
  it("starts every side, then runs each round of every side in an order rotated by the round", async () => {
    const log: string[] = [];
    const sides = ["a", "b", "c"].map((n) => recordingSide(n, log));
    const rounds: string[] = [];
    const results = await takeTurns(sides, 4, (line) => rounds.push(line.trim()));
    expect(log.join(", ")).toBe(
      [
        "a start, b start, c start",
        "a round 0, b round 0, c round 0",
        "b round 1, c round 1, a round 1",
        "c round 2, a round 2, b round 2",
        "a round 3, b round 3, c round 3",
        "a finish, b finish, c finish",
      ].join(", "),
    );
    expect(results).toEqual(["a ok", "b ok", "c ok"]);
    expect(rounds).toEqual(["round 1 of 4", "round 2 of 4", "round 3 of 4", "round 4 of 4"]);
  });

  it("lets a side that failed sit out the rest, and still finishes it with its error", async () => {
    const log: string[] = [];
    const sides = [
      recordingSide("a", log),
      recordingSide("b", log, "round 0"),
      recordingSide("c", log, "start"),
    ];
    const results = await takeTurns(sides, 2);
    expect(log.join(", ")).toBe(
      ["a start, b start, c start", "a round 0, b round 0", "a round 1", "a finish, b finish, c finish"].join(
        ", ",
      ),
    );
    expect(results).toEqual(["a ok", "b failed: b broke at round 0", "c failed: c broke at start"]);
  });
});

describe("share and rotated", () => {
  it("splits a count over rounds as evenly as it goes, the first rounds taking the rest", () => {
    expect([0, 1, 2, 3, 4].map((i) => share(1000, 5, i))).toEqual([200, 200, 200, 200, 200]);
    expect([0, 1, 2].map((i) => share(20, 3, i))).toEqual([7, 7, 6]);
    expect(share(20, 1, 0)).toBe(20);
  });

  it("rotates left and wraps", () => {
    expect(rotated(["a", "b", "c"], 0)).toEqual(["a", "b", "c"]);
    expect(rotated(["a", "b", "c"], 4)).toEqual(["b", "c", "a"]);
    expect(rotated([], 3)).toEqual([]);
  });
});
