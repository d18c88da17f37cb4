/** No usable ZooKeeper installation (or no Java runtime) was found. */
export class ZooKeeperNotFoundError extends Error {
  override readonly name = "ZooKeeperNotFoundError";
}

/** A server did not come up: it exited early, could not bind, or never answered. */
export class ServerStartError extends Error {
  override readonly name = "ServerStartError";
  /** The last lines of the server's log when it failed. */
  readonly logTail: string;
  /** True when the failure was a port that someone else took: a retry with fresh ports may work. */
  readonly portInUse: boolean;

  constructor(message: string, logTail: string, options?: ErrorOptions) {
    super(`${message}\n--- server log (tail) ---\n${logTail}`, options);
    this.logTail = logTail;
    this.portInUse = /Address already in use|BindException/.test(logTail);
  }
}

/** A polled condition or a wrapped promise did not finish in time. */
export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number, options?: ErrorOptions) {
    super(message, options);
    this.timeoutMs = timeoutMs;
  }
}

/** expireSession could not attach to the session to close it. */
export class SessionExpiryError extends Error {
  override readonly name = "SessionExpiryError";
}
