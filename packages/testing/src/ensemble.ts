import { ServerStartError } from "./errors.js";
import { findZooKeeper } from "./find.js";
import { freePorts } from "./ports.js";
import { baseConfig, type ServerHost, type ServerOptions, serverSpecDefaults, ZkServer } from "./server.js";
import { waitFor } from "./wait.js";

const LOOPBACK: ServerHost = { address: "127.0.0.1", commandPrefix: [] };
const PORT_RETRIES = 3;

export interface EnsembleOptions extends Omit<ServerOptions, "port" | "dir" | "host"> {
  /** One test host per member (members[i] on hosts[i]); all on 127.0.0.1 when omitted. */
  hosts?: readonly ServerHost[];
}

/** n ZooKeeper servers on 127.0.0.1 forming one quorum. Made by startEnsemble(). */
export class ZkEnsemble {
  /** members[i] has myid i + 1. */
  readonly members: readonly ZkServer[];
  /** All members, comma-separated, for a client that should fail over. */
  readonly connectString: string;

  /** @internal use startEnsemble() */
  constructor(members: readonly ZkServer[]) {
    this.members = members;
    this.connectString = members.map((member) => member.connectString).join(",");
  }

  /** Stops every member (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((member) => member.stop()));
  }

  /** Stops every member, starts them all again with their data, and waits until all serve. */
  async restartAll(): Promise<void> {
    await this.stop();
    await launchAll(this.members);
  }

  /** The member that `srvr` reports as leader, if any. */
  async leader(): Promise<ZkServer | undefined> {
    const modes = await Promise.all(this.members.map((member) => member.mode(1000)));
    return this.members[modes.indexOf("leader")];
  }

  /** Waits until a majority of members serve as leader or follower. */
  async waitForQuorum(timeoutMs = 60_000): Promise<void> {
    const majority = Math.floor(this.members.length / 2) + 1;
    await waitFor(
      async () => {
        const modes = await Promise.all(this.members.map((member) => member.mode(1000)));
        return modes.filter((mode) => mode !== undefined).length >= majority;
      },
      { timeoutMs, intervalMs: 100, message: `a quorum of ${majority} serving members` },
    );
  }
}

/**
 * Starts `n` servers on free 127.0.0.1 client, quorum and election ports, and resolves once every member
 * serves as leader or follower. Throws ServerStartError with the failing member's log tail.
 */
export async function startEnsemble(n = 3, options: EnsembleOptions = {}): Promise<ZkEnsemble> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`an ensemble needs at least one member, got ${n}`);
  if (options.hosts !== undefined && options.hosts.length !== n) {
    throw new RangeError(`an ensemble of ${n} needs ${n} hosts, got ${options.hosts.length}`);
  }
  const hostOf = (id: number): ServerHost => options.hosts?.[id - 1] ?? LOOPBACK;
  const zookeeper = options.zookeeper ?? (await findZooKeeper({ install: options.install ?? false }));
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(3 * n);
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    const servers = Object.fromEntries(
      ids.map((id) => [
        `server.${id}`,
        `${hostOf(id).address}:${ports[3 * (id - 1) + 1]}:${ports[3 * (id - 1) + 2]}`,
      ]),
    );
    const members = ids.map((id) => {
      const clientPort = ports[3 * (id - 1)]!;
      return new ZkServer({
        ...serverSpecDefaults(zookeeper, options, hostOf(id)),
        port: clientPort,
        id,
        config: { ...baseConfig(options, hostOf(id)), clientPort, ...servers, ...options.config },
      });
    });
    try {
      await launchAll(members);
      return new ZkEnsemble(members);
    } catch (error) {
      const retry = error instanceof ServerStartError && error.portInUse;
      if (!retry || attempt >= PORT_RETRIES) throw error;
    }
  }
}

/** Starts all members at once (a quorum needs a majority up); on the first failure, kills them all. */
async function launchAll(members: readonly ZkServer[]): Promise<void> {
  const launches = members.map((member) => member.launch(true));
  try {
    await Promise.all(launches);
  } catch (error) {
    await Promise.all(members.map((member) => member.kill()));
    await Promise.allSettled(launches);
    throw error;
  }
}
