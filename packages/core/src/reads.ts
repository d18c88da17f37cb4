import { isNoNode } from "./errors.js";
import type { DataChange } from "./types.js";

/** The node's data and stat, or null if it does not exist (a node listed a moment ago may be gone). */
export async function getOrNull(
  client: { get(path: string): Promise<DataChange> },
  path: string,
): Promise<DataChange | null> {
  try {
    return await client.get(path);
  } catch (err) {
    if (isNoNode(err)) return null;
    throw err;
  }
}

/** Runs `fn` over items with at most `limit` in flight: pipelined reads without an unbounded burst. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  });
  await Promise.all(lanes);
}

/**
 * Reads the children `names` of `dir`, at most `lanes` at a time, and hands each one that still exists
 * to `fn` (a node listed a moment ago may be gone).
 */
export async function readEach(
  client: { get(path: string): Promise<DataChange> },
  dir: string,
  names: readonly string[],
  lanes: number,
  fn: (name: string, node: DataChange) => void | Promise<void>,
): Promise<void> {
  await forEachLimit(names, lanes, async (name) => {
    const node = await getOrNull(client, `${dir}/${name}`);
    if (node) await fn(name, node);
  });
}
