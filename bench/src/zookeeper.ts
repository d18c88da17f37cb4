import type { ZkServer } from "@zkgrid/testing";

/**
 * What the server says about its load. The zxid's low 32 bits count the transactions (writes) of the
 * current epoch, one per create, set or delete, so its delta over a run counts writes exactly; a
 * standalone server never changes epoch.
 */
export interface ServerCounters {
  zxid: bigint;
  packetsReceived: number;
  bytesReceived: number;
  maxResponseBytes: number;
}

export async function readCounters(server: ZkServer): Promise<ServerCounters> {
  const [srvr, mntr] = await Promise.all([server.fourLetterWord("srvr"), server.fourLetterWord("mntr")]);
  const zxid = /^Zxid: (0x[0-9a-f]+)/im.exec(srvr)?.[1];
  if (zxid === undefined) throw new Error(`no Zxid in srvr's reply: ${srvr}`);
  const metric = mntrMetric(mntr);
  return {
    zxid: BigInt(zxid),
    packetsReceived: metric("zk_packets_received"),
    bytesReceived: metric("zk_bytes_received_count"),
    maxResponseBytes: metric("zk_max_client_response_size"),
  };
}

/** Writes between two readings. */
export function writesBetween(before: ServerCounters, after: ServerCounters): number {
  return Number((after.zxid & 0xffffffffn) - (before.zxid & 0xffffffffn));
}

/**
 * Waits until the server has taken no write for `quietMs` (the grid's clean-up deletes that trail a
 * run), at most `timeoutMs`. Returns the counters then.
 */
export async function waitQuiet(
  server: ZkServer,
  quietMs = 300,
  timeoutMs = 10_000,
): Promise<ServerCounters> {
  const deadline = Date.now() + timeoutMs;
  let last = await readCounters(server);
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = await readCounters(server);
    if (now.zxid !== last.zxid) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) {
      return now;
    }
  }
  return last;
}

/** The version `srvr` reports, without the build noise ("3.8.0"). */
export async function serverVersion(server: ZkServer): Promise<string> {
  const srvr = await server.fourLetterWord("srvr");
  return /^Zookeeper version: ([0-9][^-,\s]*)/m.exec(srvr)?.[1] ?? "unknown";
}

/** What the server holds and the largest reply it sent, from its own counters (`mntr`). */
export interface ServerShape {
  znodes: number;
  watches: number;
  connections: number;
  /** zk_max_client_response_size: since the server started or its stats were last reset (`srst`). */
  maxResponseBytes: number;
}

export async function readServerShape(server: ZkServer): Promise<ServerShape> {
  const metric = mntrMetric(await server.fourLetterWord("mntr"));
  return {
    znodes: metric("zk_znode_count"),
    watches: metric("zk_watch_count"),
    connections: metric("zk_num_alive_connections"),
    maxResponseBytes: metric("zk_max_client_response_size"),
  };
}

/** Reads one counter out of `mntr`'s reply. */
function mntrMetric(mntr: string): (name: string) => number {
  return (name) => {
    const value = new RegExp(`^${name}\\s+(-?\\d+)`, "m").exec(mntr)?.[1];
    if (value === undefined) throw new Error(`no ${name} in mntr's reply`);
    return Number(value);
  };
}
