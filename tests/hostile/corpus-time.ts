/**
 * Hostile delays and retry policies: tasks whose `runAt` or `retry` is malformed, and queue nodes whose
 * leader-written `requeued` record (a retry's due time, an attempt history) is, as any client could
 * write them. Each must be rejected with a reason naming the field; the master stays up.
 */
import type { Mutation, QueueCase } from "./corpus.js";

type Json = unknown;

const retry =
  (policy: (rnd: () => number) => Json) =>
  (task: Record<string, Json>, rnd: () => number): Json => ({ ...task, retry: policy(rnd) });

const pickOf = <T>(rnd: () => number, items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;

export const TIME_MUTATIONS: Mutation[] = [
  {
    name: "runAt is not a time",
    apply: (t, r) => ({
      ...t,
      runAt: pickOf(r, ["soon", -5, 1.5, null, { at: 1 }, Number.MAX_SAFE_INTEGER + 2]),
    }),
    reason: /runAt/,
  },
  {
    name: "retry is not an object",
    apply: retry((r) => pickOf(r, ["3", 3, true, null, []])),
    reason: /retry/,
  },
  { name: "retry has an unknown key", apply: retry(() => ({ attempts: 5 })), reason: /retry.*unknown key/ },
  { name: "retry.on is empty", apply: retry(() => ({ on: [] })), reason: /retry\.on/ },
  {
    name: "retry.on names another state",
    apply: retry((r) => ({ on: [pickOf(r, ["cancelled", "succeeded", "lost", 1])] })),
    reason: /retry\.on\[0\]/,
  },
  {
    name: "retry.on names a state twice",
    apply: retry(() => ({ on: ["failed", "failed"] })),
    reason: /retry\.on/,
  },
  {
    name: "retry.backoff.type is unknown",
    apply: retry(() => ({ backoff: { type: "linear", delayMs: 10 } })),
    reason: /retry\.backoff\.type/,
  },
  {
    name: "retry.backoff.delayMs is out of range",
    apply: retry((r) => ({ backoff: { type: "fixed", delayMs: pickOf(r, [-1, 1.5, "1s", 1e12]) } })),
    reason: /retry\.backoff\.delayMs/,
  },
  {
    name: "retry.backoff.maxDelayMs below delayMs",
    apply: retry(() => ({ backoff: { type: "exponential", delayMs: 5000, maxDelayMs: 10 } })),
    reason: /retry\.backoff\.maxDelayMs/,
  },
  {
    name: "retry.backoff.jitter outside 0..1",
    apply: retry((r) => ({ backoff: { type: "fixed", delayMs: 1, jitter: pickOf(r, [-0.1, 1.5, "0.5"]) } })),
    reason: /retry\.backoff\.jitter/,
  },
  {
    name: "retry.noRetryExitCodes holds 0 or a non-code",
    apply: retry((r) => ({ noRetryExitCodes: [1, pickOf(r, [0, 256, -1, "3"])] })),
    reason: /retry\.noRetryExitCodes\[1\]/,
  },
];

const json = (value: Json): Buffer => Buffer.from(JSON.stringify(value), "utf8");

/** Queue nodes with a forged `requeued` record: the node is refused, and its task under its own id. */
export function timeNodeCases(rnd: () => number, idPrefix: string): QueueCase[] {
  const forged: Array<[string, Json, RegExp]> = [
    ["requeued notBefore is not a time", { notBefore: pickOf(rnd, ["later", -1, 2.5]) }, /notBefore/],
    ["requeued history is not an array", { history: { attempt: 1 } }, /history/],
    [
      "requeued history holds a bad record",
      { history: [{ attempt: 1, outcome: pickOf(rnd, ["exploded", 7, null]) }] },
      /history\[0\]\.outcome/,
    ],
    [
      "requeued history record with an unknown key",
      { history: [{ attempt: 1, outcome: "failed", blame: "me" }] },
      /history\[0\].*unknown key/,
    ],
    [
      "requeued history of more than 100 attempts",
      { history: Array.from({ length: 101 }, (_, i) => ({ attempt: 1 + (i % 100), outcome: "lost" })) },
      /history/,
    ],
  ];
  return forged.map(([label, extra, reason], i) => {
    const id = `${idPrefix}-rq-${i}-${Math.floor(rnd() * 1e9)}`;
    const node = {
      v: 1,
      batchId: `b-${i}`,
      submittedAt: Date.now(),
      tasks: [{ id, cmd: "echo ok", retry: {} }],
      requeued: { [id]: { attemptsUsed: 1, submittedAt: 1, ...(extra as object) } },
    };
    return { label, data: json(node), rejected: [{ at: { id }, reason }], valid: [] };
  });
}
