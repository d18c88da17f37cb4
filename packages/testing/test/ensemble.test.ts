import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEnsemble, waitFor, type ZkEnsemble } from "../src/index.js";
import { RawClient } from "./raw-client.js";

describe("a 3-member ensemble", () => {
  let ensemble: ZkEnsemble;
  const root = `/test-${randomUUID()}`;

  beforeAll(async () => {
    ensemble = await startEnsemble(3);
  });
  afterAll(async () => {
    await ensemble?.stop();
  });

  it("has one leader and two followers on distinct loopback ports", async () => {
    const modes = await Promise.all(ensemble.members.map((member) => member.mode()));
    expect(modes.filter((mode) => mode === "leader")).toHaveLength(1);
    expect(modes.filter((mode) => mode === "follower")).toHaveLength(2);
    expect(new Set(ensemble.members.map((member) => member.port)).size).toBe(3);
    expect(ensemble.connectString.split(",")).toEqual(ensemble.members.map((member) => member.connectString));
    expect(ensemble.members.map((member) => member.id)).toEqual([1, 2, 3]);
  });

  it("keeps serving writes with its leader killed, and the member rejoins after restart()", async () => {
    const leader = await ensemble.leader();
    expect(leader).toBeDefined();
    await leader!.kill();
    expect(leader!.running).toBe(false);
    await ensemble.waitForQuorum();

    await RawClient.with(ensemble.connectString, (client) =>
      client.create(root, "written without the old leader"),
    );

    await leader!.restart();
    expect(["leader", "follower"]).toContain(await leader!.mode());
    await RawClient.with(leader!.connectString, async (direct) => {
      // The rejoined member syncs from the new leader before it serves.
      expect(await waitFor(() => direct.exists(root))).toBe(true);
      expect(await direct.getString(root)).toBe("written without the old leader");
    });
  });

  it("stops serving without a majority and serves again when a second member comes back", async () => {
    const [first, second, third] = ensemble.members;
    await Promise.all([first!.kill(), second!.kill(), third!.kill()]);
    // Alone, a member runs but cannot serve: restart() must not wait for that.
    await first!.restart({ waitUntilServing: false });
    expect(await first!.fourLetterWord("ruok")).toBe("imok");
    expect(await first!.mode(500)).toBeUndefined();
    await second!.restart();
    expect(["leader", "follower"]).toContain(await first!.mode());
    await third!.restart();
    await ensemble.waitForQuorum();
  });

  it("keeps its data across restartAll()", async () => {
    const pidsBefore = ensemble.members.map((member) => member.pid);
    await ensemble.restartAll();
    const pidsAfter = ensemble.members.map((member) => member.pid);
    expect(pidsAfter.every((pid, i) => pid !== undefined && pid !== pidsBefore[i])).toBe(true);
    const kept = await RawClient.with(ensemble.connectString, (client) => client.getString(root));
    expect(kept).toBe("written without the old leader");
  });

  it("freezes a paused member and brings it back on resume()", async () => {
    const member = ensemble.members[0]!;
    member.pause();
    try {
      expect(await member.mode(500)).toBeUndefined();
      await ensemble.waitForQuorum();
    } finally {
      member.resume();
    }
    expect(await waitFor(() => member.mode(1000), { timeoutMs: 30_000 })).toMatch(/leader|follower/);
  });
});
