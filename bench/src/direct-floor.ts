import { performance } from "node:perf_hooks";
import type { ZkClient } from "@zkgrid/core";
import { inboxNodeName } from "@zkgrid/protocol";

const EMPTY = Buffer.alloc(0);

/**
 * One round of the direct path's floor: creates `<dir>/<id>~<data in base64url>`, empty, in a dir an
 * inbox station watches (the task in the node's name, as a submitter sends a small task), and waits
 * through a data watch until the station has answered over it. Returns the ms from the create to the
 * answer in hand; the watch is stopped and the node deleted (unawaited, as a leader would) after that.
 */
export async function directFloorRound(zk: ZkClient, dir: string, id: string, data: string): Promise<number> {
  const start = performance.now();
  const path = `${dir}/${inboxNodeName(id, Buffer.from(data))}`;
  await zk.create(path, EMPTY, "persistent");
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
