import { expireSession, waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { ElectionEvent, LeaderElection, Leadership, ZkClient } from "../src/index.js";
import { connectClient, nextEvent, sharedConnectString, TcpProxy, testRoot } from "./helpers.js";

interface Candidate {
  name: string;
  client: ZkClient;
  election: LeaderElection;
  events: ElectionEvent[];
  consumed: Promise<void>;
}

/**
 * Every election event of every candidate in the order they happened (one process, one event loop).
 * Checks on each event that at most one candidate is acting as leader (elected or resumed, not yet
 * suspended, lost or ended).
 */
class Referee {
  readonly log: string[] = [];
  readonly acting = new Set<string>();
  maxActing = 0;

  watch(name: string, election: LeaderElection, events: ElectionEvent[]): Promise<void> {
    return (async () => {
      for await (const ev of election) {
        events.push(ev);
        this.log.push(`${name}:${ev.type}`);
        if (ev.type === "elected" || ev.type === "resumed") this.acting.add(name);
        else this.acting.delete(name);
        this.maxActing = Math.max(this.maxActing, this.acting.size);
      }
      this.acting.delete(name);
      this.log.push(`${name}:end`);
    })();
  }
}

async function join(
  referee: Referee,
  root: string,
  name: string,
  options: { connectString?: string; sessionTimeoutMs?: number } = {},
) {
  const client = await connectClient({ root, ...options });
  const election = client.election("/leader", { data: name });
  const events: ElectionEvent[] = [];
  const candidate: Candidate = {
    name,
    client,
    election,
    events,
    consumed: referee.watch(name, election, events),
  };
  // Candidates queue in the order their nodes are created: wait for ours before anyone else joins.
  await waitFor(async () => (await election.candidates()).some((c) => c.data.toString() === name));
  return candidate;
}

function leaders(candidates: Candidate[]): Candidate[] {
  return candidates.filter((c) => c.election.isLeader);
}

describe("leader election", () => {
  it("elects exactly one of several candidates and fails over in order as leaders close", async () => {
    const root = testRoot();
    const referee = new Referee();
    const candidates: Candidate[] = [];
    for (const name of ["a", "b", "c", "d"]) candidates.push(await join(referee, root, name));

    const epochs: number[] = [];
    const alive = [...candidates];
    while (alive.length > 0) {
      await waitFor(() => leaders(alive).length === 1);
      const [leader] = leaders(alive);
      const leadership = await leader!.election.leading();
      expect(leadership.node).toMatch(/^\/leader\/_c_[0-9a-f-]{36}-n_\d{10}$/);
      expect(leadership.sessionId).toBe(leader!.client.sessionId);
      epochs.push(leadership.epoch);
      // Candidates join in order, so the oldest candidate left leads.
      expect(leader).toBe(alive[0]);
      const list = await alive[0]!.election.candidates();
      expect(list.map((c) => c.data.toString())).toEqual(alive.map((c) => c.name));
      expect(list[0]!.seq).toBe(leadership.epoch);
      await leader!.client.close();
      expect(leadership.signal.aborted).toBe(true);
      expect(leader!.election.isLeader).toBe(false);
      alive.shift();
    }
    await Promise.all(candidates.map((c) => c.consumed));
    expect(epochs).toEqual([...epochs].sort((x, y) => x - y));
    expect(new Set(epochs).size).toBe(4);
    expect(referee.maxActing).toBe(1);
    expect(referee.log.filter((line) => line.endsWith(":elected"))).toEqual([
      "a:elected",
      "b:elected",
      "c:elected",
      "d:elected",
    ]);
  });

  it("on expiry the leader hears lost, a successor with a higher epoch takes over, and the old one re-enters", async () => {
    const root = testRoot();
    const referee = new Referee();
    const a = await join(referee, root, "a");
    const first = await a.election.leading();
    const b = await join(referee, root, "b");
    const c = await join(referee, root, "c");

    await expireSession(sharedConnectString(), a.client.sessionCredentials()!);
    await waitFor(() => a.events.some((e) => e.type === "lost"));
    expect(first.signal.aborted).toBe(true);
    const second = await b.election.leading();
    expect(second.epoch).toBeGreaterThan(first.epoch);
    expect(c.election.isLeader).toBe(false);

    // a is back as a candidate with a new node, behind b and c.
    await waitFor(
      async () => (await b.election.candidates()).map((x) => x.data.toString()).join() === "b,c,a",
    );
    expect(a.election.isLeader).toBe(false);
    expect(a.events.map((e) => e.type).filter((t) => t === "elected" || t === "lost")).toEqual([
      "elected",
      "lost",
    ]);
    // No "one leader at a time" claim here: the server ends a's session and elects b before a can hear
    // of it. That window is what the epoch is for (conditional writes fence the stale leader).
    for (const x of [a, b, c]) await x.election.stop();
  });

  it("tells the leader its leadership is in doubt while the connection is down, and resumed when it is back", async () => {
    const root = testRoot();
    const proxy = await TcpProxy.start(sharedConnectString());
    const referee = new Referee();
    const a = await join(referee, root, "a", { connectString: proxy.connectString, sessionTimeoutMs: 2000 });
    const b = await join(referee, root, "b");
    const leadership: Leadership = await a.election.leading();

    const suspended = nextEvent(a.client, "suspended");
    proxy.setMode("blackhole");
    await suspended;
    await waitFor(() => a.events.at(-1)?.type === "suspended");
    expect(a.election.isLeader).toBe(false);
    expect(a.election.leadership).toBe(leadership);
    expect(leadership.signal.aborted).toBe(false);

    proxy.setMode("pass");
    await waitFor(() => a.events.at(-1)?.type === "resumed");
    expect(a.election.isLeader).toBe(true);
    expect((await a.election.leading()).epoch).toBe(leadership.epoch);
    expect(b.election.isLeader).toBe(false);
    expect(a.events.map((e) => e.type)).toEqual(["elected", "suspended", "resumed"]);
    await a.election.stop();
    await b.election.leading();
    await b.election.stop();
  });

  it("stop() deletes the candidate node, ends iteration and hands leadership over", async () => {
    const root = testRoot();
    const referee = new Referee();
    const a = await join(referee, root, "a");
    const b = await join(referee, root, "b");
    const leadership = await a.election.leading();
    await a.election.stop();
    await a.consumed;
    expect(a.election.isLeader).toBe(false);
    expect(leadership.signal.aborted).toBe(true);
    expect(await a.client.exists(leadership.node)).toBeNull();
    await expect(a.election.leading()).rejects.toThrow(/election stopped/);
    await b.election.leading();
    expect(referee.log).toEqual(["a:elected", "a:end", "b:elected"]);
    await b.election.stop();
  });

  it("a leader whose node is deleted by someone else hears lost and enters again", async () => {
    const root = testRoot();
    const referee = new Referee();
    const a = await join(referee, root, "a");
    const admin = await connectClient({ root });
    const leadership = await a.election.leading();
    await admin.delete(leadership.node);
    await waitFor(() => a.events.filter((e) => e.type === "elected").length === 2);
    expect(a.events.map((e) => e.type)).toEqual(["elected", "lost", "elected"]);
    const again = await a.election.leading();
    expect(again.epoch).toBeGreaterThan(leadership.epoch);
    await a.election.stop();
  });
});
