import { startEnsemble, waitFor, type ZkEnsemble, type ZkServer } from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ZkClient } from "@zkgrid/core";
import { connectClient, nextEvent, recordEvents, testRoot } from "../../packages/core/test/helpers.js";

/** The member whose `cons` lists a connection of `sessionId`, if any. */
async function memberHolding(ensemble: ZkEnsemble, sessionId: string): Promise<ZkServer | undefined> {
  const holds = await Promise.all(
    ensemble.members.map((member) =>
      member.fourLetterWord("cons").then(
        (text) => text.includes(`sid=0x${sessionId}`),
        () => false,
      ),
    ),
  );
  return ensemble.members[holds.indexOf(true)];
}

/** Waits until the client is connected and a read goes through on its session. */
async function backOnline(zk: ZkClient): Promise<void> {
  await waitFor(() => zk.state === "connected", { timeoutMs: 120_000 });
  await zk.exists("/");
}

/*
 * A client keeps its session through ensemble faults that the server survives with the session: the
 * whole ensemble restarted, the member the client is on SIGKILLed. Run by `pnpm test:chaos`, not in
 * CI: it still fails in some runs. The addon gives up on a handle after many polls without a reply
 * from a server (it reports that as an expiry); core resumes the session on a new handle, but the
 * addon's close of a handle that has meanwhile reconnected probably sends a close-session request: in
 * the failing runs the second handle was refused too and the session's ephemeral node was gone.
 */
describe("session under ensemble faults", () => {
  let ensemble: ZkEnsemble;
  beforeAll(async () => {
    ensemble = await startEnsemble(3);
  });
  afterAll(async () => {
    await ensemble?.stop();
  });

  it("keeps its session, without an expired event, through SIGKILLs of its member and restarts of the whole ensemble", async () => {
    const warnings: string[] = [];
    const zk = await connectClient({
      connectString: ensemble.connectString,
      root: testRoot(),
      // Long enough that the ensemble keeps the session through every outage below.
      sessionTimeoutMs: 30_000,
      opTimeoutMs: 120_000,
      logger: (level, msg) => {
        if (level !== "debug") warnings.push(msg);
      },
    });
    await zk.create("/eph", "", "ephemeral");
    const sessionId = zk.sessionId!;
    const events = recordEvents(zk);

    for (let round = 0; round < 3; round++) {
      const suspended = nextEvent(zk, "suspended");
      await ensemble.restartAll();
      await suspended;
      await backOnline(zk);
    }

    for (let round = 0; round < 1; round++) {
      await waitFor(async () => (await memberHolding(ensemble, sessionId)) !== undefined, {
        timeoutMs: 60_000,
      });
      const member = (await memberHolding(ensemble, sessionId))!;
      await member.kill();
      // Issued while cut off: must land on the same session once it is back.
      const pending = zk.create(`/killed-${round}`, "");
      await backOnline(zk);
      expect(await pending).toBe(`/killed-${round}`);
      await member.restart();
    }
    // The server kept the session all along: the ephemeral node made before the faults is still its.
    expect((await zk.exists("/eph"))?.ephemeralOwner).toBe(sessionId);
    expect(zk.sessionId).toBe(sessionId);
    expect(events.filter((e) => e.type === "expired" || e.type === "connected")).toEqual([]);
    expect(events.filter((e) => e.type === "reconnected").every((e) => e.sessionId === sessionId)).toBe(true);
    expect(warnings.filter((w) => w.includes("expired"))).toEqual([]);
  }, 600_000);
});
