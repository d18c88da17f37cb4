import { randomUUID } from "node:crypto";
import { InvalidNameError } from "./errors.js";
import { type NameRule, nameProblem } from "./names.js";

/**
 * A reply address: the name a submitting client chooses for itself, carried by its tasks (`replyTo`),
 * under which the leader writes their final statuses (`R/replies/<address>/`). Like a worker name, so
 * that it is a safe single path segment; see docs/protocol.md, "Reply dirs".
 */
export const REPLY_ADDRESS_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The child of a reply dir its submitter keeps (ephemeral) while it lives: the leader never deletes a dir with it. */
export const REPLY_LIVE_NODE = "live";

const REPLY_ADDRESS: NameRule = {
  kind: "reply address",
  pattern: REPLY_ADDRESS_PATTERN,
  maxLength: 64,
  allowed: 'A-Z a-z 0-9 "_" "-"',
  forbidDotDot: false,
};

/** Why `value` is not a reply address (`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`), or undefined if it is. */
export function replyAddressProblem(value: unknown): string | undefined {
  return nameProblem(REPLY_ADDRESS, value);
}

export function isValidReplyAddress(value: unknown): value is string {
  return typeof value === "string" && REPLY_ADDRESS_PATTERN.test(value);
}

export function assertReplyAddress(value: unknown): asserts value is string {
  const problem = replyAddressProblem(value);
  if (problem !== undefined) throw new InvalidNameError("reply address", value, problem);
}

/** A fresh reply address for a client (random, so two clients never share one). */
export function newReplyAddress(): string {
  return randomUUID();
}

/**
 * What a master lists in its `MasterInfo.accepts` when its leader takes `replyTo` (older masters refuse
 * the key in a task, so a client sets it only while every master candidate lists this).
 */
export const ACCEPTS_REPLY_TO = "replyTo";

/**
 * Whether a master candidate's node data says it takes `replyTo`. Read loosely (any JSON object with
 * `accepts` listing it), so that a newer master's extra keys do not hide it.
 */
export function masterAcceptsReplyTo(data: Uint8Array): boolean {
  try {
    const info: unknown = JSON.parse(new TextDecoder().decode(data));
    const accepts = (info as { accepts?: unknown } | null)?.accepts;
    return Array.isArray(accepts) && accepts.includes(ACCEPTS_REPLY_TO);
  } catch {
    return false;
  }
}
