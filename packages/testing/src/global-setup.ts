import type { TestProject } from "vitest/node";
import { findZooKeeper } from "./find.js";
import { startServer } from "./server.js";
import "./vitest-context.js";

/**
 * vitest globalSetup: finds (or apt-installs) ZooKeeper, starts one standalone server for the whole run and
 * provides its connect string as `inject("zkConnectString")`. Tests isolate themselves by root path.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const zookeeper = await findZooKeeper({ install: true });
  const server = await startServer({ zookeeper });
  project.provide("zkConnectString", server.connectString);
  return async () => {
    await server.stop();
  };
}
