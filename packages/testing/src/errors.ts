import { codedErrorClass, markErrorClass, ZkgridError, type ZkgridErrorOptions } from "@zkgrid/errors";

/** No usable ZooKeeper installation (or no Java runtime) was found. */
export const ZooKeeperNotFoundError = codedErrorClass(
  "@zkgrid/testing/ZooKeeperNotFoundError",
  "ZOOKEEPER_NOT_FOUND",
);
export type ZooKeeperNotFoundError = InstanceType<typeof ZooKeeperNotFoundError>;

/** A server did not come up: it exited early, could not bind, or never answered. */
export class ServerStartError extends ZkgridError {
  static {
    markErrorClass(ServerStartError, "@zkgrid/testing/ServerStartError");
  }
  override readonly name = "ServerStartError";
  declare readonly code: "SERVER_START_FAILED";
  /** The last lines of the server's log when it failed. */
  readonly logTail: string;
  /** True when the failure was a port that someone else took: a retry with fresh ports may work. */
  readonly portInUse: boolean;

  constructor(message: string, logTail: string, options?: ZkgridErrorOptions) {
    super(`${message}\n--- server log (tail) ---\n${logTail}`, "SERVER_START_FAILED", options);
    this.logTail = logTail;
    this.portInUse = /Address already in use|BindException/.test(logTail);
  }
}

/** A polled condition or a wrapped promise did not finish in time. */
export class WaitTimeoutError extends ZkgridError {
  static {
    markErrorClass(WaitTimeoutError, "@zkgrid/testing/WaitTimeoutError");
  }
  override readonly name = "WaitTimeoutError";
  declare readonly code: "WAIT_TIMEOUT";
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number, options?: ZkgridErrorOptions) {
    super(message, "WAIT_TIMEOUT", options);
    this.timeoutMs = timeoutMs;
  }
}

/** expireSession could not attach to the session to close it. */
export const SessionExpiryError = codedErrorClass(
  "@zkgrid/testing/SessionExpiryError",
  "SESSION_EXPIRY_FAILED",
);
export type SessionExpiryError = InstanceType<typeof SessionExpiryError>;
