/**
 * One error class per ZooKeeper condition. Each carries the ZooKeeper `code`, the `path` it concerns
 * (relative to the client's root) and the underlying `cause`, plus `retryable`: whether trying the same
 * thing again later can succeed.
 */

import { codedErrorClass, markErrorClass, ZkgridError } from "@zkgrid/errors";

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

type ConditionOptions = ZkErrorOptions & { message?: string };

/** The ZooKeeper conditions whose class is fixed by a default message, a code and `retryable`. */
const conditions = {
  NoNodeError: { message: "no node", code: Code.NO_NODE },
  NodeExistsError: { message: "node exists", code: Code.NODE_EXISTS },
  BadVersionError: { message: "bad version", code: Code.BAD_VERSION },
  NotEmptyError: { message: "node has children", code: Code.NOT_EMPTY },
  NoAuthError: {
    message: "not authorized (the node's ACL does not grant this client's credentials)",
    code: Code.NO_AUTH,
  },
  InvalidAclError: { message: "invalid ACL", code: Code.INVALID_ACL },
  ConnectionLossError: { message: "connection loss", code: Code.CONNECTION_LOSS, retryable: true },
  OperationTimeoutError: { message: "operation timeout", code: Code.OPERATION_TIMEOUT, retryable: true },
  SessionExpiredError: { message: "session expired", code: Code.SESSION_EXPIRED, retryable: true },
  SessionMovedError: {
    message: "session moved to another server",
    code: Code.SESSION_MOVED,
    retryable: true,
  },
  NoChildrenForEphemeralsError: {
    message: "ephemeral nodes may not have children",
    code: Code.NO_CHILDREN_FOR_EPHEMERALS,
  },
  BadArgumentsError: { message: "bad arguments", code: Code.BAD_ARGUMENTS },
  InvalidStateError: { message: "invalid zhandle state", code: Code.INVALID_STATE },
  UnimplementedError: { message: "operation not implemented by the server", code: Code.UNIMPLEMENTED },
  ClosedError: { message: "client closed", code: Code.CLOSING },
} satisfies Record<string, { message: string; code: number; retryable?: boolean }>;

/**
 * The class of one condition above; `message` may refine its text. Marked as `@zkgrid/core/<name>`,
 * so `instanceof` holds across builds.
 */
function conditionClass<const Name extends keyof typeof conditions>(name: Name) {
  const condition: { message: string; code: number; retryable?: boolean } = conditions[name];
  class ConditionError extends ZkError {
    override name: Name = name;
    override readonly retryable: boolean = condition.retryable ?? false;
    constructor(options?: ConditionOptions) {
      super(options?.message ?? condition.message, condition.code, options);
    }
  }
  Object.defineProperty(ConditionError, "name", { value: name });
  markErrorClass(ConditionError, `@zkgrid/core/${name}`);
  return ConditionError;
}

export const NoNodeError = conditionClass("NoNodeError");
export const NodeExistsError = conditionClass("NodeExistsError");
export const BadVersionError = conditionClass("BadVersionError");
export const NotEmptyError = conditionClass("NotEmptyError");
/** The node's ACL does not grant this client's identities the permission the operation needs. */
export const NoAuthError = conditionClass("NoAuthError");
export const InvalidAclError = conditionClass("InvalidAclError");
export const ConnectionLossError = conditionClass("ConnectionLossError");
export const OperationTimeoutError = conditionClass("OperationTimeoutError");
export const SessionExpiredError = conditionClass("SessionExpiredError");
export const SessionMovedError = conditionClass("SessionMovedError");
export const NoChildrenForEphemeralsError = conditionClass("NoChildrenForEphemeralsError");
export const BadArgumentsError = conditionClass("BadArgumentsError");
export const InvalidStateError = conditionClass("InvalidStateError");
export const UnimplementedError = conditionClass("UnimplementedError");
/** The client was closed (by `close()`, a failed `connect()`, or a fatal authentication failure). */
export const ClosedError = conditionClass("ClosedError");

export type NoNodeError = InstanceType<typeof NoNodeError>;
export type NodeExistsError = InstanceType<typeof NodeExistsError>;
export type BadVersionError = InstanceType<typeof BadVersionError>;
export type NotEmptyError = InstanceType<typeof NotEmptyError>;
export type NoAuthError = InstanceType<typeof NoAuthError>;
export type InvalidAclError = InstanceType<typeof InvalidAclError>;
export type ConnectionLossError = InstanceType<typeof ConnectionLossError>;
export type OperationTimeoutError = InstanceType<typeof OperationTimeoutError>;
export type SessionExpiredError = InstanceType<typeof SessionExpiredError>;
export type SessionMovedError = InstanceType<typeof SessionMovedError>;
export type NoChildrenForEphemeralsError = InstanceType<typeof NoChildrenForEphemeralsError>;
export type BadArgumentsError = InstanceType<typeof BadArgumentsError>;
export type InvalidStateError = InstanceType<typeof InvalidStateError>;
export type UnimplementedError = InstanceType<typeof UnimplementedError>;
export type ClosedError = InstanceType<typeof ClosedError>;

/** The server refused this client's authentication; retrying cannot help. */
export class AuthFailedError extends ZkError {
  static {
    markErrorClass(AuthFailedError, "@zkgrid/core/AuthFailedError");
  }
  override name = "AuthFailedError";
  constructor(options?: ConditionOptions & { code?: number }) {
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

/**
 * The `zookeeper` native addon could not be loaded (not installed, or not built for this Node.js);
 * the message says how to build it. Retrying cannot help until it is built.
 */
export const AddonUnavailableError = codedErrorClass(
  "@zkgrid/core/AddonUnavailableError",
  "ADDON_UNAVAILABLE",
);
export type AddonUnavailableError = InstanceType<typeof AddonUnavailableError>;

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
