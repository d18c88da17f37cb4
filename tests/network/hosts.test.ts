import { execFileSync, spawnSync } from "node:child_process";
import {
  startTestNet,
  sweepTestNets,
  type TestHost,
  type TestNet,
  waitFor,
  type ZkEnsemble,
} from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EnsembleNet, startEnsembleNet } from "./ensemble-net.js";
import { HostClient } from "./host-client.js";

// Hosts need root and iproute2; a run that cannot make them fails here (in CI and out), it never skips.
const SESSION_TIMEOUT_MS = 6_000;

const namespaces = (): string[] =>
  execFileSync("ip", ["netns", "list"])
    .toString()
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(" ")[0]!);

describe("test hosts", () => {
  let testNet: EnsembleNet;
  let net: TestNet;
  let zk: TestHost[];
  let c1: TestHost;
  let c2: TestHost;
  let ensemble: ZkEnsemble;
  const clients: HostClient[] = [];

  beforeAll(async () => {
    testNet = await startEnsembleNet("hosts-test", ["c1", "c2"]);
    ({ net, members: zk, ensemble } = testNet);
    c1 = testNet.hosts.get("c1")!;
    c2 = testNet.hosts.get("c2")!;
  }, 240_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    await testNet?.close();
  });

  const clientOn = async (host: TestHost, connectString: string): Promise<HostClient> => {
    const client = await HostClient.start(host, connectString, SESSION_TIMEOUT_MS);
    clients.push(client);
    return client;
  };

  it("puts each ensemble member on its own host, and hosts reach each other", async () => {
    expect(ensemble.members.map((member) => member.host)).toEqual(zk.map((host) => host.address));
    expect(new Set(zk.map((host) => host.address)).size).toBe(3);
    expect(await ensemble.leader()).toBeDefined();
    for (const member of ensemble.members) {
      const client = await clientOn(c1, member.connectString);
      expect(await client.request("exists", "/")).toMatchObject({ ok: true });
      client.close();
    }
  });

  it("isolate cuts a host off while its client keeps running; heal brings it back", async () => {
    const cut = await clientOn(c1, ensemble.connectString);
    const kept = await clientOn(c2, ensemble.connectString);
    const cutFrom = cut.events.length;
    const keptFrom = kept.events.length;
    await net.isolate(c1, zk);
    try {
      await cut.waitForEvent("suspended", cutFrom);
      expect(cut.running).toBe(true);
      expect(await cut.request("exists", "/")).toMatchObject({ ok: false });
      expect(await kept.request("create", `/kept-${Date.now()}`)).toMatchObject({ ok: true });
      expect(kept.events.slice(keptFrom)).not.toContain("suspended");
    } finally {
      await net.heal(c1);
    }
    await cut.waitForEvent(["reconnected", "expired"], cutFrom);
    await waitFor(async () => (await cut.request("create", `/healed-${Date.now()}`)).ok, {
      timeoutMs: 30_000,
      message: "a write from the healed host",
    });
  });

  it("a 2 | 1 split leaves the majority writing and the minority member refusing writes", async () => {
    const leader = await ensemble.leader();
    expect(leader).toBeDefined();
    const minority = ensemble.members.indexOf(leader!);
    const majority = ensemble.members.filter((_, i) => i !== minority);
    const minorityHost = zk[minority]!;
    const majorityHosts = zk.filter((host) => host !== minorityHost);
    const onMajority = await clientOn(c1, majority.map((member) => member.connectString).join(","));
    const onMinority = await clientOn(c2, leader!.connectString);
    await net.partition([minorityHost], majorityHosts);
    try {
      // The cut-off leader stops serving once it loses its followers; the other two elect a new leader.
      await waitFor(async () => (await leader!.mode(1000)) === undefined, {
        timeoutMs: 60_000,
        message: "the minority member to stop serving",
      });
      expect(await onMinority.request("create", `/minority-${Date.now()}`)).toMatchObject({ ok: false });
      await waitFor(async () => (await onMajority.request("create", `/majority-${Date.now()}`)).ok, {
        timeoutMs: 60_000,
        message: "a write on the majority side",
      });
      expect(await onMinority.request("create", `/minority-${Date.now()}`)).toMatchObject({ ok: false });
    } finally {
      await net.heal();
    }
    await waitFor(async () => (await leader!.mode(1000)) === "follower", {
      timeoutMs: 60_000,
      message: "the old leader to rejoin as a follower",
    });
  });
});

describe("closing a test net", () => {
  it("kills its hosts' processes and leaves no namespace or bridge behind", async () => {
    const net = await startTestNet({ name: "close-test" });
    const made: string[] = [];
    try {
      for (const name of ["a", "b"]) made.push((await net.addHost(name)).namespace);
      const sleeper = net.hosts[0]!.spawn("sleep", ["600"]);
      const exited = new Promise((resolve) => sleeper.once("exit", resolve));
      expect(namespaces()).toEqual(expect.arrayContaining(made));
      await net.close();
      await exited;
      expect(sleeper.exitCode ?? sleeper.signalCode).not.toBeNull();
    } finally {
      await net.close();
    }
    expect(namespaces().filter((name) => made.includes(name))).toEqual([]);
    expect(() => execFileSync("ip", ["link", "show", net.bridge], { stdio: "ignore" })).toThrow();
  });

  it("sweepTestNets removes the leftovers of a run that died, and only those", async () => {
    const deadPid = spawnSync("true").pid!;
    const leftover = `zkgrid-${deadPid}-1-crashed`;
    const live = await startTestNet({ name: "sweep-test" });
    try {
      const liveHost = await live.addHost("a");
      execFileSync("ip", ["netns", "add", leftover]);
      expect(sweepTestNets()).toContain(leftover);
      expect(namespaces()).not.toContain(leftover);
      expect(namespaces()).toContain(liveHost.namespace);
    } finally {
      await live.close();
    }
  });
});
