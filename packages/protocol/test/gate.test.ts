import { describe, expect, it } from "vitest";
import {
  decodeGridGate,
  encodeGridGate,
  formatStartLimit,
  type GridGate,
  ProtocolError,
  parseStartLimit,
  startLimitProblem,
} from "../src/index.js";

describe("the gate node (R/gate)", () => {
  it("a gate round-trips, and empty data is an empty gate", () => {
    const gate: GridGate = {
      v: 1,
      paused: { at: 1, by: "ops" },
      pausedLabels: { gpu: { at: 2 } },
      limits: { mail: { starts: 10, perMs: 1000, at: 3, by: "me" } },
    };
    expect(decodeGridGate(encodeGridGate(gate))).toEqual({ ok: true, value: { gate, ignored: [] } });
    expect(decodeGridGate(Buffer.alloc(0))).toEqual({ ok: true, value: { gate: { v: 1 }, ignored: [] } });
  });

  it("a node that is not a version-1 object fails as a whole; each bad part of one is left out with its reason", () => {
    for (const data of ["{", "[]", "1", "null", '{"paused":{"at":1}}', '{"v":2}', '{"v":"1"}']) {
      const decoded = decodeGridGate(data);
      expect(decoded.ok, data).toBe(false);
    }
    const decoded = decodeGridGate(
      JSON.stringify({
        v: 1,
        paused: true,
        pausedLabels: { ok: { at: 1 }, "no way": { at: 1 } },
        limits: { zero: { starts: 0, perMs: 1, at: 1 }, fine: { starts: 1, perMs: 1, at: 1 } },
        more: 1,
      }),
    );
    if (!decoded.ok) throw decoded.error;
    expect(decoded.value.gate).toEqual({
      v: 1,
      pausedLabels: { ok: { at: 1 } },
      limits: { fine: { starts: 1, perMs: 1, at: 1 } },
    });
    expect(decoded.value.ignored.map((i) => i.path).sort()).toEqual([
      "limits.zero",
      "more",
      "paused",
      "pausedLabels.no way",
    ]);
  });

  it("encoding refuses a gate with any bad part, naming each", () => {
    const bad = { v: 1, limits: { mail: { starts: 0, perMs: 1000, at: 1 } }, paused: { at: -1 } } as GridGate;
    expect(() => encodeGridGate(bad)).toThrow(ProtocolError);
    expect(() => encodeGridGate(bad)).toThrow(
      /paused: at: expected a time.*limits\.mail: starts: expected an integer 1\.\.100000/,
    );
  });

  it("start limits read and print as <starts>/<interval>", () => {
    expect(parseStartLimit("10/1s")).toEqual({ starts: 10, perMs: 1000 });
    expect(parseStartLimit("10/s")).toEqual({ starts: 10, perMs: 1000 });
    expect(parseStartLimit(" 100 / 2m ")).toEqual({ starts: 100, perMs: 120_000 });
    expect(parseStartLimit("5/500ms")).toEqual({ starts: 5, perMs: 500 });
    for (const text of ["", "10", "ten/1s", "10/", "10/1h", "-1/1s", "1.5/1s"])
      expect(parseStartLimit(text), text).toBeUndefined();
    for (const limit of [
      { starts: 10, perMs: 1000 },
      { starts: 100, perMs: 120_000 },
      { starts: 5, perMs: 500 },
    ])
      expect(parseStartLimit(formatStartLimit(limit))).toEqual(limit);
    expect(startLimitProblem(1, 86_400_000)).toBeUndefined();
    expect(startLimitProblem(0, 1000)).toMatch(/^starts:/);
    expect(startLimitProblem(1, 86_400_001)).toMatch(/^perMs:/);
  });
});
