import { connect, type ZkClient } from "@zkgrid/core";
import {
  decodeCancelRequest,
  gridLayout,
  MAX_BATCH_TASKS,
  MAX_CANCEL_IDS,
  MAX_NODE_BYTES,
  type TaskStatus,
} from "@zkgrid/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  connectGrid,
  type GridClient,
  InvalidTaskError,
  type TaskInput,
  WaitTimeoutError,
} from "../src/index.js";
import {
  connectString,
  connectTestClient,
  finalStatus,
  randomRoot,
  readQueue,
  writeResults,
} from "./helpers.js";

let zk: ZkClient;
const grids: Array<Pick<GridClient, "close">> = [];

beforeAll(async () => {
  zk = await connectTestClient();
});

afterEach(async () => {
  await Promise.all(grids.splice(0).map((grid) => grid.close()));
});

afterAll(async () => {
  await zk?.close();
});

async function newGrid(root = randomRoot()) {
  const grid = await connectGrid({ connectString: connectString(), root });
  grids.push(grid);
  return { grid, root, layout: gridLayout(root) };
}

describe("submit", () => {
  it("writes the tasks as one queue node that decodes with the protocol, filling in missing ids", async () => {
    const { grid, layout } = await newGrid();
    const ids = await grid.submit([
      { cmd: "echo one", env: { A: "1" }, labels: ["linux"], priority: 5, meta: { who: "test" } },
      { id: "chosen-id", cmd: "ls", args: ["-l", "/"], timeoutMs: 1000, maxAttempts: 2 },
      { handler: "resize", input: { width: 10 } },
    ]);
    expect(ids).toHaveLength(3);
    expect(ids[0]).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(ids[1]).toBe("chosen-id");

    const nodes = await readQueue(zk, layout);
    expect(nodes).toHaveLength(1);
    expect(nodes[0]!.name).toMatch(/^_c_[0-9a-f-]{36}-q\d{10}$/);
    expect(nodes[0]!.submitter).toMatch(/@/);
    expect(nodes[0]!.tasks).toEqual([
      { id: ids[0], cmd: "echo one", env: { A: "1" }, labels: ["linux"], priority: 5, meta: { who: "test" } },
      { id: "chosen-id", cmd: "ls", args: ["-l", "/"], timeoutMs: 1000, maxAttempts: 2 },
      { id: ids[2], handler: "resize", input: { width: 10 } },
    ]);
  });

  it("splits more than a batch's worth of tasks into several nodes, none over MAX_NODE_BYTES, in order", async () => {
    const { grid, layout } = await newGrid();
    // 2500 tasks pass MAX_BATCH_TASKS; 2 KiB of env each passes MAX_NODE_BYTES before that.
    const big = "x".repeat(2048);
    const tasks: TaskInput[] = Array.from({ length: 2500 }, (_, i) => ({
      cmd: `echo ${i}`,
      ...(i < 1200 ? { env: { PAD: big } } : {}),
    }));
    const ids = await grid.submit(tasks);

    const nodes = await readQueue(zk, layout);
    expect(nodes.length).toBeGreaterThanOrEqual(4);
    for (const node of nodes) {
      expect(node.dataLength).toBeLessThanOrEqual(MAX_NODE_BYTES);
      expect(node.tasks.length).toBeLessThanOrEqual(MAX_BATCH_TASKS);
    }
    expect(nodes.flatMap((node) => node.tasks.map((task) => task.id))).toEqual(ids);
    expect(nodes.flatMap((node) => node.tasks.map((task) => task.cmd))).toEqual(
      tasks.map((task) => task.cmd),
    );
  });

  it("lets submits made while nothing has been written yet share one queue node", async () => {
    const { grid, layout } = await newGrid();
    const calls = Array.from({ length: 200 }, (_, i) => grid.submit({ cmd: `echo ${i}` }));
    const ids = (await Promise.all(calls)).flat();

    const nodes = await readQueue(zk, layout);
    expect(nodes).toHaveLength(1);
    expect(nodes[0]!.tasks.map((task) => task.id)).toEqual(ids);
  });

  it("refuses a batch with an invalid task before writing any of it, naming the task and field", async () => {
    const { grid, layout } = await newGrid();
    const tasks = [{ cmd: "true" }, { cmd: "true" }, { cmd: "true", timeoutMs: -5 }] as TaskInput[];
    const err = await grid.submit(tasks).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidTaskError);
    expect((err as InvalidTaskError).index).toBe(2);
    expect((err as InvalidTaskError).field).toBe("timeoutMs");
    expect((err as InvalidTaskError).message).toMatch(/^task 2: timeoutMs: /);

    const neither = await grid.submit([{ env: { A: "1" } } as unknown as TaskInput]).catch((e: unknown) => e);
    expect((neither as InvalidTaskError).message).toMatch(/exactly one of "cmd" or "handler"/);
    expect(await readQueue(zk, layout)).toEqual([]);
  });

  it("refuses two tasks with the same id in one call before writing any of it, naming both", async () => {
    const { grid, layout } = await newGrid();
    const tasks = [{ id: "a", cmd: "echo 1" }, { cmd: "echo 2" }, { id: "a", cmd: "echo 3" }];
    const err = await grid.submit(tasks).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidTaskError);
    expect((err as InvalidTaskError).index).toBe(2);
    expect((err as InvalidTaskError).field).toBe("id");
    expect((err as InvalidTaskError).message).toBe('task 2: id: "a" is also the id of task 0');
    expect(await readQueue(zk, layout)).toEqual([]);
    expect(await zk.exists(layout.root)).toBeNull();
  });
});

describe("cancel", () => {
  it("writes every id, once, in as few CancelRequests as the limits allow, recording the submitter", async () => {
    const { grid, layout } = await connectGrid({
      connectString: connectString(),
      root: randomRoot(),
      submitter: "ops@desk",
    }).then((g) => {
      grids.push(g);
      return { grid: g, layout: g.layout };
    });
    const ids = Array.from({ length: MAX_CANCEL_IDS + 5 }, (_, i) => `t-${i}`);
    await grid.cancel([...ids, "t-0"]);
    const names = await zk.getChildren(layout.cancel);
    expect(names).toHaveLength(2);
    const written: string[] = [];
    for (const name of names) {
      const decoded = decodeCancelRequest((await zk.get(`${layout.cancel}/${name}`)).data);
      if (!decoded.ok) throw new Error(`cancel node ${name} does not decode: ${decoded.error.message}`);
      expect(decoded.value.by).toBe("ops@desk");
      written.push(...decoded.value.ids);
    }
    expect(written.sort()).toEqual([...ids].sort());
  });

  it("refuses an invalid id before writing anything", async () => {
    const { grid, layout } = await newGrid();
    const err = await grid.cancel(["ok-1", "no spaces"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidTaskError);
    expect((err as InvalidTaskError).index).toBe(1);
    expect((err as InvalidTaskError).field).toBe("id");
    expect(await zk.exists(layout.cancel)).toBeNull();
  });
});

describe("connectGrid", () => {
  it("works on an existing ZooKeeper client, under its root, and leaves it open on close", async () => {
    const chroot = randomRoot();
    const own = await connect({ connectString: connectString(), root: chroot });
    try {
      const grid = await connectGrid(own, { root: "/grid" });
      const [id] = await grid.submit({ cmd: "x" });
      await grid.close();
      expect(own.state).toBe("connected");
      const nodes = await readQueue(zk, gridLayout(`${chroot}/grid`));
      expect(nodes.map((node) => node.tasks.map((task) => task.id))).toEqual([[id]]);
    } finally {
      await own.close();
    }
  });
});

describe("typed handler tasks", () => {
  // What `typeof handlers` of a worker's `defineHandlers({...})` looks like.
  const handlers = {
    resize: async (input: { width: number; height: number }, _ctx: { taskId: string }) => ({
      bytes: input.width * input.height,
    }),
    ping: (_input: undefined) => "pong",
  };

  it("accepts each handler's input type and writes the task as given", async () => {
    const root = randomRoot();
    const grid = await connectGrid<typeof handlers>({ connectString: connectString(), root });
    grids.push(grid);
    const ids = await grid.submit([
      { handler: "resize", input: { width: 3, height: 4 }, labels: ["img"] },
      { handler: "ping" },
      { cmd: "echo still fine" },
    ]);
    // @ts-expect-error: resize needs a height
    await expect(grid.submit({ handler: "resize", input: { width: 3 } })).resolves.toHaveLength(1);
    // @ts-expect-error: no such handler
    await expect(grid.submit({ handler: "rotate", input: {} })).resolves.toHaveLength(1);

    const tasks = (await readQueue(zk, gridLayout(root))).flatMap((node) => node.tasks);
    expect(tasks.slice(0, 3)).toEqual([
      { id: ids[0], handler: "resize", input: { width: 3, height: 4 }, labels: ["img"] },
      { id: ids[1], handler: "ping" },
      { id: ids[2], cmd: "echo still fine" },
    ]);
  });
});

describe("wait", () => {
  it("resolves with each task's first final status once results arrive over several result batches, protected or not", async () => {
    const { grid, layout } = await newGrid();
    const [a, b, c] = await grid.submit([{ cmd: "a" }, { cmd: "b" }, { cmd: "c" }]);
    // Before the wait starts: one result, and one for a task of someone else.
    await writeResults(zk, layout, [finalStatus(a!, "succeeded"), finalStatus("someone-else", "failed")]);

    const heard: string[] = [];
    const waiting = grid.wait([a!, b!, c!], {
      onResult: (status) => heard.push(`${status.id}:${status.state}`),
    });
    // A duplicate final status for `a` (a leader repeating a step) must not replace the first.
    await writeResults(zk, layout, [
      finalStatus(a!, "failed", { exitCode: 3 }),
      finalStatus(b!, "failed", { exitCode: 1 }),
    ]);
    await writeResults(zk, layout, [finalStatus(c!, "timed-out")], 2, true);
    const results = await waiting;

    expect([...results.keys()]).toEqual([a, b, c]);
    expect(results.get(a!)).toMatchObject({ state: "succeeded", exitCode: 0 });
    expect(results.get(b!)).toMatchObject({ state: "failed", exitCode: 1 });
    expect(results.get(c!)?.state).toBe("timed-out");
    expect(heard).toEqual([`${a}:succeeded`, `${b}:failed`, `${c}:timed-out`]);
  });

  it("reads only result nodes written after the submit when waiting on generated ids", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    const skipped: unknown[] = [];
    const grid = await connectGrid({
      connectString: connectString(),
      root,
      logger: (level, msg, fields) => {
        if (level === "warn") skipped.push({ msg, ...fields });
      },
    });
    grids.push(grid);
    // An older node that a reader would complain about if it read it.
    await zk.ensurePath(layout.results);
    await zk.create(`${layout.results}/r`, "not a result batch", "persistent-sequential");

    const [id] = await grid.submit({ cmd: "x" });
    await writeResults(zk, layout, [finalStatus(id!, "succeeded")]);
    expect((await grid.wait(id!)).get(id!)?.state).toBe("succeeded");
    expect(skipped).toEqual([]);

    // From the start, the same wait does read the older node.
    await grid.wait(id!, { since: -1 });
    expect(skipped).toHaveLength(1);
  });

  it("finds the result the grid already has for a caller-chosen id that is submitted again", async () => {
    const { grid, layout } = await newGrid();
    await writeResults(zk, layout, [finalStatus("report-2024", "succeeded", { stdoutTail: "done\n" })]);
    const results = await grid.submitAndWait({ id: "report-2024", cmd: "make report" });
    expect(results.get("report-2024")).toMatchObject({ state: "succeeded", stdoutTail: "done\n" });
  });

  it("submitAndWait takes the baseline before writing, so a result that comes right after is found", async () => {
    const { grid, layout } = await newGrid();
    const leader = (async () => {
      // Act as the leader: wait for the queue node, then write a result for its task.
      for await (const change of zk.watchChildren(layout.queue)) {
        const nodes = await readQueue(zk, layout);
        const task = nodes[0]?.tasks[0];
        if (change.children.length > 0 && task) {
          await writeResults(zk, layout, [finalStatus(task.id, "succeeded", { stdoutTail: "hi\n" })]);
          return task.id;
        }
      }
      return undefined;
    })();
    const results = await grid.submitAndWait({ cmd: "echo hi" });
    const id = await leader;
    expect(results.get(id!)).toMatchObject({ state: "succeeded", stdoutTail: "hi\n" });
  });

  it("gives up after timeoutMs with what did arrive, and ends on abort", async () => {
    const { grid, layout } = await newGrid();
    const [a, b] = await grid.submit([{ cmd: "a" }, { cmd: "b" }]);
    await writeResults(zk, layout, [finalStatus(a!, "succeeded")]);
    const err = await grid.wait([a!, b!], { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as WaitTimeoutError).pending).toEqual([b]);
    expect([...(err as WaitTimeoutError).results.keys()]).toEqual([a]);

    const controller = new AbortController();
    const aborted = grid.wait([b!], { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort(new Error("stop waiting"));
    expect(((await aborted) as Error).message).toBe("stop waiting");
  });

  it("results() yields each status as it arrives and ends when all have arrived", async () => {
    const { grid, layout } = await newGrid();
    const ids = await grid.submit([{ cmd: "a" }, { cmd: "b" }]);
    const seen: TaskStatus[] = [];
    const iterating = (async () => {
      for await (const status of grid.results(ids)) {
        seen.push(status);
        if (seen.length === 1) await writeResults(zk, layout, [finalStatus(ids[1]!, "cancelled")]);
      }
    })();
    await writeResults(zk, layout, [finalStatus(ids[0]!, "succeeded")]);
    await iterating;
    expect(seen.map((status) => [status.id, status.state])).toEqual([
      [ids[0], "succeeded"],
      [ids[1], "cancelled"],
    ]);
  });

  it("status() returns the recorded final status of an id, or undefined", async () => {
    const { grid, layout } = await newGrid();
    expect(await grid.status("nothing-yet")).toBeUndefined();
    await writeResults(zk, layout, [finalStatus("t1", "failed", { exitCode: 2 })]);
    await writeResults(zk, layout, [finalStatus("t2", "succeeded")]);
    expect(await grid.status("t1")).toMatchObject({ id: "t1", state: "failed", exitCode: 2 });
    expect(await grid.status("t3")).toBeUndefined();
  });

  it("many concurrent waits on one client each get their own tasks' results", async () => {
    const { grid, layout } = await newGrid();
    const ids = await grid.submit(Array.from({ length: 20 }, (_, i) => ({ cmd: `echo ${i}` })));
    const waits = ids.map((id) => grid.wait(id));
    for (let i = 0; i < ids.length; i += 5) {
      await writeResults(
        zk,
        layout,
        ids.slice(i, i + 5).map((id) => finalStatus(id, "succeeded", { stdoutTail: `${id}\n` })),
      );
    }
    const results = await Promise.all(waits);
    results.forEach((result, i) => {
      expect([...result.keys()]).toEqual([ids[i]]);
      expect(result.get(ids[i]!)?.stdoutTail).toBe(`${ids[i]}\n`);
    });
  });

  it("close() ends a wait in progress with GridClosedError", async () => {
    const { grid } = await newGrid();
    const [id] = await grid.submit({ cmd: "x" });
    const waiting = grid.wait(id!).catch((e: unknown) => e);
    await grid.close();
    expect(((await waiting) as Error).name).toBe("GridClosedError");
    await expect(grid.submit({ cmd: "y" })).rejects.toThrow(/closed/);
  });
});
