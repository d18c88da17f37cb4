/**
 * A direct task node's name, `R/inbox/<worker>@<session>/<name>`. The name is the task's id, or, for a
 * small task, `<id>~<batch>`: the id, `~`, and the task's `SubmitBatch` in base64url, with the node's
 * data left empty. A worker then takes the task from the name its inbox's watch lists, without a read:
 * on this lone path that read was one round trip of about four (see docs/protocol.md, "Direct tasks").
 */

/** The most bytes of an encoded `SubmitBatch` that a node's name carries (512 base64url characters). */
export const MAX_NAMED_BATCH_BYTES = 384;

/** Between a task's id and the batch in a direct task node's name; no task id holds it. */
export const INBOX_NAME_SEPARATOR = "~";

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_NAMED_CHARS = Math.ceil((MAX_NAMED_BATCH_BYTES * 4) / 3);

/**
 * The name of a direct task node for task `id` whose `SubmitBatch` encodes to `batch`: the id and the
 * batch if it has at most `MAX_NAMED_BATCH_BYTES`, else the id alone (the batch is then the node's data).
 */
export function inboxNodeName(id: string, batch: Uint8Array): string {
  if (batch.byteLength > MAX_NAMED_BATCH_BYTES) return id;
  const bytes = Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength);
  return `${id}${INBOX_NAME_SEPARATOR}${bytes.toString("base64url")}`;
}

/** The task id a direct task node's name gives: all of it, or what comes before `~`. */
export function inboxNodeId(name: string): string {
  const at = name.indexOf(INBOX_NAME_SEPARATOR);
  return at < 0 ? name : name.slice(0, at);
}

/**
 * What a direct task node's name carries after its id: undefined if nothing (the task is the node's
 * data), the batch's bytes, or `{ problem }` when the part after `~` is not base64url of at most
 * `MAX_NAMED_BATCH_BYTES` bytes.
 */
export function inboxNamedBatch(name: string): Buffer | { problem: string } | undefined {
  const at = name.indexOf(INBOX_NAME_SEPARATOR);
  if (at < 0) return undefined;
  const text = name.slice(at + 1);
  if (!BASE64URL.test(text) || text.length % 4 === 1)
    return { problem: "the part after the task id and ~ is not base64url" };
  if (text.length > MAX_NAMED_CHARS)
    return { problem: `the task in the name is over ${MAX_NAMED_BATCH_BYTES} bytes` };
  return Buffer.from(text, "base64url");
}
