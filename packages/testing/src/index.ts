/**
 * Real ZooKeeper servers for tests and local grids: standalone servers and ensembles on loopback ports
 * or on test hosts (network namespaces: `startTestNet()`, with isolate, partition and heal, and
 * `startSlowLink()` for a delayed, lossy link without netem), with stop,
 * kill, pause, restart and session expiry. Every JVM dies with the process that started it,
 * even when that process is SIGKILLed.
 *
 * @example
 * ```ts
 * import { startServer, startEnsemble } from "@zkgrid/testing";
 *
 * const server = await startServer();          // standalone, tickTime 500 ms
 * console.log(server.connectString);           // "127.0.0.1:41234"
 * await server.restart();                      // same port, same data
 * await server.stop();
 *
 * const ensemble = await startEnsemble(3);
 * await ensemble.members[0]!.kill();           // the other two still form a quorum
 * await ensemble.stop();
 * ```
 *
 * @module
 */
import "./vitest-context.js";

export { startEnsemble, ZkEnsemble } from "./ensemble.js";
export { ServerStartError, SessionExpiryError, WaitTimeoutError, ZooKeeperNotFoundError } from "./errors.js";
export { findJava, findZooKeeper } from "./find.js";
export { fourLetterWord, serverMode } from "./four-letter.js";
export { NetCommandError, startTestNet, sweepTestNets, TestHost, TestNet } from "./hosts.js";
export { freePorts } from "./ports.js";
export { isProcessRunning } from "./process-state.js";
export { seededRandom } from "./random.js";
export { expireSession } from "./session.js";
export { startSlowLink } from "./slow-link.js";
export { startServer, ZkServer } from "./server.js";
export { waitFor, withTimeout } from "./wait.js";

export type { EnsembleOptions } from "./ensemble.js";
export type { FindZooKeeperOptions, ZooKeeperInstallation } from "./find.js";
export type { ServerMode } from "./four-letter.js";
export type { CommandResult, RunOptions, TestNetOptions } from "./hosts.js";
export type { ExpireSessionOptions, SessionCredentials } from "./session.js";
export type { SlowLink, SlowLinkOptions } from "./slow-link.js";
export type { ConfigValue, RestartOptions, ServerHost, ServerOptions } from "./server.js";
export type { WaitForOptions } from "./wait.js";
