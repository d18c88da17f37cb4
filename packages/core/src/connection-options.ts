import type { ConnectOptions } from "./types.js";

/**
 * What `connect()` needs from the options of a part of the grid that opens its own client: the
 * server, the session and the credentials, without `root` (that part keeps the grid's root as its
 * own path, not as the client's chroot) and without the part's other options.
 */
export function clientConnectOptions(
  options: Omit<ConnectOptions, "root" | "opTimeoutMs" | "signal">,
): ConnectOptions {
  const { connectString, auth, acl, sessionTimeoutMs, connectTimeoutMs, logger } = options;
  return {
    connectString,
    ...(auth === undefined ? {} : { auth }),
    ...(acl === undefined ? {} : { acl }),
    ...(sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs }),
    ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
    ...(logger === undefined ? {} : { logger }),
  };
}
