import { expireSession, startEnsemble, waitFor, type ZkEnsemble, type ZkServer } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { ZkClient } from "../src/index.js";
import { connectClient, nextEvent, recordEvents, startedForBlock, testRoot } from "./helpers.js";

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

describe("session under ensemble faults", () => {
  const ensemble = startedForBlock(() => startEnsemble(3));

  it("keeps its session, without an expired event, through restarts of the whole ensemble and a SIGKILL of its member", async () => {
    const warnings: string[] = [];
    const zk = await connectClient({
      connectString: ensemble().connectString,
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
      await ensemble().restartAll();
      await suspended;
      await backOnline(zk);
    }

    await waitFor(async () => (await memberHolding(ensemble(), sessionId)) !== undefined, {
      timeoutMs: 60_000,
    });
    const member = (await memberHolding(ensemble(), sessionId))!;
    await member.kill();
    // Issued while cut off: must land on the same session once it is back.
    const pending = zk.create("/killed", "");
    await backOnline(zk);
    expect(await pending).toBe("/killed");
    await member.restart();

    // The server kept the session all along: the ephemeral node made before the faults is still its.
    expect((await zk.exists("/eph"))?.ephemeralOwner).toBe(sessionId);
    expect(zk.sessionId).toBe(sessionId);
    expect(events.filter((e) => e.type === "expired" || e.type === "connected")).toEqual([]);
    expect(events.filter((e) => e.type === "reconnected").every((e) => e.sessionId === sessionId)).toBe(true);
    expect(warnings.filter((w) => w.includes("expired"))).toEqual([]);
    await zk.close();
  }, 300_000);

  it("still reports a session the ensemble really expired: expired, then connected with a new id", async () => {
    const zk = await connectClient({ connectString: ensemble().connectString, root: testRoot() });
    await zk.create("/eph", "", "ephemeral");
    const oldId = zk.sessionId!;
    const events = recordEvents(zk);
    const connected = nextEvent(zk, "connected");
    await expireSession(ensemble().connectString, zk.sessionCredentials()!);
    const ev = await connected;
    expect(ev.sessionId).not.toBe(oldId);
    const expiredAt = events.findIndex((e) => e.type === "expired");
    expect(events[expiredAt]).toEqual({ type: "expired", sessionId: oldId });
    expect(events.slice(expiredAt).map((e) => e.type)).toEqual(["expired", "connected"]);
    expect(await zk.exists("/eph")).toBeNull();
  }, 120_000);
});
