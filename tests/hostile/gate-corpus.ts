/**
 * Hostile gate nodes: what any ZooKeeper client could write over `R/gate`. Each case says whether
 * the leader must ignore the whole node, or which parts it must ignore (by the path it logs), and
 * what must still hold from the valid parts beside them.
 */

export interface GateCase {
  what: string;
  data: Buffer;
  /** "whole": the node is ignored as a whole; else the paths of the parts ignored. */
  ignored: "whole" | string[];
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), "utf8");
const pause = { at: 1_700_000_000_000, by: "hostile" };

function manyLabels(n: number): Record<string, unknown> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, pause]));
}

export function gateCorpus(): GateCase[] {
  return [
    { what: "not JSON", data: Buffer.from("{paused"), ignored: "whole" },
    { what: "invalid UTF-8", data: Buffer.from([0x7b, 0xc0, 0x80, 0x7d]), ignored: "whole" },
    { what: "a JSON array", data: json([{ v: 1, paused: pause }]), ignored: "whole" },
    { what: "a JSON number", data: json(1), ignored: "whole" },
    { what: "JSON null", data: json(null), ignored: "whole" },
    { what: "a JSON string", data: json("paused"), ignored: "whole" },
    { what: "no v", data: json({ paused: pause }), ignored: "whole" },
    { what: "v 2", data: json({ v: 2, paused: pause }), ignored: "whole" },
    { what: 'v "1"', data: json({ v: "1", paused: pause }), ignored: "whole" },
    {
      what: "nested arrays 100000 deep",
      data: Buffer.from(`${"[".repeat(100_000)}${"]".repeat(100_000)}`),
      ignored: "whole",
    },
    { what: "paused: true", data: json({ v: 1, paused: true }), ignored: ["paused"] },
    { what: "a pause without at", data: json({ v: 1, paused: { by: "x" } }), ignored: ["paused"] },
    { what: "a pause at -1", data: json({ v: 1, paused: { at: -1 } }), ignored: ["paused"] },
    {
      what: "a pause by an empty name",
      data: json({ v: 1, paused: { at: 1, by: "" } }),
      ignored: ["paused"],
    },
    {
      what: "a pause by 300 bytes",
      data: json({ v: 1, paused: { at: 1, by: "x".repeat(300) } }),
      ignored: ["paused"],
    },
    {
      what: "a pause with an unknown key",
      data: json({ v: 1, paused: { at: 1, until: 2 } }),
      ignored: ["paused"],
    },
    { what: "pausedLabels an array", data: json({ v: 1, pausedLabels: ["gpu"] }), ignored: ["pausedLabels"] },
    {
      what: "paused labels that break the label rule",
      data: Buffer.from(
        `{"v":1,"pausedLabels":{"bad label":{"at":1},"":{"at":1},"__proto__":{"at":1},"a/b":{"at":1},"ok":{"at":1}}}`,
      ),
      ignored: ["pausedLabels.bad label", "pausedLabels.", "pausedLabels.__proto__", "pausedLabels.a/b"],
    },
    {
      what: "1001 paused labels",
      data: json({ v: 1, pausedLabels: manyLabels(1001) }),
      ignored: ["pausedLabels"],
    },
    { what: "limits a string", data: json({ v: 1, limits: "10/s" }), ignored: ["limits"] },
    {
      what: "limits out of range or of the wrong type",
      data: json({
        v: 1,
        limits: {
          zero: { starts: 0, perMs: 1000, at: 1 },
          huge: { starts: 1_000_000, perMs: 1000, at: 1 },
          frac: { starts: 1.5, perMs: 1000, at: 1 },
          text: { starts: "5", perMs: 1000, at: 1 },
          instant: { starts: 5, perMs: 0, at: 1 },
          week: { starts: 5, perMs: 7 * 86_400_000, at: 1 },
          bare: { starts: 5, perMs: 1000 },
          extra: { starts: 5, perMs: 1000, at: 1, burst: 9 },
          nothing: null,
        },
      }),
      ignored: [
        "limits.zero",
        "limits.huge",
        "limits.frac",
        "limits.text",
        "limits.instant",
        "limits.week",
        "limits.bare",
        "limits.extra",
        "limits.nothing",
      ],
    },
    { what: "an unknown key", data: json({ v: 1, resumeAt: 5 }), ignored: ["resumeAt"] },
  ];
}
