import { randomUUID } from "node:crypto";
import { expect, inject, it } from "vitest";
import { type MasterEvent, startMaster } from "../src/index.js";

it("a master exposes its state and events: it leads a term, and on stop the term ends, the events end and closed() resolves", async () => {
  const root = `/test-${randomUUID()}`;
  const master = await startMaster({ name: "m", connectString: inject("zkConnectString"), root });
  const seen: MasterEvent[] = [];
  const collected = (async () => {
    for await (const event of master.events()) seen.push(event);
  })();
  const listened: MasterEvent[] = [];
  let started!: (epoch: number) => void;
  const termStarted = new Promise<number>((resolve) => {
    started = resolve;
  });
  const off = master.on((event) => {
    listened.push(event);
    if (event.type === "term-started") started(event.epoch);
  });
  const epoch = await termStarted;
  expect(master.state).toBe("leader");
  await master.stop();
  await master.closed();
  await collected;
  off();
  expect(master.state).toBe("stopped");
  const types = seen.map((e) => (e.type === "state" ? `state:${e.state}` : `${e.type}:${e.epoch}`));
  expect(types).toContain(`term-started:${epoch}`);
  expect(types).toContain(`term-ended:${epoch}`);
  expect(types.at(-1)).toBe("state:stopped");
  expect(listened).toEqual(seen);
});
