/**
 * `@zkgrid/core`: ZooKeeper for TypeScript, with sessions that recover by themselves, typed errors,
 * protected creates, watches that never miss a change, a follower that runs handlers over them under
 * one error policy, and leader election.
 *
 * @example
 * ```ts
 * import { connect } from "@zkgrid/core";
 *
 * const zk = await connect({ connectString: "127.0.0.1:2181", root: "/demo" });
 * await zk.ensurePath("/workers");
 * const registered = zk.keepRunning(async ({ client }) => {
 *   await client.create("/workers/w1", "", "ephemeral"); // again after every session expiry
 * });
 * for await (const { children, added } of zk.watchChildren("/workers")) {
 *   console.log(children, added);
 *   if (children.includes("w1")) break;
 * }
 * await zk.close();
 * await registered; // resolves once the client is closed
 * ```
 *
 * @module
 */

export { addonStatus } from "./addon.js";
export { digestAcl, digestId, formatAcl, nodeAcl, OPEN_ACL, parseAcl, Perms } from "./acl.js";
export { connect, type SessionBoundClient, ZkClient } from "./client.js";
export { CredentialsError, readCredentials } from "./credentials.js";
export type { CredentialSources, GridCredentials } from "./credentials.js";
export * as errors from "./errors.js";
export { ChildFollows, Follower } from "./follow.js";
export {
  AddonUnavailableError,
  AuthFailedError,
  AuthRequiredError,
  BadArgumentsError,
  BadVersionError,
  ClosedError,
  Code,
  ConnectionLossError,
  InvalidAclError,
  InvalidStateError,
  isBadVersion,
  isClosed,
  isConnectionLoss,
  isNodeExists,
  isNoNode,
  isNotEmpty,
  isAuthFailed,
  isNoAuth,
  isRetryable,
  isSessionExpired,
  messageOf,
  NoAuthError,
  NoChildrenForEphemeralsError,
  NodeExistsError,
  NoNodeError,
  NotEmptyError,
  OperationTimeoutError,
  SessionExpiredError,
  SessionMovedError,
  UnimplementedError,
  ZkError,
} from "./errors.js";
export { clientConnectOptions } from "./connection-options.js";
export { forEachLimit, getOrNull, readEach } from "./reads.js";
export { RESPONSE_COUNTER_LIMIT } from "./session.js";
export { sleep } from "./sleep.js";
export { codedErrorClass, hasErrorCode, markErrorClass, ZkgridError } from "@zkgrid/errors";

export type { AddonStatus } from "./addon.js";
export type { FollowErrorAction, FollowEvent, FollowOptions, FollowPolicy, Watcher } from "./follow.js";
export type {
  Acl,
  Candidate,
  ChildrenChange,
  ConnectionEvent,
  ConnectionEventType,
  ConnectionOptions,
  ConnectionState,
  ConnectOptions,
  CreateMode,
  Data,
  DataChange,
  ElectionEvent,
  ElectionOptions,
  KeepRunningContext,
  LeaderElection,
  Leadership,
  Logger,
  LogLevel,
  Stat,
  WatchOptions,
  WatchStream,
} from "./types.js";
export type { ZkErrorOptions } from "./errors.js";
export type { ZkgridErrorOptions } from "@zkgrid/errors";
