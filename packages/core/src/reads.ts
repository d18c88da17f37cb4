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
