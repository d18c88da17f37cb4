import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Starts `server` listening on `port` (0: any free one) at `host`. Resolves with the port it got and
 * the origin to show, an IPv6 address in brackets.
 */
export async function listen(
  server: Server,
  port: number,
  host: string,
): Promise<{ origin: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return { origin: `http://${shownHost}:${address.port}`, port: address.port };
}

/** Stops listening and drops the open connections, whose keep-alive would otherwise hold it open. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
