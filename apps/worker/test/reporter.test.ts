import {
  compareSequentialNames,
  decodeWorkerReport,
  MAX_NODE_BYTES,
  type StatusUpdate,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../src/index.js";
import { SessionReporter } from "../src/reporter.js";
import { gridPerTest, layout } from "./helpers.js";

const grid = gridPerTest();

function reporterFor(
  dir: string,
  onFenced = () => {},
  holding?: { hold: () => boolean; lingerMs: number },
): SessionReporter {
  return new SessionReporter({
    client: grid().zk,
    dir,
    worker: "w1",
    session: grid().zk.sessionId!,
    logger: silentLogger,
    signal: new AbortController().signal,
    onFenced,
    ...holding,
  });
}

async function reports(dir: string): Promise<StatusUpdate[][]> {
  const names = (await grid().zk.getChildren(dir)).sort(compareSequentialNames);
  const out: StatusUpdate[][] = [];
  for (const name of names) {
    const decoded = decodeWorkerReport((await grid().zk.get(`${dir}/${name}`)).data);
    if (!decoded.ok) throw decoded.error;
    out.push(decoded.value.updates);
  }
  return out;
}

const update = (
  id: string,
  state: StatusUpdate["state"],
  extra: Partial<StatusUpdate> = {},
): StatusUpdate => ({
  id,
  attempt: 1,
  state,
  at: 1,
  ...extra,
});

describe("reports", () => {
  it("sends what arrives while a report is in flight in the next one, without a running update whose final one waits", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    await grid().zk.ensurePath(dir);
    const reporter = reporterFor(dir);

    reporter.report(update("t1", "running"));
    // The write starts on the next turn of the event loop; after it, t1's report is in flight.
    await new Promise((resolve) => setImmediate(resolve));
    reporter.report(update("t2", "running"));
    reporter.report(update("t3", "running"));
    reporter.report(update("t2", "succeeded", { startedAt: 1, exitCode: 0 }));
    await reporter.flushed();

    const written = await reports(dir);
    expect(written.map((r) => r.map((u) => `${u.id}:${u.state}`))).toEqual([
      ["t1:running"],
      ["t3:running", "t2:succeeded"],
    ]);
  });

  it("puts everything reported in one turn of the event loop in one report", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    await grid().zk.ensurePath(dir);
    const reporter = reporterFor(dir);

    reporter.report(update("t1", "running"));
    reporter.report(update("t1", "succeeded", { startedAt: 1, exitCode: 0 }));
    reporter.report(update("t2", "running"));
    await reporter.flushed();

    const written = await reports(dir);
    expect(written.map((r) => r.map((u) => `${u.id}:${u.state}`))).toEqual([["t1:succeeded", "t2:running"]]);
  });

  it("splits a backlog so that no report exceeds MAX_NODE_BYTES", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    await grid().zk.ensurePath(dir);
    const reporter = reporterFor(dir);
    const tail = "x".repeat(4000);

    for (let i = 0; i < 300; i++) {
      reporter.report(update(`t${i}`, "failed", { exitCode: 1, stdoutTail: tail, stderrTail: tail }));
    }
    await reporter.flushed();

    const written = await reports(dir);
    expect(written.flat()).toHaveLength(300);
    expect(written.length).toBeGreaterThan(2);
    for (const name of await grid().zk.getChildren(dir)) {
      expect((await grid().zk.get(`${dir}/${name}`)).data.length).toBeLessThanOrEqual(MAX_NODE_BYTES);
    }
  });

  it("calls onFenced and drops what is left when the report dir is gone", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    let fenced = 0;
    const reporter = reporterFor(dir, () => fenced++);

    reporter.report(update("t1", "running"));
    reporter.report(update("t2", "running"));
    await reporter.flushed();

    expect(fenced).toBe(1);
    expect(reporter.open).toBe(false);
    expect(await grid().zk.exists(dir)).toBeNull();
  });
});

describe("holding reports while the worker has tasks waiting", () => {
  it("writes nothing while hold() is true, then everything in one report once kick() finds it false", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    await grid().zk.ensurePath(dir);
    let holding = true;
    const reporter = reporterFor(dir, undefined, { hold: () => holding, lingerMs: 600_000 });

    reporter.report(update("t1", "succeeded", { exitCode: 0 }));
    await new Promise((resolve) => setImmediate(resolve));
    reporter.report(update("t2", "failed", { exitCode: 1 }));
    // A round trip on the same connection: a create sent before it would be answered before it.
    await grid().zk.exists(dir);
    expect(await grid().zk.getChildren(dir)).toEqual([]);

    holding = false;
    reporter.kick();
    await reporter.flushed();
    expect((await reports(dir)).map((r) => r.map((u) => `${u.id}:${u.state}`))).toEqual([
      ["t1:succeeded", "t2:failed"],
    ]);
  });

  it("writes held updates after lingerMs even while hold() stays true", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    await grid().zk.ensurePath(dir);
    const reporter = reporterFor(dir, undefined, { hold: () => true, lingerMs: 20 });

    reporter.report(update("t1", "succeeded", { exitCode: 0 }));
    reporter.report(update("t2", "succeeded", { exitCode: 0 }));

    const written = await waitFor(async () => {
      const r = await reports(dir);
      return r.length > 0 ? r : undefined;
    });
    expect(written.map((r) => r.map((u) => u.id))).toEqual([["t1", "t2"]]);
  });

  it("flushed() writes held updates at once", async () => {
    const dir = layout.reportDir("w1", grid().zk.sessionId!);
    await grid().zk.ensurePath(dir);
    const reporter = reporterFor(dir, undefined, { hold: () => true, lingerMs: 600_000 });

    reporter.report(update("t1", "returned"));
    await reporter.flushed();
    expect((await reports(dir)).flat().map((u) => `${u.id}:${u.state}`)).toEqual(["t1:returned"]);
  });
});
