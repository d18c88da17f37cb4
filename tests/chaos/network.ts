import { type ServerHost, type TestHost, type TestNet, waitFor, type ZkEnsemble } from "@zkgrid/testing";
import { startEnsembleNet } from "../network/ensemble-net.js";
import { ChaosRun } from "./scenario.js";

/** Hosts for the masters: the first two, and one for a third should the schedule ever start one. */
const MASTER_HOSTS = ["m1", "m2", "m3"];

/**
 * The chaos run on network-namespace hosts (@zkgrid/testing's startTestNet): each ensemble member,
 * master and worker on a host of its own, and faults that are partitions rather than signals, each
 * healed: a worker cut off from every member, the leading master cut off, and the ensemble split 2 | 1
 * with the leading master's member on the minority side. The ledger is the same as the signal faults'.
 */
export class NetworkChaosRun extends ChaosRun {
  private net: TestNet | undefined;
  private readonly hosts = new Map<string, TestHost>();

  protected override async startEnsemble(): Promise<ZkEnsemble> {
    const { net, hosts, ensemble } = await startEnsembleNet("chaos-net", [
      ...MASTER_HOSTS,
      ...this.workerNames,
    ]);
    this.net = net;
    for (const [name, host] of hosts) this.hosts.set(name, host);
    return ensemble;
  }

  protected override hostOf(name: string): ServerHost | undefined {
    return this.hosts.get(name);
  }

  protected override async faultRound(round: number): Promise<void> {
    await this.isolateWorker(this.pick(round, 0));
    await this.progress();
    await this.isolateLeadingMaster();
    await this.progress();
    await this.splitEnsemble();
    await this.progress();
  }

  override async close(options: { keepLogs?: boolean } = {}): Promise<void> {
    await super.close(options);
    await this.net?.close();
  }

  private host(name: string): TestHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no test host ${name}`);
    return host;
  }

  private get testNet(): TestNet {
    if (this.net === undefined) throw new Error("not started");
    return this.net;
  }

  /**
   * A worker running tasks is cut off from every member until the leader has fenced its session; then
   * healed. It stops its tasks itself (its cutoff stop), and registers a new session once healed.
   */
  private async isolateWorker(worker: string): Promise<void> {
    const c = this.c;
    await this.whenRunning(worker);
    const session = await c.retry(() => c.workerSession(worker), `${worker}'s session`);
    const host = this.host(worker);
    await this.testNet.isolate(host);
    this.losses.push({ worker, at: Date.now(), cause: "isolated from every member" });
    this.count("isolate a worker running tasks from every member past its session timeout, then heal");
    try {
      await this.orCrash(
        waitFor(
          async () =>
            (await c.workerSession(worker)) !== session &&
            !(await c.exists(`${c.layout.reports}/${worker}@${session}`)),
          { timeoutMs: 90_000, intervalMs: 100, message: `${worker}'s session ${session} to be fenced` },
        ),
      );
    } finally {
      await this.testNet.heal(host);
    }
    await this.orCrash(
      waitFor(
        async () => {
          const now = await c.workerSession(worker);
          return now !== undefined && now !== session;
        },
        { timeoutMs: 90_000, intervalMs: 100, message: `${worker} to register a new session` },
      ),
    );
  }

  /** The leading master is cut off from every member: a standby takes over; healed, it follows. */
  private async isolateLeadingMaster(): Promise<void> {
    await this.whenAnyRunning();
    const leader = await this.leader();
    const host = this.host(leader.name);
    await this.testNet.isolate(host);
    this.count("isolate the leading master from every member past its session timeout, then heal");
    try {
      await this.newLeaderOtherThan(leader.name);
      // Let the new leader act while the old one still believes it leads.
      await this.progress();
    } finally {
      await this.testNet.heal(host);
    }
  }

  /**
   * The ensemble split 2 | 1, the leading master on the minority side with the member it is connected
   * to; everything else (the standby, the workers, the suite's own client) stays with the majority.
   */
  private async splitEnsemble(): Promise<void> {
    const ensemble = this.ensemble as ZkEnsemble;
    await this.whenAnyRunning();
    const leader = await this.leader();
    const leaderHost = this.host(leader.name);
    const member = await this.memberOf(leaderHost);
    const minority = [member, leaderHost];
    const majority = this.testNet.hosts.filter((host) => !minority.includes(host));
    await this.testNet.partition(minority, majority);
    this.count("split the ensemble 2 | 1, the leading master's member on the minority side, then heal");
    try {
      await this.newLeaderOtherThan(leader.name);
      await this.progress();
    } finally {
      await this.testNet.heal();
    }
    await ensemble.waitForQuorum(60_000);
  }

  /** The member host `host` has its ZooKeeper connection to (its established TCP peer). */
  private async memberOf(host: TestHost): Promise<TestHost> {
    const members = ["zk1", "zk2", "zk3"].map((name) => this.host(name));
    return waitFor(
      async () => {
        const { stdout } = await host.exec("ss", ["-Htn", "state", "established"]);
        const peers = stdout.split("\n").map((line) => line.trim().split(/\s+/).at(-1) ?? "");
        return members.find((m) => peers.some((peer) => peer.startsWith(`${m.address}:`)));
      },
      { timeoutMs: 30_000, intervalMs: 200, message: `${host.name}'s ZooKeeper member` },
    );
  }
}
