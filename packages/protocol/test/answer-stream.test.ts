import { describe, expect, test } from "vitest";
import {
  answerKeyProblem,
  decodeDirectAnswer,
  decodeInboxNode,
  encodeAnswerHello,
  encodeSubmitBatch,
  encodeTaskStatus,
  inboxNodeName,
  MAX_ANSWER_HELLO_BYTES,
  newAnswerKey,
  parseAnswerHello,
  type SubmitBatch,
  withAnswerKey,
} from "../src/index.js";

const batch: SubmitBatch = {
  v: 1,
  batchId: "b1",
  submittedAt: 1_700_000_000_000,
  tasks: [{ id: "t1", handler: "noop", input: 1 }],
};

describe("answer streams", () => {
  test("a key is 22 to 64 base64url characters; a fresh one is 22", () => {
    const key = newAnswerKey();
    expect(key).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(newAnswerKey()).not.toBe(key);
    expect(answerKeyProblem(key)).toBeUndefined();
    expect(answerKeyProblem("A".repeat(64))).toBeUndefined();
    expect(answerKeyProblem("A".repeat(21))).toMatch(/22 to 64 base64url/);
    expect(answerKeyProblem("A".repeat(65))).toMatch(/22 to 64 base64url/);
    expect(answerKeyProblem(`${"A".repeat(21)}=`)).toMatch(/base64url/);
    expect(answerKeyProblem(42)).toBe("is not a string");
  });

  test("a hello names one key and is at most MAX_ANSWER_HELLO_BYTES with its newline", () => {
    const key = "K".repeat(64);
    const hello = encodeAnswerHello(key);
    expect(hello).toBe(`+${key}\n`);
    expect(Buffer.byteLength(hello)).toBe(MAX_ANSWER_HELLO_BYTES);
    expect(parseAnswerHello(hello.slice(0, -1))).toEqual({ key });
    expect(parseAnswerHello(key)).toEqual({ problem: 'the hello is "+<answer key>"' });
    expect(parseAnswerHello("+short")).toEqual({
      problem: expect.stringMatching(/^answer key is not 22 to 64/),
    });
    expect(parseAnswerHello(`+${key} extra`)).toHaveProperty("problem");
    expect(parseAnswerHello("GET / HTTP/1.1")).toHaveProperty("problem");
  });

  test("withAnswerKey adds the key to an encoded batch, which still decodes, in its name or its data", () => {
    const key = newAnswerKey();
    const data = withAnswerKey(encodeSubmitBatch(batch), key);
    expect(JSON.parse(data.toString())).toEqual({ ...batch, answerKey: key });
    const name = inboxNodeName("t1", data);
    expect(name.startsWith("t1~")).toBe(true);
    expect(decodeInboxNode(name, Buffer.alloc(0), 0)).toMatchObject({ kind: "task", answerKey: key });
    expect(decodeInboxNode("t1", data, 0)).toMatchObject({ kind: "task", answerKey: key });
    // A batch without a key decodes without one.
    const plain = decodeInboxNode("t1", encodeSubmitBatch(batch), 0);
    expect(plain.kind === "task" && "answerKey" in plain).toBe(false);
    expect(() => withAnswerKey(encodeSubmitBatch(batch), "bad")).toThrow(/answer key/);
    expect(() => withAnswerKey(Buffer.from("[]"), key)).toThrow(/not the JSON of a SubmitBatch/);
  });

  test("a batch whose answerKey is not a key is invalid, naming the field", () => {
    const bad = Buffer.from(JSON.stringify({ ...batch, answerKey: "no spaces allowed" }));
    const node = decodeInboxNode("t1", bad, 0);
    expect(node.kind).toBe("invalid");
    expect(node.kind === "invalid" && node.error.message).toMatch(/answerKey.*answer key/);
  });

  test("an answer on the stream is a final status at attempt 1, as over the node", () => {
    const status = { v: 1 as const, id: "t1", state: "succeeded" as const, attempt: 1, worker: "w1" };
    const line = encodeTaskStatus(status);
    expect(decodeDirectAnswer(line)).toEqual({ ok: true, value: status });
    const wrong = (over: object) => decodeDirectAnswer(Buffer.from(JSON.stringify({ ...status, ...over })));
    expect(wrong({ state: "running" })).toMatchObject({ ok: false });
    expect(wrong({ state: "rejected" })).toMatchObject({ ok: false });
    expect(wrong({ attempt: 2 }).ok).toBe(false);
    expect(decodeDirectAnswer(Buffer.from("not json")).ok).toBe(false);
    expect(decodeDirectAnswer(encodeSubmitBatch(batch)).ok).toBe(false);
  });
});
