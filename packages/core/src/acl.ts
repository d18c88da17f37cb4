import { createHash } from "node:crypto";
import type { Acl } from "./types.js";

/** ACL permission bits; combine with `|`. */
export const Perms = {
  READ: 1,
  WRITE: 2,
  CREATE: 4,
  DELETE: 8,
  ADMIN: 16,
  ALL: 31,
} as const;

/** The id ZooKeeper's digest scheme derives from "user:password": "user:base64(sha1(user:password))". */
export function digestId(credentials: string): string {
  const user = credentials.slice(0, credentials.indexOf(":"));
  return `${user}:${createHash("sha1").update(credentials).digest("base64")}`;
}

/** An ACL entry granting `perms` to whoever authenticated with digest `credentials` ("user:password"). */
export function digestAcl(credentials: string, perms: number = Perms.ALL): Acl {
  return { perms, scheme: "digest", id: digestId(credentials) };
}

/** Everyone may do everything (ZooKeeper's OPEN_ACL_UNSAFE). */
export const OPEN_ACL: readonly Acl[] = [{ perms: Perms.ALL, scheme: "world", id: "anyone" }];
