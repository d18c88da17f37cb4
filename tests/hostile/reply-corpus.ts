/**
 * Hostile reply addresses: queue nodes whose tasks carry a `replyTo` no client may choose, and junk
 * under R/replies (names no address may have, nodes that are no result batch), as any ZooKeeper client
 * could write them.
 */
import { validTask } from "./corpus.js";

type Json = unknown;

export interface ReplyCase {
  what: string;
  replyTo: Json;
}

/** `replyTo` values the protocol refuses: each task carrying one is rejected, naming the reply address. */
export const BAD_REPLY_ADDRESSES: ReplyCase[] = [
  { what: "a number", replyTo: 42 },
  { what: "null", replyTo: null },
  { what: "an object", replyTo: { dir: "x" } },
  { what: "empty", replyTo: "" },
  { what: "a path climbing out", replyTo: "../assign" },
  { what: "a nested path", replyTo: "a/b" },
  { what: "a space", replyTo: "a b" },
  { what: "a leading dot", replyTo: ".hidden" },
  { what: "a leading underscore", replyTo: "_c_0" },
  { what: "65 characters", replyTo: "a".repeat(65) },
  { what: "a NUL", replyTo: "a\u0000b" },
  { what: "a non-ASCII letter", replyTo: "caf\u00e9" },
];

/** A task `id` carrying `replyTo`. */
export function replyTask(id: string, replyTo: Json): Record<string, Json> {
  return { ...validTask(id), replyTo };
}

/** Children of R/replies no client makes: names that are no reply address, and what is in them. */
export const JUNK_REPLY_DIRS: Array<{
  name: string;
  data: Buffer;
  children?: Array<{ name: string; data: Buffer }>;
}> = [
  { name: "not an address", data: Buffer.from("x") },
  { name: "_c_junk", data: Buffer.alloc(0) },
  {
    name: "junk-results",
    data: Buffer.alloc(0),
    children: [
      { name: "r0000000000", data: Buffer.from("{not json") },
      { name: "r0000000001", data: Buffer.from(JSON.stringify({ v: 1, epoch: 1, results: [{ id: 1 }] })) },
      { name: "garbage", data: Buffer.from([0xff, 0xfe]) },
    ],
  },
];

/**
 * Election candidates' data that does not say its master takes `replyTo`, as an older master or any
 * client could write it under R/masters: while one stands, a client sets no `replyTo`.
 */
export const NOT_ACCEPTING_MASTER_INFOS: Array<{ what: string; data: Buffer }> = [
  { what: "not JSON", data: Buffer.from("{accepts") },
  { what: "not UTF-8", data: Buffer.from([0xff, 0xfe, 0x00]) },
  { what: "JSON null", data: Buffer.from("null") },
  { what: "a JSON array", data: Buffer.from(JSON.stringify(["replyTo"])) },
  { what: "accepts as a string", data: Buffer.from(JSON.stringify({ v: 1, accepts: "replyTo" })) },
  { what: "accepts without it", data: Buffer.from(JSON.stringify({ v: 1, accepts: [1, "replyto", null] })) },
  {
    what: "an older master's info",
    data: Buffer.from(JSON.stringify({ v: 1, name: "m0", host: "h", pid: 1, startedAt: 1 })),
  },
];

/** A newer master's info: keys this version does not know, and `replyTo` among its `accepts`. */
export const NEWER_MASTER_INFO = Buffer.from(
  JSON.stringify({
    v: 1,
    name: "m9",
    host: "h",
    pid: 9,
    startedAt: 1,
    accepts: ["replyTo", "later"],
    zone: "b",
  }),
);
