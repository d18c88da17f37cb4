import { BadArgumentsError } from "./errors.js";

/** Throws BadArgumentsError unless `path` is an absolute ZooKeeper path ("/", "/a", "/a/b"). */
export function validatePath(path: string, options: { allowTrailingSlash?: boolean } = {}): void {
  const fail = (why: string): never => {
    throw new BadArgumentsError({ path, message: `invalid path (${why})` });
  };
  if (typeof path !== "string" || !path.startsWith("/")) fail("must start with /");
  if (path === "/") return;
  if (path.includes("\u0000")) fail("contains NUL");
  const body = options.allowTrailingSlash && path.endsWith("/") ? path.slice(0, -1) : path;
  if (body.endsWith("/")) fail("must not end with /");
  for (const segment of body.slice(1).split("/")) {
    if (segment === "") fail("empty segment");
    if (segment === "." || segment === "..") fail("relative segment");
  }
}

/** Normalizes the `root` option: "/" or "/a/b" without a trailing slash. */
export function normalizeRoot(root: string | undefined): string {
  if (root === undefined || root === "" || root === "/") return "/";
  const trimmed = root.endsWith("/") ? root.slice(0, -1) : root;
  validatePath(trimmed);
  return trimmed;
}

/** Maps paths between the caller's view (relative to `root`) and the server's (absolute). */
export class Chroot {
  constructor(readonly root: string) {}

  toServer(path: string): string {
    if (this.root === "/") return path;
    return path === "/" ? this.root : this.root + path;
  }

  fromServer(path: string): string {
    if (this.root === "/") return path;
    if (path === this.root) return "/";
    if (path.startsWith(`${this.root}/`)) return path.slice(this.root.length);
    return path;
  }
}

export function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

export function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Every ancestor of `path` and `path` itself, outermost first ("/a/b" gives "/a", "/a/b"). */
export function prefixesOf(path: string): string[] {
  if (path === "/") return [];
  const parts = path.slice(1).split("/");
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join("/")}`);
}

/** The 10-digit counter ZooKeeper appends to a sequential node's name, or undefined. */
export function sequenceOf(name: string): number | undefined {
  const match = /(\d{10})$/.exec(name);
  return match ? Number(match[1]) : undefined;
}
