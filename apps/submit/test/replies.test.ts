import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { connect, type ZkClient } from "@zkgrid/core";
import { startMaster } from "@zkgrid/master";
import {
  decodeResultBatch,
  encodeMasterInfo,
  type GridLayout,
  gridLayout,
  newReplyAddress,
  REPLY_LIVE_NODE,
} from "@zkgrid/protocol";
import { expireSession, waitFor } from "@zkgrid/testing";
import { silentLogger, startWorker } from "@zkgrid/worker";
import { describe, expect, it } from "vitest";
import { connectGrid, type GridClient, ResultsPrunedError } from "../src/index.js";
import { connectString, randomRoot } from "./helpers.js";
import { useLiveGrid } from "./live-grid.js";

const live = useLiveGrid("zkgrid-replies-");
const { masters, workers, grids } = live;

async function startGridMaster(root: string, name: string, keepResults?: number) {
  const master = await startMaster({
    name,
    connectString: connectString(),
    root,
    sessionTimeoutMs: 4_000,
    logger: () => {},
    ...(keepResults === undefined ? {} : { keepResults }),
  });
  masters.push(master);
  return master;
}

async function startGridWorker(root: string): Promise<void> {
  const cwd = await mkdtemp(join(live.scratch, "w-"));
  workers.push(
    await startWorker({
      name: "w1",
      connectString: connectString(),
      root,
      cwd,
      sessionTimeoutMs: 4_000,
      concurrency: 4,
      logger: silentLogger,
    }),
  );
}

/** `zk`, whose every `get` first calls `before` with the node's path and waits for what it returns. */
function beforeEachGet(zk: ZkClient, before: (path: string) => unknown): ZkClient {
  return new Proxy(zk, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "get") {
        return async (path: string) => {
          await before(path);
          return target.get(path);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A grid client on a ZooKeeper client of its own that records the path of every node it reads. */
async function recordingClient(
  root: string,
  replyAddress?: string | false,
): Promise<{ grid: GridClient; reads: string[]; zk: ZkClient }> {
  const zk = await connect({ connectString: connectString() });
  const reads: string[] = [];
  const recorded = beforeEachGet(zk, (path) => {
    reads.push(path);
  });
  const grid = await connectGrid(recorded, { root, ...(replyAddress === undefined ? {} : { replyAddress }) });
  grids.push(grid);
  return { grid, reads, zk };
}

/** A leading master and a worker on `root`. */
async function startGrid(root: string): Promise<void> {
  await (await startGridMaster(root, "m1")).leading();
  await startGridWorker(root);
}

/** A client of `root` (with its own reply address unless `false`), closed after the test. */
async function gridClient(root: string, replyAddress?: false): Promise<GridClient> {
  const grid = await connectGrid({
    connectString: connectString(),
    root,
    ...(replyAddress === false ? { replyAddress } : {}),
  });
  grids.push(grid);
  return grid;
}

/** The ids of every status in the result nodes under `dir`. */
async function idsIn(zk: ZkClient, dir: string): Promise<string[]> {
  const names = await zk.getChildren(dir).catch(() => [] as string[]);
  const ids: string[] = [];
  for (const name of names) {
    const got = await zk.get(`${dir}/${name}`).catch(() => undefined);
    const decoded = got ? decodeResultBatch(got.data) : undefined;
    if (decoded?.ok) ids.push(...decoded.value.results.map((r) => r.id));
  }
  return ids;
}

const tasks = (n: number) => Array.from({ length: n }, () => ({ cmd: "true" }));

describe("results routed to each submitter's reply dir", () => {
  it("a submitter with a reply address gets its results there and reads no result node of another submitter", async () => {
    const root = randomRoot();
    const layout: GridLayout = gridLayout(root);
    await startGrid(root);
    const a = await recordingClient(root, newReplyAddress());
    const b = await recordingClient(root, newReplyAddress());
    const shared = await recordingClient(root, false);
    try {
      const [ra, rb, rs] = await Promise.all([
        a.grid.submitAndWait(tasks(6), { timeoutMs: 60_000 }),
        b.grid.submitAndWait(tasks(6), { timeoutMs: 60_000 }),
        shared.grid.submitAndWait(tasks(3), { timeoutMs: 60_000 }),
      ]);
      for (const results of [ra, rb, rs]) {
        expect([...results.values()].map((s) => s.state)).toEqual(
          results.size === 3 ? Array(3).fill("succeeded") : Array(6).fill("succeeded"),
        );
      }
      const dirA = a.grid.layout.replyDir(addressOf(a.grid));
      const dirB = b.grid.layout.replyDir(addressOf(b.grid));
      expect((await idsIn(live.zk, dirA)).sort()).toEqual([...ra.keys()].sort());
      expect((await idsIn(live.zk, dirB)).sort()).toEqual([...rb.keys()].sort());
      // R/results holds only the results of the client without an address.
      expect((await idsIn(live.zk, layout.results)).sort()).toEqual([...rs.keys()].sort());
      const resultReads = (reads: string[]) =>
        reads.filter((p) => p.startsWith(`${layout.results}/`) || p.startsWith(`${layout.replies}/`));
      expect(resultReads(a.reads).length).toBeGreaterThan(0);
      for (const path of resultReads(a.reads)) expect(path.startsWith(`${dirA}/`), path).toBe(true);
      for (const path of resultReads(b.reads)) expect(path.startsWith(`${dirB}/`), path).toBe(true);
      // Its own dir holds its live node while it runs.
      expect(await live.zk.exists(`${dirA}/${REPLY_LIVE_NODE}`)).not.toBeNull();
    } finally {
      await Promise.all(
        [a, b, shared].map(async (c) => {
          await c.grid.close();
          await c.zk.close();
        }),
      );
    }
  }, 120_000);

  it("results pending while the leader changes reach the submitter's reply dir from the new leader", async () => {
    const root = randomRoot();
    const first = await startGridMaster(root, "m1");
    await first.leading();
    const second = await startGridMaster(root, "m2");
    await startGridWorker(root);
    const grid = await connectGrid({ connectString: connectString(), root, replyAddress: "takeover-client" });
    grids.push(grid);
    const ids = await grid.submit(Array.from({ length: 6 }, () => ({ cmd: "sleep 1" })));
    // The leader goes while the tasks run: their results are written by its successor.
    await waitFor(async () => (await live.zk.getChildren(grid.layout.assignDir)).length > 0, {
      timeoutMs: 30_000,
      message: "the tasks to be assigned",
    });
    await first.stop();
    await second.leading();
    const results = await grid.wait(ids, { timeoutMs: 90_000 });
    expect([...results.values()].map((s) => s.state)).toEqual(Array(6).fill("succeeded"));
    const inDir = await idsIn(live.zk, grid.layout.replyDir("takeover-client"));
    for (const id of ids) expect(inDir, id).toContain(id);
    expect((await idsIn(live.zk, grid.layout.results)).filter((id) => ids.includes(id))).toEqual([]);
  }, 150_000);

  it("the leader deletes a gone submitter's reply dir once its results age out, and keeps a live one's", async () => {
    const root = randomRoot();
    await (await startGridMaster(root, "m1", 3)).leading();
    await startGridWorker(root);
    const gone = await connectGrid({ connectString: connectString(), root, replyAddress: "gone-client" });
    await gone.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    const goneDir = gone.layout.replyDir("gone-client");
    expect(await live.zk.exists(goneDir)).not.toBeNull();
    await gone.close(); // its session, and so its live node, ends here
    const staying = await connectGrid({ connectString: connectString(), root, replyAddress: "live-client" });
    grids.push(staying);
    // Newer result nodes push the older ones out (3 kept). The leader may record several of these waits'
    // results in one node, so it takes as many waits as it takes: the gone client's nodes, then its dir, go.
    let waits = 0;
    await waitFor(
      async () => {
        if ((await live.zk.exists(goneDir)) === null) return true;
        await staying.submitAndWait(tasks(1), { timeoutMs: 60_000 });
        waits++;
        return false;
      },
      { timeoutMs: 120_000, message: "the gone submitter's reply dir to be deleted" },
    );
    expect(waits).toBeGreaterThanOrEqual(2);
    const liveDir = staying.layout.replyDir("live-client");
    await waitFor(async () => (await idsIn(live.zk, liveDir)).length <= 3, {
      timeoutMs: 30_000,
      message: "the live submitter's oldest results to be pruned",
    });
    expect(await live.zk.exists(liveDir)).not.toBeNull();
    expect(await live.zk.exists(`${liveDir}/${REPLY_LIVE_NODE}`)).not.toBeNull();
    // And it still gets new results after its old ones were pruned.
    const last = await staying.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    expect([...last.values()].map((s) => s.state)).toEqual(["succeeded", "succeeded"]);
  }, 240_000);
});

/** Stands an older master's candidate in the election: its info lists no `accepts`. */
async function standOlderMaster(zk: ZkClient, layout: GridLayout): Promise<string> {
  const info = encodeMasterInfo({
    v: 1,
    name: "old-master",
    host: "old-host",
    pid: 4242,
    startedAt: Date.now(),
  });
  return zk.createProtected(`${layout.masters}/${layout.masterNodePrefix}`, info, "ephemeral-sequential");
}

describe("a wait that falls behind the leader's pruning", () => {
  it("ends with ResultsPrunedError naming the pruned node and the ids still pending, instead of waiting for ever", async () => {
    const root = randomRoot();
    // The leader keeps only the 3 newest result nodes.
    await (await startGridMaster(root, "m1", 3)).leading();
    await startGridWorker(root);
    const zk = await connect({ connectString: connectString() });
    // The client's reads of its reply dir's nodes wait at a gate while `held`: a reader fallen behind.
    let held = false;
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = beforeEachGet(zk, (path) => (held && path.includes("/replies/") ? gate : undefined));
    const grid = await connectGrid(slow, { root, replyAddress: newReplyAddress() });
    try {
      // A first pair (through the queue) makes the reply dir, so that later tasks have a baseline in it.
      await grid.submitAndWait(tasks(2), { timeoutMs: 60_000 });
      const dir = grid.layout.replyDir(addressOf(grid));
      held = true;
      // Two at a time: a lone task would go to a worker's inbox, not through the queue.
      const ids = await grid.submit(tasks(2));
      const waiting = grid.wait(ids).then(
        () => undefined,
        (error: unknown) => error,
      );
      const inDir = async () => new Set(await idsIn(live.zk, dir));
      const allIn = async (list: string[]) => {
        const seen = await inDir();
        return list.every((id) => seen.has(id));
      };
      const anyIn = async (list: string[]) => {
        const seen = await inDir();
        return list.some((id) => seen.has(id));
      };
      await waitFor(() => allIn(ids), { timeoutMs: 30_000 });
      // Two tasks at a time, each pair in result nodes of its own, until the first pair's are pruned.
      for (let i = 0; i < 10 && (await anyIn(ids)); i++) {
        const next = await grid.submit(tasks(2));
        await waitFor(() => allIn(next), { timeoutMs: 30_000 });
      }
      expect(await anyIn(ids)).toBe(false);
      held = false;
      release();
      const error = await waiting;
      expect(error).toBeInstanceOf(ResultsPrunedError);
      const pruned = error as ResultsPrunedError;
      expect(pruned.code).toBe("RESULTS_PRUNED");
      expect(pruned.pending.length).toBeGreaterThan(0);
      for (const id of pruned.pending) expect(ids).toContain(id);
      expect(pruned.node.startsWith(`${dir}/`)).toBe(true);
      expect(pruned.message).toContain("pruned before this client read it");
    } finally {
      release();
      await grid.close();
      await zk.close();
    }
  }, 120_000);
});

describe("reply dirs by default", () => {
  it("a plain client's results come back to a reply dir of its own and none of them go to R/results", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await startGrid(root);
    const grid = await gridClient(root);
    const results = await grid.submitAndWait(tasks(4), { timeoutMs: 60_000 });
    expect([...results.values()].map((s) => s.state)).toEqual(Array(4).fill("succeeded"));
    const dir = layout.replyDir(addressOf(grid));
    expect((await idsIn(live.zk, dir)).sort()).toEqual([...results.keys()].sort());
    expect(await idsIn(live.zk, layout.results)).toEqual([]);
    expect(await live.zk.exists(`${dir}/${REPLY_LIVE_NODE}`)).not.toBeNull();
    // The baseline it hands out is one of its own dir: a wait after it finds the next results there.
    const since = await grid.resultBaseline();
    const [next] = await grid.submit({ id: "after-baseline", cmd: "true" });
    const again = await grid.wait(next!, { since, timeoutMs: 60_000 });
    expect(again.get("after-baseline")?.state).toBe("succeeded");
    expect(await idsIn(live.zk, dir)).toContain("after-baseline");
  }, 120_000);

  it("a wait on ids another client sent to its own reply dir finds them, already final and still running", async () => {
    const root = randomRoot();
    await startGrid(root);
    const sender = await gridClient(root);
    const other = await gridClient(root);
    const optedOut = await gridClient(root, false);
    // Ids of the caller's own go through the queue (a lone generated one may go to a worker directly).
    const [done] = await sender.submit({ id: "foreign-done", cmd: "echo done" });
    await sender.wait(done!, { timeoutMs: 60_000 });
    const [running] = await sender.submit({ id: "foreign-running", cmd: "sleep 2; echo late" });
    // Neither waiting client sent these: they are found in the sender's dir, the final one at once.
    const [byOther, byOptedOut] = await Promise.all([
      other.wait([done!, running!], { timeoutMs: 60_000 }),
      optedOut.wait([done!, running!], { timeoutMs: 60_000 }),
    ]);
    for (const found of [byOther, byOptedOut]) {
      expect(found.get(done!)?.stdoutTail).toBe("done\n");
      expect(found.get(running!)?.stdoutTail).toBe("late\n");
    }
    expect(await idsIn(live.zk, sender.layout.replyDir(addressOf(sender)))).toEqual(
      expect.arrayContaining([done, running]),
    );
    expect((await other.status(running!))?.state).toBe("succeeded");
    expect((await optedOut.status(done!))?.state).toBe("succeeded");
    // A lone task may go to a worker directly; the leader records its answer wherever it routes it.
    const [lone] = await sender.submit({ cmd: "echo lone" });
    const byOtherLone = await other.wait(lone!, { timeoutMs: 60_000 });
    expect(byOtherLone.get(lone!)?.stdoutTail).toBe("lone\n");
  }, 120_000);

  it("after its session expires a plain client makes its live node again and its results still come to its dir", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await startGrid(root);
    const grid = await gridClient(root);
    const dir = layout.replyDir(addressOf(grid));
    const first = await grid.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    expect([...first.values()].map((s) => s.state)).toEqual(["succeeded", "succeeded"]);
    const session = grid.zk.sessionCredentials();
    if (session === undefined) throw new Error("the client has no session");
    await expireSession(connectString(), session);
    await waitFor(async () => (await live.zk.exists(`${dir}/${REPLY_LIVE_NODE}`)) === null, {
      timeoutMs: 30_000,
      message: "the expired session's live node to go",
    });
    const second = await grid.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    expect([...second.values()].map((s) => s.state)).toEqual(["succeeded", "succeeded"]);
    expect(await idsIn(live.zk, dir)).toEqual(expect.arrayContaining([...first.keys(), ...second.keys()]));
    expect(await live.zk.exists(`${dir}/${REPLY_LIVE_NODE}`)).not.toBeNull();
    expect(await idsIn(live.zk, layout.results)).toEqual([]);
  }, 120_000);

  it("a client that opts out sends its results to R/results and makes no reply dir", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await startGrid(root);
    const grid = await gridClient(root, false);
    expect(grid.replyAddress).toBeUndefined();
    const results = await grid.submitAndWait(tasks(3), { timeoutMs: 60_000 });
    expect([...results.values()].map((s) => s.state)).toEqual(Array(3).fill("succeeded"));
    expect((await idsIn(live.zk, layout.results)).sort()).toEqual([...results.keys()].sort());
    expect(await live.zk.getChildren(layout.replies).catch(() => [])).toEqual([]);
  }, 120_000);

  it("while a master that does not say it takes replyTo stands, tasks go without it and results to R/results", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    await startGrid(root);
    // A client that started on an upgraded grid: its first tasks come back to its reply dir.
    const early = await gridClient(root);
    const before = await early.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    expect((await idsIn(live.zk, layout.replyDir(addressOf(early)))).sort()).toEqual(
      [...before.keys()].sort(),
    );
    // An older master joins the election (after the leader, so the leader stays).
    const old = await standOlderMaster(live.zk, layout);
    // A client that starts now sets no replyTo at all.
    const late = await gridClient(root);
    const fromLate = await late.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    expect([...fromLate.values()].map((s) => s.state)).toEqual(["succeeded", "succeeded"]);
    // The early client turns to R/results once it has seen the older master.
    await waitFor(
      async () => {
        const ids = await early.submit(tasks(2));
        await early.wait(ids, { timeoutMs: 60_000 });
        return (await idsIn(live.zk, layout.results)).includes(ids[0]!);
      },
      { timeoutMs: 60_000, message: "the early client's tasks to go to R/results" },
    );
    const shared = await idsIn(live.zk, layout.results);
    for (const id of fromLate.keys()) expect(shared).toContain(id);
    expect(await live.zk.exists(layout.replyDir(addressOf(late)))).toBeNull();
    // It keeps to R/results after the older master goes.
    await live.zk.delete(old);
    const after = await early.submitAndWait(tasks(2), { timeoutMs: 60_000 });
    expect(await idsIn(live.zk, layout.results)).toEqual(expect.arrayContaining([...after.keys()]));
  }, 180_000);
});

/** The reply address a client's tasks carry (its reply dir's name). */
function addressOf(grid: GridClient): string {
  const address = grid.replyAddress;
  if (address === undefined) throw new Error("the client has no reply address");
  return address;
}
