import { performance } from "node:perf_hooks";
import type { ZkClient } from "@zkgrid/core";

/**
 * One round of the direct path's floor: creates `path` in a dir an inbox station watches, and waits
 * through a data watch until the station has answered over it. Returns the ms from the create to the
 * answer in hand; the watch is stopped and the node deleted (unawaited, as a leader would) after that.
 */
export async function directFloorRound(zk: ZkClient, path: string, data: string): Promise<number> {
  const start = performance.now();
  await zk.create(path, data, "persistent");
  const watch = zk.watchData(path);
  try {
    for (;;) {
      const { value, done } = await watch.next();
      if (done) throw new Error("the floor's watch ended");
      if (value !== null && value.stat.version > 0) return performance.now() - start;
    }
  } finally {
    watch.stop();
    void zk.delete(path).catch(() => {});
  }
}
