/**
 * One error class per ZooKeeper condition. Each carries the ZooKeeper `code`, the `path` it concerns
 * (relative to the client's root) and the underlying `cause`, plus `retryable`: whether trying the same
 * thing again later can succeed.
 */

import { markErrorClass, ZkgridError, type ZkgridErrorOptions } from "@zkgrid/errors";

/** ZooKeeper return codes (zookeeper.h). */
export const Code = {
  OK: 0,
  SYSTEM_ERROR: -1,
  RUNTIME_INCONSISTENCY: -2,
  DATA_INCONSISTENCY: -3,
  CONNECTION_LOSS: -4,
  MARSHALLING_ERROR: -5,
  UNIMPLEMENTED: -6,
  OPERATION_TIMEOUT: -7,
  BAD_ARGUMENTS: -8,
  INVALID_STATE: -9,
  API_ERROR: -100,
  NO_NODE: -101,
  NO_AUTH: -102,
  BAD_VERSION: -103,
  NO_CHILDREN_FOR_EPHEMERALS: -108,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
  INVALID_CALLBACK: -113,
  INVALID_ACL: -114,
  AUTH_FAILED: -115,
  CLOSING: -116,
  NOTHING: -117,
  SESSION_MOVED: -118,
  /** The server enforces authentication (`enforce.auth.enabled`) and this client has not authenticated. */
  SESSION_CLOSED_REQUIRE_AUTH: -124,
} as const;

export interface ZkErrorOptions {
  path?: string | undefined;
  cause?: unknown;
}

/** Base class of every error the client throws; `code` is the ZooKeeper return code. */
export class ZkError extends ZkgridError {
  static {
    markErrorClass(ZkError, "@zkgrid/core/ZkError");
  }
  override name = "ZkError";
  declare readonly code: number;
  readonly path: string | undefined;
  /** True when the same call may succeed later (after a reconnect or a new session). */
  readonly retryable: boolean = false;

  constructor(message: string, code: number, options: ZkErrorOptions = {}) {
    super(options.path === undefined ? message : `${message}: ${options.path}`, code, {
      cause: options.cause,
    });
    this.path = options.path;
  }
}

export class NoNodeError extends ZkError {
  static {
    markErrorClass(NoNodeError, "@zkgrid/core/NoNodeError");
  }
  override name = "NoNodeError";
  constructor(options?: ZkErrorOptions) {
    super("no node", Code.NO_NODE, options);
  }
}

export class NodeExistsError extends ZkError {
  static {
    markErrorClass(NodeExistsError, "@zkgrid/core/NodeExistsError");
  }
  override name = "NodeExistsError";
  constructor(options?: ZkErrorOptions) {
    super("node exists", Code.NODE_EXISTS, options);
  }
}

export class BadVersionError extends ZkError {
  static {
    markErrorClass(BadVersionError, "@zkgrid/core/BadVersionError");
  }
  override name = "BadVersionError";
  constructor(options?: ZkErrorOptions) {
    super("bad version", Code.BAD_VERSION, options);
  }
}

export class NotEmptyError extends ZkError {
  static {
    markErrorClass(NotEmptyError, "@zkgrid/core/NotEmptyError");
  }
  override name = "NotEmptyError";
  constructor(options?: ZkErrorOptions) {
    super("node has children", Code.NOT_EMPTY, options);
  }
}

/** The node's ACL does not grant this client's identities the permission the operation needs. */
export class NoAuthError extends ZkError {
  static {
    markErrorClass(NoAuthError, "@zkgrid/core/NoAuthError");
  }
  override name = "NoAuthError";
  constructor(options?: ZkErrorOptions) {
    super("not authorized (the node's ACL does not grant this client's credentials)", Code.NO_AUTH, options);
  }
}

/** The server refused this client's authentication; retrying cannot help. */
export class AuthFailedError extends ZkError {
  static {
    markErrorClass(AuthFailedError, "@zkgrid/core/AuthFailedError");
  }
  override name = "AuthFailedError";
  constructor(options?: ZkErrorOptions & { message?: string; code?: number }) {
    super(options?.message ?? "authentication failed", options?.code ?? Code.AUTH_FAILED, options);
  }
}

/**
 * The server requires authentication (`enforce.auth.enabled`) and this client gave no credentials of a
 * scheme it accepts. The server closes the connection after refusing the request; the client closes
 * itself, since retrying cannot help.
 */
export class AuthRequiredError extends AuthFailedError {
  static {
    markErrorClass(AuthRequiredError, "@zkgrid/core/AuthRequiredError");
  }
  override name = "AuthRequiredError";
  constructor(options?: ZkErrorOptions) {
    super({
      ...options,
      code: Code.SESSION_CLOSED_REQUIRE_AUTH,
      message:
        "authentication required: the ZooKeeper server refuses clients without credentials " +
        '(give digest credentials "user:password")',
    });
  }
}

export class InvalidAclError extends ZkError {
  static {
    markErrorClass(InvalidAclError, "@zkgrid/core/InvalidAclError");
  }
  override name = "InvalidAclError";
  constructor(options?: ZkErrorOptions) {
    super("invalid ACL", Code.INVALID_ACL, options);
  }
}

export class ConnectionLossError extends ZkError {
  static {
    markErrorClass(ConnectionLossError, "@zkgrid/core/ConnectionLossError");
  }
  override name = "ConnectionLossError";
  override readonly retryable = true;
  constructor(options?: ZkErrorOptions & { message?: string }) {
    super(options?.message ?? "connection loss", Code.CONNECTION_LOSS, options);
  }
}

export class OperationTimeoutError extends ZkError {
  static {
    markErrorClass(OperationTimeoutError, "@zkgrid/core/OperationTimeoutError");
  }
  override name = "OperationTimeoutError";
  override readonly retryable = true;
  constructor(options?: ZkErrorOptions) {
    super("operation timeout", Code.OPERATION_TIMEOUT, options);
  }
}

export class SessionExpiredError extends ZkError {
  static {
    markErrorClass(SessionExpiredError, "@zkgrid/core/SessionExpiredError");
  }
  override name = "SessionExpiredError";
  override readonly retryable = true;
  constructor(options?: ZkErrorOptions) {
    super("session expired", Code.SESSION_EXPIRED, options);
  }
}

export class SessionMovedError extends ZkError {
  static {
    markErrorClass(SessionMovedError, "@zkgrid/core/SessionMovedError");
  }
  override name = "SessionMovedError";
  override readonly retryable = true;
  constructor(options?: ZkErrorOptions) {
    super("session moved to another server", Code.SESSION_MOVED, options);
  }
}

export class NoChildrenForEphemeralsError extends ZkError {
  static {
    markErrorClass(NoChildrenForEphemeralsError, "@zkgrid/core/NoChildrenForEphemeralsError");
  }
  override name = "NoChildrenForEphemeralsError";
  constructor(options?: ZkErrorOptions) {
    super("ephemeral nodes may not have children", Code.NO_CHILDREN_FOR_EPHEMERALS, options);
  }
}

export class BadArgumentsError extends ZkError {
  static {
    markErrorClass(BadArgumentsError, "@zkgrid/core/BadArgumentsError");
  }
  override name = "BadArgumentsError";
  constructor(options?: ZkErrorOptions & { message?: string }) {
    super(options?.message ?? "bad arguments", Code.BAD_ARGUMENTS, options);
  }
}

export class InvalidStateError extends ZkError {
  static {
    markErrorClass(InvalidStateError, "@zkgrid/core/InvalidStateError");
  }
  override name = "InvalidStateError";
  constructor(options?: ZkErrorOptions) {
    super("invalid zhandle state", Code.INVALID_STATE, options);
  }
}

export class UnimplementedError extends ZkError {
  static {
    markErrorClass(UnimplementedError, "@zkgrid/core/UnimplementedError");
  }
  override name = "UnimplementedError";
  constructor(options?: ZkErrorOptions) {
    super("operation not implemented by the server", Code.UNIMPLEMENTED, options);
  }
}

/** The client was closed (by `close()`, a failed `connect()`, or a fatal authentication failure). */
export class ClosedError extends ZkError {
  static {
    markErrorClass(ClosedError, "@zkgrid/core/ClosedError");
  }
  override name = "ClosedError";
  constructor(options?: ZkErrorOptions & { message?: string }) {
    super(options?.message ?? "client closed", Code.CLOSING, options);
  }
}

/**
 * The `zookeeper` native addon could not be loaded (not installed, or not built for this Node.js);
 * the message says how to build it. Retrying cannot help until it is built.
 */
export class AddonUnavailableError extends ZkgridError {
  static {
    markErrorClass(AddonUnavailableError, "@zkgrid/core/AddonUnavailableError");
  }
  override name = "AddonUnavailableError";
  declare readonly code: "ADDON_UNAVAILABLE";
  constructor(message: string, options?: ZkgridErrorOptions) {
    super(message, "ADDON_UNAVAILABLE", options);
  }
}

/** Maps a ZooKeeper return code to its error class. `-116` (closing) is decided by the caller. */
export function errorFromCode(code: number, path?: string, cause?: unknown): ZkError {
  const options = { path, cause };
  switch (code) {
    case Code.NO_NODE:
      return new NoNodeError(options);
    case Code.NODE_EXISTS:
      return new NodeExistsError(options);
    case Code.BAD_VERSION:
      return new BadVersionError(options);
    case Code.NOT_EMPTY:
      return new NotEmptyError(options);
    case Code.NO_AUTH:
      return new NoAuthError(options);
    case Code.AUTH_FAILED:
      return new AuthFailedError(options);
    case Code.SESSION_CLOSED_REQUIRE_AUTH:
      return new AuthRequiredError(options);
    case Code.INVALID_ACL:
      return new InvalidAclError(options);
    case Code.CONNECTION_LOSS:
      return new ConnectionLossError(options);
    case Code.OPERATION_TIMEOUT:
      return new OperationTimeoutError(options);
    case Code.SESSION_EXPIRED:
      return new SessionExpiredError(options);
    case Code.SESSION_MOVED:
      return new SessionMovedError(options);
    case Code.NO_CHILDREN_FOR_EPHEMERALS:
      return new NoChildrenForEphemeralsError(options);
    case Code.BAD_ARGUMENTS:
      return new BadArgumentsError(options);
    case Code.INVALID_STATE:
      return new InvalidStateError(options);
    case Code.UNIMPLEMENTED:
      return new UnimplementedError(options);
    case Code.CLOSING:
      return new ClosedError(options);
    default:
      return new ZkError(`zookeeper error ${code}`, code, options);
  }
}

/** An error's message, or any other thrown value as text: for log lines and problem reports. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const isZkError = (e: unknown): e is ZkError => e instanceof ZkError;
export const isNoNode = (e: unknown): e is NoNodeError => e instanceof NoNodeError;
export const isNodeExists = (e: unknown): e is NodeExistsError => e instanceof NodeExistsError;
export const isBadVersion = (e: unknown): e is BadVersionError => e instanceof BadVersionError;
export const isNotEmpty = (e: unknown): e is NotEmptyError => e instanceof NotEmptyError;
export const isNoAuth = (e: unknown): e is NoAuthError => e instanceof NoAuthError;
export const isAuthFailed = (e: unknown): e is AuthFailedError => e instanceof AuthFailedError;
export const isConnectionLoss = (e: unknown): e is ConnectionLossError => e instanceof ConnectionLossError;
export const isOperationTimeout = (e: unknown): e is OperationTimeoutError =>
  e instanceof OperationTimeoutError;
export const isSessionExpired = (e: unknown): e is SessionExpiredError => e instanceof SessionExpiredError;
export const isNoChildrenForEphemerals = (e: unknown): e is NoChildrenForEphemeralsError =>
  e instanceof NoChildrenForEphemeralsError;
export const isBadArguments = (e: unknown): e is BadArgumentsError => e instanceof BadArgumentsError;
export const isInvalidState = (e: unknown): e is InvalidStateError => e instanceof InvalidStateError;
export const isClosed = (e: unknown): e is ClosedError => e instanceof ClosedError;
/** Connection loss, operation timeout, session moved or session expired: worth trying again later. */
export const isRetryable = (e: unknown): boolean => e instanceof ZkError && e.retryable;
