import { randomBytes } from "node:crypto";
import { MAX_NODE_BYTES } from "./constants.js";

/**
 * A worker's answer stream: a TCP listener whose address the worker puts in its registration
 * (`answers`). A submitter connects and names a key of its own in a hello, `+<answer key>`, the one
 * line it ever sends there. Each direct task it then puts in that worker's inbox carries that key in its
 * `SubmitBatch` (`answerKey`), and when such a task ends the worker sends its answer, the final
 * `TaskStatus` as JSON (the same bytes it writes over the task's node), to every connection that named
 * the key, before it writes the node: the submitter has it without waiting for that write (see
 * docs/protocol.md, "Answer streams"). Both directions are lines of UTF-8 ending in "\n".
 */

/** The hello line's longest form: `+`, a key of 64 characters, "\n". */
export const MAX_ANSWER_HELLO_BYTES = 1 + 64 + 1;

/** An answer line is at most a node's data and its "\n". */
export const MAX_ANSWER_LINE_BYTES = MAX_NODE_BYTES + 1;

/** The random bytes of an answer key the client library makes (base64url: 22 characters). */
export const ANSWER_KEY_BYTES = 16;

const ANSWER_KEY_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

/** A fresh answer key, for one connection to a worker's answer stream. */
export function newAnswerKey(): string {
  return randomBytes(ANSWER_KEY_BYTES).toString("base64url");
}

/** Why `value` is not an answer key (22 to 64 base64url characters), or undefined if it is. */
export function answerKeyProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return "is not a string";
  if (!ANSWER_KEY_PATTERN.test(value)) return "is not 22 to 64 base64url characters (A-Z a-z 0-9 _ -)";
  return undefined;
}

/** The hello line naming `key`, "\n" included. */
export function encodeAnswerHello(key: string): string {
  return `+${key}\n`;
}

/** A hello line (without its "\n"): the key it names, or the problem with it. */
export function parseAnswerHello(line: string): { key: string } | { problem: string } {
  if (!line.startsWith("+")) return { problem: 'the hello is "+<answer key>"' };
  const key = line.slice(1);
  const problem = answerKeyProblem(key);
  return problem === undefined ? { key } : { problem: `answer key ${problem}` };
}

/**
 * `data`, the compact JSON of a `SubmitBatch` without `answerKey` (as `encodeSubmitBatch` gives it), with
 * `answerKey` added as its first key: the batch stays valid without being validated and encoded again.
 */
export function withAnswerKey(data: Uint8Array, key: string): Buffer {
  const problem = answerKeyProblem(key);
  if (problem !== undefined) throw new TypeError(`answer key ${problem}`);
  if (data[0] !== 0x7b || data[1] !== 0x22) throw new TypeError("not the JSON of a SubmitBatch");
  return Buffer.concat([Buffer.from(`{"answerKey":"${key}",`), data.subarray(1)]);
}
