import { expireSession, startEnsemble, type ZkEnsemble } from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectClient, nextEvent, recordEvents, testRoot } from "./helpers.js";

describe("session under ensemble faults", () => {
  let ensemble: ZkEnsemble;
  beforeAll(async () => {
    ensemble = await startEnsemble(3);
  });
  afterAll(async () => {
    await ensemble?.stop();
  });

  it("still reports a session the ensemble really expired: expired, then connected with a new id", async () => {
    const zk = await connectClient({ connectString: ensemble.connectString, root: testRoot() });
    await zk.create("/eph", "", "ephemeral");
    const oldId = zk.sessionId!;
    const events = recordEvents(zk);
    const connected = nextEvent(zk, "connected");
    await expireSession(ensemble.connectString, zk.sessionCredentials()!);
    const ev = await connected;
    expect(ev.sessionId).not.toBe(oldId);
    const expiredAt = events.findIndex((e) => e.type === "expired");
    expect(events[expiredAt]).toEqual({ type: "expired", sessionId: oldId });
    expect(events.slice(expiredAt).map((e) => e.type)).toEqual(["expired", "connected"]);
    expect(await zk.exists("/eph")).toBeNull();
  }, 120_000);
});
