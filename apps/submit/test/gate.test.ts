import type { ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { startMaster } from "@zkgrid/master";
import { decodeGridGate, type GridGate, gridLayout } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { silentLogger, startWorker } from "@zkgrid/worker";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectGrid, type GridClient, InvalidGateError } from "../src/index.js";
import { bins, buildBins, killAll, type Run, runToEnd } from "./built-bins.js";
import { useLiveGrid } from "./live-grid.js";
import { connectString, randomRoot, readQueue } from "./helpers.js";

const live = useLiveGrid("zkgrid-gate-");
const { masters, workers, grids } = live;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  // The commands under test are the built ones, as users run them (status needs the observer).
  await buildBins();
});

afterEach(() => killAll(children));

function zkgrid(args: string[], root: string): Promise<Run> {
  return runToEnd(bins.submit, args, root, children);
}

/** The gate node as written, or undefined while there is none. */
async function gateOf(root: string): Promise<GridGate | undefined> {
  const got = await live.zk.get(gridLayout(root).gate).catch(() => undefined);
  if (got === undefined) return undefined;
  const decoded = decodeGridGate(got.data);
  if (!decoded.ok) throw decoded.error;
  expect(decoded.value.ignored).toEqual([]);
  return decoded.value.gate;
}

async function client(root: string): Promise<GridClient> {
  const grid = await connectGrid({ connectString: connectString(), root });
  grids.push(grid);
  return grid;
}

describe("zkgrid pause, resume and limit", () => {
  it.each([
    [["pause", "--label", "bad label"], /--label: invalid label "bad label"/],
    [["pause", "extra"], /unexpected argument "extra"/],
    [["pause", "--by", ""], /--by: expected a non-empty text/],
    [["resume", "--label", "-x"], /--label/],
    [["limit"], /give an action: set, remove or list/],
    [["limit", "frob"], /unknown action "frob"/],
    [["limit", "set", "gpu"], /expected a label and a limit/],
    [["limit", "set", "gpu", "ten"], /invalid limit "ten": expected <starts>\/<interval>/],
    [["limit", "set", "gpu", "0/1s"], /invalid limit "0\/1s": starts: expected an integer 1\.\.100000/],
    [["limit", "set", "gpu", "5/2d"], /invalid limit "5\/2d"/],
    [["limit", "set", "gpu", "5/25h"], /invalid limit "5\/25h"/],
    [["limit", "set", "gpu", "5/100000000"], /perMs: expected an interval/],
    [["limit", "set", "no/label", "5/1s"], /label: invalid label "no\/label"/],
    [["limit", "remove"], /expected one label/],
    [["limit", "list", "--by", "me"], /--by goes with limit set/],
    [["limit", "set", "gpu", "5/1s", "--json"], /--json goes with limit list/],
  ])("zkgrid %j is bad usage: exit 2, the problem named, nothing written", async (args, message) => {
    const root = randomRoot();
    const run = await zkgrid(args, root);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(await live.zk.exists(root)).toBeNull();
  });

  it("pause, limit set, status, limit list, resume and limit remove write and show the gate", async () => {
    const root = randomRoot();
    expect((await zkgrid(["pause", "--by", "ops"], root)).stdout).toBe("paused the grid\n");
    expect((await zkgrid(["pause"], root)).stdout).toBe("the grid was already paused\n");
    expect((await zkgrid(["pause", "--label", "gpu"], root)).stdout).toBe("paused label gpu\n");
    expect((await zkgrid(["limit", "set", "mail", "10/s"], root)).stdout).toBe("limit mail 10/1s\n");
    expect((await zkgrid(["limit", "set", "db", "100/2m", "--by", "dba"], root)).code).toBe(0);
    expect(await gateOf(root)).toMatchObject({
      paused: { by: "ops" },
      pausedLabels: { gpu: {} },
      limits: { mail: { starts: 10, perMs: 1000 }, db: { starts: 100, perMs: 120_000, by: "dba" } },
    });

    const status = await zkgrid(["status"], root);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/GATE {2}GRID PAUSED since .* by ops: no task starts/);
    expect(status.stdout).toContain("label gpu paused");
    expect(status.stdout).toContain("label mail limited to 10/1s");
    const snapshot = JSON.parse((await zkgrid(["status", "--json"], root)).stdout);
    expect(snapshot.gate.limits.db).toMatchObject({ starts: 100, perMs: 120_000 });

    const list = await zkgrid(["limit", "list"], root);
    expect(list.stdout).toMatch(/^db {2}100\/2m {2}set \S+ by dba\nmail {2}10\/1s {2}set /);
    expect(JSON.parse((await zkgrid(["limit", "list", "--json"], root)).stdout)).toMatchObject({
      mail: { starts: 10, perMs: 1000 },
    });

    const resumed = await zkgrid(["resume"], root);
    expect(resumed.stdout).toBe("resumed the grid\nstill paused: label gpu\n");
    expect((await zkgrid(["resume", "--label", "gpu"], root)).stdout).toBe("resumed label gpu\n");
    expect((await zkgrid(["resume", "--label", "gpu"], root)).stdout).toBe("label gpu was not paused\n");
    expect((await zkgrid(["limit", "remove", "mail"], root)).stdout).toBe("removed the limit of mail\n");
    expect((await zkgrid(["limit", "remove", "mail"], root)).stdout).toBe("mail had no limit\n");
    const gate = await gateOf(root);
    expect(gate?.paused).toBeUndefined();
    expect(gate?.pausedLabels).toBeUndefined();
    expect(Object.keys(gate?.limits ?? {})).toEqual(["db"]);
    expect((await zkgrid(["--help"], root)).stdout).toContain("limit set <label> <N>/<interval>");
  });
});

describe("GridClient gate calls", () => {
  it("bad values throw InvalidGateError naming the field, before anything is written", async () => {
    const root = randomRoot();
    const grid = await client(root);
    const calls: Array<[() => Promise<unknown>, string]> = [
      [() => grid.pause({ label: "bad label" }), "label"],
      [() => grid.pause({ by: "" }), "by"],
      [() => grid.resume({ label: "" }), "label"],
      [() => grid.setLimit("gpu", { starts: 0, perMs: 1000 }), "starts"],
      [() => grid.setLimit("gpu", { starts: 1.5, perMs: 1000 }), "starts"],
      [() => grid.setLimit("gpu", { starts: 5, perMs: 0 }), "perMs"],
      [() => grid.setLimit("gpu", { starts: 5, perMs: 2 * 86_400_000 }), "perMs"],
      [() => grid.setLimit("a/b", { starts: 5, perMs: 1000 }), "label"],
      [() => grid.removeLimit("../x"), "label"],
    ];
    for (const [call, field] of calls) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidGateError);
      expect((err as InvalidGateError).field).toBe(field);
    }
    expect(await live.zk.exists(root)).toBeNull();
  });

  it("changes made at once by several clients all land (each is written under the version it read)", async () => {
    const root = randomRoot();
    const clients = await Promise.all(Array.from({ length: 4 }, () => client(root)));
    await Promise.all(
      clients.flatMap((grid, i) => [
        grid.pause({ label: `l${i}` }),
        grid.setLimit(`m${i}`, { starts: i + 1, perMs: 1000 }),
      ]),
    );
    const gate = await clients[0]!.gate();
    expect(Object.keys(gate.pausedLabels ?? {}).sort()).toEqual(["l0", "l1", "l2", "l3"]);
    expect(await clients[0]!.limits()).toMatchObject({ m0: { starts: 1 }, m3: { starts: 4 } });
  });

  it("a lone task of a paused label goes to the queue, not to a worker's inbox, and runs after resume", async () => {
    const root = randomRoot();
    const layout = gridLayout(root);
    const master = await startMaster({ name: "m1", connectString: connectString(), root, logger: () => {} });
    masters.push(master);
    await master.leading();
    const cwd = await mkdtemp(join(live.scratch, "grid-"));
    const worker = await startWorker({
      name: "w1",
      connectString: connectString(),
      root,
      cwd,
      labels: ["gpu"],
      logger: silentLogger,
    });
    workers.push(worker);
    const grid = await client(root);
    await waitFor(async () => (await live.zk.exists(layout.worker("w1"))) !== null, { timeoutMs: 20_000 });
    const inbox = layout.inboxDir("w1", worker.sessionId as string);

    await grid.pause({ label: "gpu" });
    const [id] = await grid.submit({ cmd: "true", labels: ["gpu"] });
    expect((await readQueue(live.zk, layout)).flatMap((node) => node.tasks.map((t) => t.id))).toContain(id);
    expect(await live.zk.getChildren(inbox)).toEqual([]);
    await waitFor(() => master.stats()?.queued === 1, { timeoutMs: 20_000 });
    expect(await grid.status(id!)).toBeUndefined();

    await grid.resume({ label: "gpu" });
    const results = await grid.wait([id!], { timeoutMs: 30_000 });
    expect(results.get(id!)).toMatchObject({ state: "succeeded", worker: "w1" });
    // Without the pause, a lone task goes straight to the inbox again.
    const before = (await live.zk.exists(inbox))?.cversion ?? 0;
    await grid.submitAndWait({ cmd: "true", labels: ["gpu"] }, { timeoutMs: 30_000 });
    expect((await live.zk.exists(inbox))?.cversion ?? 0).toBeGreaterThan(before);
  });
});
