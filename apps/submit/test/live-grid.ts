import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ZkClient } from "@zkgrid/core";
import type { Master } from "@zkgrid/master";
import type { Worker } from "@zkgrid/worker";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { GridClient } from "../src/index.js";
import { connectTestClient } from "./helpers.js";

/**
 * What a test file that runs real masters and workers shares: a plain client, a scratch directory,
 * and the masters, workers and grid clients its tests start (push them here), stopped after each test.
 */
export interface LiveGrid {
  readonly zk: ZkClient;
  readonly scratch: string;
  readonly masters: Master[];
  readonly workers: Worker[];
  readonly grids: GridClient[];
}

/** Registers the file's hooks; `zk` and `scratch` are set once its `beforeAll` has run. */
export function useLiveGrid(scratchPrefix: string): LiveGrid {
  let zk: ZkClient | undefined;
  let scratch = "";
  const live: LiveGrid = {
    get zk() {
      if (zk === undefined) throw new Error("the live grid's client is made in beforeAll");
      return zk;
    },
    get scratch() {
      return scratch;
    },
    masters: [],
    workers: [],
    grids: [],
  };
  beforeAll(async () => {
    zk = await connectTestClient();
    scratch = await mkdtemp(join(tmpdir(), scratchPrefix));
  });
  afterEach(async () => {
    await Promise.all(live.grids.splice(0).map((grid) => grid.close()));
    await Promise.all(live.workers.splice(0).map((worker) => worker.stop({ graceMs: 0 })));
    await Promise.all(live.masters.splice(0).map((master) => master.stop()));
  });
  afterAll(async () => {
    await zk?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });
  return live;
}
