import { createHash } from "node:crypto";
import { BadArgumentsError } from "./errors.js";
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

/** zkCli's letters for the permission bits. */
const PERM_LETTERS: ReadonlyArray<readonly [string, number]> = [
  ["c", Perms.CREATE],
  ["d", Perms.DELETE],
  ["r", Perms.READ],
  ["w", Perms.WRITE],
  ["a", Perms.ADMIN],
];

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

/**
 * Parses ACL entries in zkCli's syntax, comma-separated: `scheme:id:perms`, e.g.
 * `digest:worker:1yWy0Ic1DR1PuSgv4vlYyPYzjvY=:cdrwa,world:anyone:r`. The id may contain ":" (a digest
 * id is `user:base64(sha1(user:password))`); perms are letters of `cdrwa`. Throws BadArgumentsError.
 */
export function parseAcl(text: string): Acl[] {
  const entries = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  return entries.map((entry) => {
    const first = entry.indexOf(":");
    const last = entry.lastIndexOf(":");
    const scheme = entry.slice(0, first);
    const id = entry.slice(first + 1, last);
    const letters = entry.slice(last + 1);
    if (first <= 0 || last <= first + 1) {
      throw new BadArgumentsError({ message: `ACL entry "${entry}": expected scheme:id:perms` });
    }
    if (scheme === "digest" && !/^[^:]+:[A-Za-z0-9+/]{27}=$/.test(id)) {
      // Most likely "user:password" where "user:base64(sha1(user:password))" belongs; never echo it.
      throw new BadArgumentsError({
        message: `ACL entry for digest user "${id.slice(0, id.indexOf(":"))}": expected digest:user:base64(sha1(user:password)):perms`,
      });
    }
    let perms = 0;
    for (const letter of letters) {
      const bit = PERM_LETTERS.find(([l]) => l === letter)?.[1];
      if (bit === undefined) {
        throw new BadArgumentsError({
          message: `ACL entry for ${scheme} "${scheme === "digest" ? id.slice(0, id.indexOf(":")) : id}": perms must be letters of cdrwa, got "${letters}"`,
        });
      }
      perms |= bit;
    }
    if (perms === 0) throw new BadArgumentsError({ message: `ACL entry "${scheme}:…": no perms` });
    return { scheme, id, perms };
  });
}

/** One ACL entry in zkCli's syntax (`scheme:id:perms`), the inverse of parseAcl. */
export function formatAcl(acl: Acl): string {
  const letters = PERM_LETTERS.filter(([, bit]) => (acl.perms & bit) !== 0)
    .map(([letter]) => letter)
    .join("");
  return `${acl.scheme}:${acl.id}:${letters}`;
}

/**
 * The ACL a client puts on every node it creates: ALL for each of its own digest credentials, plus
 * `extra`. Undefined (nodes keep ZooKeeper's open ACL) when there is neither.
 */
export function nodeAcl(auth: readonly string[], extra: readonly Acl[] = []): Acl[] | undefined {
  const acl: Acl[] = [];
  for (const entry of [...auth.map((credentials) => digestAcl(credentials)), ...extra]) {
    const same = acl.find((a) => a.scheme === entry.scheme && a.id === entry.id);
    if (same) same.perms |= entry.perms;
    else acl.push({ ...entry });
  }
  return acl.length === 0 ? undefined : acl;
}
