/**
 * A generated corpus of hostile queue nodes: payloads any ZooKeeper client could write under R/queue.
 * Each case says which task ids the leader must reject (by id, or by index for a task without a valid
 * id of its own), what the reason must mention, and which valid ids in the same node must still run.
 */

import { seededRandom } from "@zkgrid/testing";
import { TIME_MUTATIONS, timeNodeCases } from "./corpus-time.js";

/** Where a rejected task is expected: by its own id, or by its index in the node (no valid id). */
export type ExpectedId = { id: string } | { index: number };

export interface Rejection {
  at: ExpectedId;
  /** The reason must match this. */
  reason: RegExp;
  /** What is wrong with it, for a failure message. */
  what?: string;
}

export interface QueueCase {
  /** What kind of hostility, for the summary. */
  label: string;
  data: Buffer;
  rejected: Rejection[];
  /** Ids in the same node that are valid and must succeed. */
  valid: string[];
}

type Json = unknown;

/** Objects nested `depth` levels deep (`{a:1}` is one level). */
function nest(depth: number, leaf: Json = 1): Json {
  let value: Json = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

function nestArrays(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/** One way to break a task: applied to a valid task `{ id, cmd }`, with what the reason must name. */
export interface Mutation {
  name: string;
  /** True when the mutation leaves no valid id, so the rejection is named by index. */
  breaksId?: boolean;
  apply(task: Record<string, Json>, rnd: () => number): Json;
  reason: RegExp;
}

const NUL = "\u0000";

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

function randomText(rnd: () => number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += String.fromCharCode(0x21 + Math.floor(rnd() * 90));
  return out;
}

function withNul(rnd: () => number): string {
  const text = randomText(rnd, 1 + Math.floor(rnd() * 12));
  const at = Math.floor(rnd() * (text.length + 1));
  return text.slice(0, at) + NUL + text.slice(at);
}

const set =
  (key: string, value: (rnd: () => number) => Json) =>
  (task: Record<string, Json>, rnd: () => number): Json => ({ ...task, [key]: value(rnd) });

const MUTATIONS: Mutation[] = [
  { name: "cmd is a number", apply: set("cmd", (r) => Math.floor(r() * 1e6)), reason: /cmd/ },
  { name: "cmd is a boolean", apply: set("cmd", () => true), reason: /cmd/ },
  { name: "cmd is null", apply: set("cmd", () => null), reason: /cmd/ },
  { name: "cmd is an array", apply: set("cmd", () => ["echo", "x"]), reason: /cmd/ },
  { name: "cmd is an object", apply: set("cmd", () => ({ sh: "echo" })), reason: /cmd/ },
  { name: "cmd is empty", apply: set("cmd", () => ""), reason: /cmd/ },
  { name: "cmd holds NUL", apply: set("cmd", withNul), reason: /cmd/ },
  { name: "cmd and handler", apply: set("handler", () => "h"), reason: /cmd|handler/ },
  {
    name: "neither cmd nor handler",
    apply: (t) => ({ id: t.id }),
    reason: /cmd|handler/,
  },
  { name: "args is a string", apply: set("args", () => "-x"), reason: /args/ },
  { name: "args holds a number", apply: set("args", (r) => ["a", Math.floor(r() * 100)]), reason: /args/ },
  { name: "args holds NUL", apply: set("args", (r) => [withNul(r)]), reason: /args/ },
  {
    name: "args without cmd",
    apply: (t) => ({ id: t.id, handler: "h", args: ["x"] }),
    reason: /args/,
  },
  { name: "handler is empty", apply: (t) => ({ id: t.id, handler: "" }), reason: /handler/ },
  { name: "handler is a number", apply: (t) => ({ id: t.id, handler: 7 }), reason: /handler/ },
  { name: "handler is too long", apply: (t) => ({ id: t.id, handler: "h".repeat(300) }), reason: /handler/ },
  { name: "handler holds NUL", apply: (t, r) => ({ id: t.id, handler: withNul(r) }), reason: /handler/ },
  { name: "input without handler", apply: set("input", () => ({ a: 1 })), reason: /input/ },
  {
    name: "input nested too deep",
    apply: (t) => ({ id: t.id, handler: "h", input: nest(61) }),
    reason: /input|deep|nest/,
  },
  { name: "env is a string", apply: set("env", () => "A=1"), reason: /env/ },
  { name: "env is an array", apply: set("env", () => ["A=1"]), reason: /env/ },
  {
    name: "env name starts with a digit",
    apply: set("env", (r) => ({ [`${Math.floor(r() * 9)}X`]: "a" })),
    reason: /env/,
  },
  { name: "env name has a dash", apply: set("env", () => ({ "A-B": "x" })), reason: /env/ },
  { name: "env name is empty", apply: set("env", () => ({ "": "x" })), reason: /env/ },
  { name: "env value is a number", apply: set("env", (r) => ({ A: r() })), reason: /env/ },
  { name: "env value holds NUL", apply: set("env", (r) => ({ A: withNul(r) })), reason: /env/ },
  { name: "cwd is empty", apply: set("cwd", () => ""), reason: /cwd/ },
  {
    name: "cwd climbs out",
    apply: set("cwd", (r) => pick(r, ["..", "../x", "a/../../x", "a/b/../../.."])),
    reason: /cwd/,
  },
  { name: "cwd holds NUL", apply: set("cwd", withNul), reason: /cwd/ },
  { name: "cwd is too long", apply: set("cwd", () => "d".repeat(5000)), reason: /cwd/ },
  { name: "cwd is a number", apply: set("cwd", () => 5), reason: /cwd/ },
  { name: "timeoutMs is zero", apply: set("timeoutMs", () => 0), reason: /timeoutMs/ },
  {
    name: "timeoutMs is negative",
    apply: set("timeoutMs", (r) => -1 - Math.floor(r() * 1e6)),
    reason: /timeoutMs/,
  },
  { name: "timeoutMs is fractional", apply: set("timeoutMs", (r) => 1 + r()), reason: /timeoutMs/ },
  { name: "timeoutMs is a string", apply: set("timeoutMs", () => "1000"), reason: /timeoutMs/ },
  { name: "timeoutMs is over 7 days", apply: set("timeoutMs", () => 604800001), reason: /timeoutMs/ },
  { name: "timeoutMs is null", apply: set("timeoutMs", () => null), reason: /timeoutMs/ },
  { name: "maxAttempts is zero", apply: set("maxAttempts", () => 0), reason: /maxAttempts/ },
  { name: "maxAttempts is 101", apply: set("maxAttempts", () => 101), reason: /maxAttempts/ },
  { name: "maxAttempts is a string", apply: set("maxAttempts", () => "3"), reason: /maxAttempts/ },
  { name: "maxAttempts is fractional", apply: set("maxAttempts", () => 2.5), reason: /maxAttempts/ },
  { name: "labels is a string", apply: set("labels", () => "gpu"), reason: /labels/ },
  { name: "labels hold a number", apply: set("labels", () => [1]), reason: /labels/ },
  { name: "label has a space", apply: set("labels", () => ["bad label"]), reason: /labels/ },
  { name: "label is empty", apply: set("labels", () => [""]), reason: /labels/ },
  {
    name: "33 labels",
    apply: set("labels", () => Array.from({ length: 33 }, (_, i) => `l${i}`)),
    reason: /labels/,
  },
  {
    name: "priority over 1000",
    apply: set("priority", (r) => 1001 + Math.floor(r() * 1e6)),
    reason: /priority/,
  },
  { name: "priority under -1000", apply: set("priority", () => -1001), reason: /priority/ },
  { name: "priority is fractional", apply: set("priority", () => 0.5), reason: /priority/ },
  { name: "meta is a string", apply: set("meta", () => "m"), reason: /meta/ },
  { name: "meta is an array", apply: set("meta", () => [1, 2]), reason: /meta/ },
  { name: "meta nested too deep", apply: set("meta", () => nest(61) as Json), reason: /meta|deep|nest/ },
  { name: "unknown key", apply: set("command", () => "echo"), reason: /command|unknown/ },
  {
    name: "__proto__ key",
    apply: (t) => JSON.parse(`{"id":${JSON.stringify(t.id)},"cmd":"true","__proto__":{"x":1}}`),
    reason: /__proto__|unknown/,
  },
  { name: "constructor key", apply: set("constructor", () => "x"), reason: /constructor|unknown/ },
  {
    name: "task over 64 KiB",
    apply: set("cmd", () => `echo ${"x".repeat(70_000)}`),
    reason: /65536|bytes|size|large/,
  },
  {
    name: "meta over 64 KiB",
    apply: set("meta", () => ({ blob: "y".repeat(70_000) })),
    reason: /65536|bytes|size|large/,
  },
  { name: "id is ../x", breaksId: true, apply: set("id", () => "../x"), reason: /id/ },
  {
    name: "id climbs with slashes",
    breaksId: true,
    apply: set("id", (r) => pick(r, ["a/b", "/etc/passwd", "a/../../b"])),
    reason: /id/,
  },
  { name: "id holds NUL", breaksId: true, apply: set("id", withNul), reason: /id/ },
  { name: "id is empty", breaksId: true, apply: set("id", () => ""), reason: /id/ },
  { name: "id is a dot", breaksId: true, apply: set("id", (r) => pick(r, [".", ".."])), reason: /id/ },
  { name: "id has ..", breaksId: true, apply: set("id", () => "a..b"), reason: /id/ },
  {
    name: "id is too long",
    breaksId: true,
    apply: set("id", (r) => "i".repeat(129 + Math.floor(r() * 10_000))),
    reason: /id/,
  },
  { name: "id is a number", breaksId: true, apply: set("id", (r) => Math.floor(r() * 1000)), reason: /id/ },
  { name: "id is null", breaksId: true, apply: set("id", () => null), reason: /id/ },
  { name: "id is missing", breaksId: true, apply: (t) => ({ cmd: t.cmd }), reason: /id/ },
  { name: "id starts with a dash", breaksId: true, apply: set("id", () => "-rf"), reason: /id/ },
  {
    name: "id is not ASCII",
    breaksId: true,
    apply: set("id", (r) => pick(r, ["ü", "日本", "a b", "a\tb", "\u202e"])),
    reason: /id/,
  },
  { name: "task is a number", breaksId: true, apply: () => 5, reason: /./ },
  { name: "task is a string", breaksId: true, apply: () => "echo hi", reason: /./ },
  { name: "task is null", breaksId: true, apply: () => null, reason: /./ },
  { name: "task is an array", breaksId: true, apply: (t) => [t], reason: /./ },
  ...TIME_MUTATIONS,
];

/** A valid task that finishes at once and writes only inside its output folder. */
export function validTask(id: string): Record<string, Json> {
  return { id, cmd: "echo ok" };
}

function batch(tasks: Json[], extra: Record<string, Json> = {}): Record<string, Json> {
  return {
    v: 1,
    batchId: `b-${Math.random().toString(36).slice(2, 10)}`,
    submittedAt: Date.now(),
    tasks,
    ...extra,
  };
}

const json = (value: Json): Buffer => Buffer.from(JSON.stringify(value), "utf8");

/** Bad tasks mixed with valid ones inside well-formed batches: each bad task is rejected on its own. */
function badTaskCases(rnd: () => number, idPrefix: string, rounds: number): QueueCase[] {
  const cases: QueueCase[] = [];
  let n = 0;
  for (let round = 0; round < rounds; round++) {
    // Shuffle the mutations into batches of 1..24 tasks, each with one valid task alongside.
    const order = [...MUTATIONS].sort(() => rnd() - 0.5);
    while (order.length > 0) {
      const size = 1 + Math.floor(rnd() * 24);
      const chunk = order.splice(0, size);
      const tasks: Json[] = [];
      const rejected: Rejection[] = [];
      const valid: string[] = [];
      const validAt = Math.floor(rnd() * (chunk.length + 1));
      chunk.forEach((m, i) => {
        if (i === validAt) {
          const id = `${idPrefix}-ok-${n++}`;
          valid.push(id);
          tasks.push(validTask(id));
        }
        const id = `${idPrefix}-bad-${n++}`;
        const index = tasks.length;
        tasks.push(m.apply(validTask(id), rnd));
        rejected.push({ at: m.breaksId ? { index } : { id }, reason: m.reason, what: m.name });
      });
      if (validAt === chunk.length) {
        const id = `${idPrefix}-ok-${n++}`;
        valid.push(id);
        tasks.push(validTask(id));
      }
      cases.push({
        label: `bad tasks (${chunk.map((m) => m.name).join(", ")})`,
        data: json(batch(tasks)),
        rejected,
        valid,
      });
    }
  }
  return cases;
}

function invalidUtf8(rnd: () => number): Buffer {
  const good = Buffer.from(JSON.stringify(batch([validTask("never-run")])), "utf8");
  const bad = pick(rnd, [
    [0xff],
    [0xfe, 0xff],
    [0xc0, 0x80], // overlong NUL
    [0xe0, 0x80, 0x80], // overlong
    [0xed, 0xa0, 0x80], // a UTF-16 surrogate
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0xe2, 0x82], // truncated
    [0x80], // a lone continuation byte
  ]);
  const at = Math.floor(rnd() * good.length);
  return Buffer.concat([good.subarray(0, at), Buffer.from(bad), good.subarray(at)]);
}

/** Whole queue nodes that are broken as a batch: each yields one rejection, named by index 0 or by its task's id. */
function brokenNodeCases(rnd: () => number, idPrefix: string, count: number): QueueCase[] {
  const whole = (label: string, data: Buffer, reason: RegExp): QueueCase => ({
    label,
    data,
    rejected: [{ at: { index: 0 }, reason }],
    valid: [],
  });
  // A batch of another `v` (or none) still names its tasks: each is rejected under its own id.
  const byId = (label: string, id: string, data: Buffer, reason: RegExp): QueueCase => ({
    label,
    data,
    rejected: [{ at: { id }, reason }],
    valid: [],
  });
  const makers: Array<() => QueueCase> = [
    () => whole("bytes that are not UTF-8", invalidUtf8(rnd), /UTF-8/),
    () =>
      whole(
        "random bytes",
        Buffer.from(
          Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => 0x80 + Math.floor(rnd() * 128)),
        ),
        /UTF-8|JSON/,
      ),
    () => whole("empty node", Buffer.alloc(0), /JSON/),
    () =>
      whole(
        "not JSON",
        Buffer.from(pick(rnd, ["{", "}", "nul", "{'v':1}", "[1,]", '{"v":1,}', randomText(rnd, 30)])),
        /JSON/,
      ),
    () =>
      whole(
        "JSON that is not an object",
        json(pick(rnd, [0, -1, 3.5, "batch", true, false, null, [], [1, 2]])),
        /object|expected/,
      ),
    () =>
      whole(
        "array of tasks",
        json([validTask(`${idPrefix}-arr-${Math.floor(rnd() * 1e9)}`)]),
        /object|expected/,
      ),
    () => {
      const id = `${idPrefix}-nov-${Math.floor(rnd() * 1e9)}`;
      return byId(
        "no schema version",
        id,
        json({ batchId: "b", submittedAt: 1, tasks: [validTask(id)] }),
        /v\b|version/,
      );
    },
    () => {
      const id = `${idPrefix}-v2-${Math.floor(rnd() * 1e9)}`;
      return byId(
        "unknown schema version",
        id,
        json(batch([validTask(id)], { v: pick(rnd, [2, 0, 99, -1]) })),
        /version/,
      );
    },
    () => {
      const id = `${idPrefix}-vs-${Math.floor(rnd() * 1e9)}`;
      const v = pick(rnd, ["1", null, 1.5, [1]]);
      return byId("schema version of the wrong type", id, json(batch([validTask(id)], { v })), /v\b|version/);
    },
    () =>
      whole(
        "tasks is not an array",
        json(batch([], { tasks: pick(rnd, ["x", 5, null, { a: 1 }]) })),
        /tasks/,
      ),
    () => whole("tasks missing", json({ v: 1, batchId: "b1", submittedAt: 1 }), /tasks/),
    () =>
      whole(
        "nested deeper than 64 levels",
        Buffer.from(nestArrays(65 + Math.floor(rnd() * 5000))),
        /deep|nest/,
      ),
    () =>
      whole(
        "a task nested deeper than 64 levels",
        Buffer.from(
          `{"v":1,"batchId":"b","submittedAt":1,"tasks":[{"id":"${idPrefix}-deep-${Math.floor(rnd() * 1e9)}","cmd":"true","meta":${JSON.stringify(nest(70))}}]}`,
        ),
        /deep|nest/,
      ),
  ];
  return Array.from({ length: count }, () => pick(rnd, makers)());
}

/** v:1 batches whose envelope is broken but whose tasks carry ids: each task is rejected by id. */
function brokenEnvelopeCases(rnd: () => number, idPrefix: string, count: number): QueueCase[] {
  const cases: QueueCase[] = [];
  const breakers: Array<[string, (b: Record<string, Json>) => Record<string, Json>, RegExp]> = [
    ["batchId missing", ({ batchId: _, ...b }) => b, /batchId/],
    ["batchId climbs out", (b) => ({ ...b, batchId: "../b" }), /batchId/],
    ["batchId is a number", (b) => ({ ...b, batchId: 5 }), /batchId/],
    ["submittedAt missing", ({ submittedAt: _, ...b }) => b, /submittedAt/],
    ["submittedAt negative", (b) => ({ ...b, submittedAt: -5 }), /submittedAt/],
    ["submittedAt is a string", (b) => ({ ...b, submittedAt: "now" }), /submittedAt/],
    ["submittedAt fractional", (b) => ({ ...b, submittedAt: 1.5 }), /submittedAt/],
    ["submitter empty", (b) => ({ ...b, submitter: "" }), /submitter/],
    ["submitter holds NUL", (b) => ({ ...b, submitter: `a${NUL}b` }), /submitter/],
    ["unknown batch key", (b) => ({ ...b, priority: 5 }), /priority|unknown/],
    ["requeued garbage", (b) => ({ ...b, requeued: "all" }), /requeued/],
  ];
  let n = 0;
  for (let i = 0; i < count; i++) {
    const [label, breakIt, reason] = pick(rnd, breakers);
    const size = 1 + Math.floor(rnd() * 5);
    const tasks: Json[] = [];
    const rejected: Rejection[] = [];
    for (let j = 0; j < size; j++) {
      if (rnd() < 0.2) {
        tasks.push({ id: "../nope", cmd: "true" });
        rejected.push({ at: { index: j }, reason });
      } else {
        const id = `${idPrefix}-env-${n++}`;
        tasks.push(validTask(id));
        rejected.push({ at: { id }, reason });
      }
    }
    cases.push({ label: `broken batch: ${label}`, data: json(breakIt(batch(tasks))), rejected, valid: [] });
  }
  return cases;
}

/** A batch of 1001 tasks (the limit is 1000): every one of them is rejected by id. */
function oversizedBatchCase(idPrefix: string): QueueCase {
  const ids = Array.from({ length: 1001 }, (_, i) => `${idPrefix}-many-${i}`);
  return {
    label: "1001 tasks in one batch",
    data: json(batch(ids.map(validTask))),
    rejected: ids.map((id) => ({ at: { id }, reason: /1000|tasks/ })),
    valid: [],
  };
}

/** Payloads near ZooKeeper's 1 MiB node limit. */
function nearLimitCases(rnd: () => number, idPrefix: string): QueueCase[] {
  const junk = Buffer.alloc(1_000_000, 0x7b); // "{{{{…": deep and not JSON
  const noise = Buffer.from(randomText(rnd, 1_000_000));
  const bigTaskId = `${idPrefix}-big-task`;
  const bigTask = json(batch([{ id: bigTaskId, cmd: "true", meta: { blob: "z".repeat(990_000) } }]));
  const okId = `${idPrefix}-big-ok`;
  const bigMixed = json(batch([{ id: `${idPrefix}-big-mixed`, cmd: "c".repeat(950_000) }, validTask(okId)]));
  return [
    { label: "1 MB of {", data: junk, rejected: [{ at: { index: 0 }, reason: /deep|nest|JSON/ }], valid: [] },
    { label: "1 MB of text", data: noise, rejected: [{ at: { index: 0 }, reason: /JSON/ }], valid: [] },
    {
      label: "a 990 KB task",
      data: bigTask,
      rejected: [{ at: { id: bigTaskId }, reason: /bytes|size|large|65536/ }],
      valid: [],
    },
    {
      label: "a 950 KB task beside a valid one",
      data: bigMixed,
      rejected: [{ at: { id: `${idPrefix}-big-mixed` }, reason: /bytes|size|large|65536|cmd/ }],
      valid: [okId],
    },
  ];
}

/**
 * The whole corpus: at least `minCases` rejections (not counting the 1001 of the oversized batch), with
 * valid tasks alongside.
 */
export function hostileCorpus(seed: number, idPrefix: string, minCases = 1000): QueueCase[] {
  const rnd = seededRandom(seed);
  const cases: QueueCase[] = [
    ...brokenNodeCases(rnd, idPrefix, 180),
    ...brokenEnvelopeCases(rnd, idPrefix, 60),
    ...nearLimitCases(rnd, idPrefix),
    ...timeNodeCases(rnd, idPrefix),
  ];
  let rounds = 0;
  const count = () => cases.reduce((n, c) => n + c.rejected.length, 0);
  while (count() < minCases || rounds < 2) {
    cases.push(...badTaskCases(rnd, `${idPrefix}-r${rounds}`, 1));
    rounds++;
  }
  cases.push(oversizedBatchCase(idPrefix));
  // Interleave the kinds, so valid work is never all at one end.
  return cases.sort(() => rnd() - 0.5);
}
