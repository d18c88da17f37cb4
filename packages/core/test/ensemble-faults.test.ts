import { expireSession, startEnsemble, waitFor, type ZkEnsemble, type ZkServer } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { Logger, ZkClient } from "../src/index.js";
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

/**
 * Where things stood when a wait failed, for its error message: which members serve, the client's last
 * log lines, and each member's log tail. A failure in CI is then read off its own output.
 */
async function situation(ensemble: ZkEnsemble, clientLog: readonly string[]): Promise<string> {
  const modes = await Promise.all(ensemble.members.map((member) => member.mode(1000)));
  return [
    `members: ${ensemble.members.map((m, i) => `${m.connectString} ${modes[i] ?? "not serving"}`).join(", ")}`,
    "--- client log (last 20 lines) ---",
    ...clientLog.slice(-20),
    ...ensemble.members.flatMap((m) => [`--- ${m.connectString} log (last 15 lines) ---`, m.logTail(15)]),
  ].join("\n");
}

/** `step`, or its error with the situation appended. */
async function explained<T>(
  ensemble: ZkEnsemble,
  clientLog: readonly string[],
  step: Promise<T>,
): Promise<T> {
  try {
    return await step;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n${await situation(ensemble, clientLog)}`, { cause: error });
  }
}

/**
 * A logger that keeps every line the client logs (with the time), and separately the messages of its
 * warnings and errors.
 */
function keptLog(): { lines: string[]; warnings: string[]; logger: Logger } {
  const lines: string[] = [];
  const warnings: string[] = [];
  return {
    lines,
    warnings,
    logger: (level, msg, fields) => {
      lines.push(`${new Date().toISOString().slice(11, 23)} ${level} ${msg} ${JSON.stringify(fields ?? {})}`);
      if (level !== "debug") warnings.push(msg);
    },
  };
}

/** Waits until the client is connected and a read goes through on its session. */
async function backOnline(zk: ZkClient, ensemble: ZkEnsemble, clientLog: readonly string[]): Promise<void> {
  const online = (async () => {
    await waitFor(() => zk.state === "connected", { timeoutMs: 120_000, message: "client state connected" });
    await zk.exists("/");
  })();
  await explained(ensemble, clientLog, online);
}

describe("session under ensemble faults", () => {
  const ensemble = startedForBlock(() => startEnsemble(3));

  it("keeps its session, without an expired event, through restarts of the whole ensemble and a SIGKILL of its member", async () => {
    const log = keptLog();
    const zk = await connectClient({
      connectString: ensemble().connectString,
      root: testRoot(),
      // Long enough that the ensemble keeps the session through every outage below.
      sessionTimeoutMs: 30_000,
      opTimeoutMs: 120_000,
      logger: log.logger,
    });
    await zk.create("/eph", "", "ephemeral");
    const sessionId = zk.sessionId!;
    const events = recordEvents(zk);

    for (let round = 0; round < 3; round++) {
      const suspended = nextEvent(zk, "suspended");
      await ensemble().restartAll();
      await suspended;
      await backOnline(zk, ensemble(), log.lines);
    }

    await waitFor(async () => (await memberHolding(ensemble(), sessionId)) !== undefined, {
      timeoutMs: 60_000,
    });
    const member = (await memberHolding(ensemble(), sessionId))!;
    await member.kill();
    // Issued while cut off: must land on the same session once it is back.
    const pending = zk.create("/killed", "");
    await backOnline(zk, ensemble(), log.lines);
    expect(await pending).toBe("/killed");
    await member.restart();

    // The server kept the session all along: the ephemeral node made before the faults is still its.
    expect((await zk.exists("/eph"))?.ephemeralOwner).toBe(sessionId);
    expect(zk.sessionId).toBe(sessionId);
    expect(events.filter((e) => e.type === "expired" || e.type === "connected")).toEqual([]);
    expect(events.filter((e) => e.type === "reconnected").every((e) => e.sessionId === sessionId)).toBe(true);
    expect(log.warnings.filter((w) => w.includes("expired"))).toEqual([]);
    await zk.close();
  }, 300_000);

  it("still reports a session the ensemble really expired: expired, then connected with a new id", async () => {
    const log = keptLog();
    const zk = await explained(
      ensemble(),
      log.lines,
      connectClient({ connectString: ensemble().connectString, root: testRoot(), logger: log.logger }),
    );
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
