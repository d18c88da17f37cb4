import type { ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { startEnsemble, startTestNet, type TestHost, type TestNet, type ZkEnsemble } from "@zkgrid/testing";
import type { TestGrid } from "../e2e/grid.js";

/** A test net with a 3-member ensemble, each member on a host of its own (zk1, zk2, zk3). */
export interface EnsembleNet {
  net: TestNet;
  /** The members' hosts, zk1 to zk3. */
  members: TestHost[];
  /** Every host made here by name: the members' and the `more` asked for. */
  hosts: Map<string, TestHost>;
  ensemble: ZkEnsemble;
  /** Stops the ensemble and closes the net, with every process on its hosts. */
  close(): Promise<void>;
}

/**
 * Makes the net `name`, the members' hosts and then the hosts `more` (so they exist before the ensemble
 * starts), and starts the ensemble. A machine where the namespaces cannot be made fails here; nothing is
 * left behind when the ensemble does not start.
 */
export async function startEnsembleNet(name: string, more: string[] = []): Promise<EnsembleNet> {
  const net = await startTestNet({ name });
  try {
    const hosts = new Map<string, TestHost>();
    for (const host of ["zk1", "zk2", "zk3", ...more]) hosts.set(host, await net.addHost(host));
    const members = [...hosts.values()].slice(0, 3);
    const ensemble = await startEnsemble(3, { hosts: members, startTimeoutMs: 120_000 });
    return {
      net,
      members,
      hosts,
      ensemble,
      close: async () => {
        await ensemble.stop();
        await net.close();
      },
    };
  } catch (error) {
    await net.close();
    throw error;
  }
}

/**
 * Starts `bin` (a grid process) on `host` in `grid`'s dir and environment (plus `env`); its output goes to
 * `<dir>/<host name>.log`. The caller kills it.
 */
export function startOnHost(
  grid: TestGrid,
  host: TestHost,
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): ChildProcess {
  const out = openSync(join(grid.dir, `${host.name}.log`), "a");
  const child = host.spawn(process.execPath, [bin, ...args], {
    cwd: grid.dir,
    env: { ...grid.env, ...env },
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  return child;
}
