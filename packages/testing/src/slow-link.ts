import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { TestHost } from "./hosts.js";

/*
 * A slow, lossy link without `tc netem` (kernels built without it): a TCP relay on the host delays each
 * chunk, in order, by delayMs ± jitterMs in each direction, and nftables rules on the host's link drop
 * packets at random (`numgen random`), which TCP retransmits. The host's process connects to the relay's
 * ports on its own loopback instead of to the servers.
 */
const LINK = "eth0";
const TABLE = "zkgrid_slow";

export interface SlowLinkOptions {
  /** The servers to reach through the link: a connect string, "address:port,...". */
  to: string;
  /** Added to every chunk, each way; default 100. */
  delayMs?: number;
  /** The delay varies by up to this much either way; default 20. */
  jitterMs?: number;
  /** Share of the packets on the host's link dropped, both ways, 0..100; default 0. */
  lossPercent?: number;
}

/** A slow link on a test host, made by startSlowLink(). */
export interface SlowLink {
  /** Where the host's process should connect: the relay's ports, one per server, in `to`'s order. */
  readonly connectString: string;
  /** Stops the relay and removes the loss rules. TestNet.close() does it too. */
  close(): Promise<void>;
}

// Run with `node -e` inside the host's namespace; argv[1] is its JSON configuration.
const RELAY = `
const net = require("node:net");
const { targets, delayMs, jitterMs } = JSON.parse(process.argv[1]);
const ports = new Array(targets.length);
let listening = 0;
// One queue and one timer a direction: chunks leave strictly in order, as a TCP stream's bytes do (a
// timer per chunk can fire out of order, and a reordered stream is garbage to the ZooKeeper client).
function slowPipe(from, to) {
  const queue = [];
  let last = 0;
  let timer = null;
  const pump = () => {
    timer = null;
    while (queue.length > 0 && queue[0].at <= Date.now()) {
      const { chunk } = queue.shift();
      if (chunk === null) to.end();
      else if (!to.destroyed) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(pump, queue[0].at - Date.now());
  };
  const push = (chunk) => {
    last = Math.max(Date.now() + delayMs + (Math.random() * 2 - 1) * jitterMs, last);
    queue.push({ at: last, chunk });
    if (timer === null) timer = setTimeout(pump, last - Date.now());
  };
  from.on("data", push);
  from.on("end", () => push(null));
}
targets.forEach(([host, port], i) => {
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const end = () => { client.destroy(); upstream.destroy(); };
    for (const s of [client, upstream]) { s.on("error", end); s.on("close", end); }
    slowPipe(client, upstream);
    slowPipe(upstream, client);
  });
  server.listen(0, "127.0.0.1", () => {
    ports[i] = server.address().port;
    if (++listening === targets.length) console.log(JSON.stringify(ports));
  });
});
`;

/** Starts a slow link from `host` to the servers of `options.to`; resolves once the relay listens. */
export async function startSlowLink(host: TestHost, options: SlowLinkOptions): Promise<SlowLink> {
  const delayMs = options.delayMs ?? 100;
  const jitterMs = options.jitterMs ?? 20;
  const lossPercent = options.lossPercent ?? 0;
  if (!(delayMs >= 0 && jitterMs >= 0 && jitterMs <= delayMs))
    throw new RangeError(`a slow link needs 0 ≤ jitterMs ≤ delayMs, got ${delayMs} ± ${jitterMs}`);
  if (!(lossPercent >= 0 && lossPercent <= 100))
    throw new RangeError(`lossPercent must be within 0..100, got ${lossPercent}`);
  const targets = options.to.split(",").map((server) => {
    const at = server.lastIndexOf(":");
    const port = Number(server.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port)) throw new RangeError(`"${server}" is not address:port`);
    return [server.slice(0, at), port] as const;
  });
  const relay = host.spawn(process.execPath, ["-e", RELAY, JSON.stringify({ targets, delayMs, jitterMs })], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ports = await relayPorts(relay);
  if (lossPercent > 0) {
    const drop = `numgen random mod 10000 < ${Math.round(lossPercent * 100)} drop`;
    const script = [
      `add table inet ${TABLE}`,
      `add chain inet ${TABLE} in { type filter hook input priority 0 ; policy accept ; }`,
      `add chain inet ${TABLE} out { type filter hook output priority 0 ; policy accept ; }`,
      `add rule inet ${TABLE} in iifname "${LINK}" ${drop}`,
      `add rule inet ${TABLE} out oifname "${LINK}" ${drop}`,
    ].join("\n");
    await host.exec("nft", ["-f", "-"], { input: `${script}\n` });
  }
  return {
    connectString: ports.map((port) => `127.0.0.1:${port}`).join(","),
    async close() {
      relay.kill("SIGKILL");
      if (lossPercent > 0) await host.exec("nft", ["delete", "table", "inet", TABLE]).catch(() => {});
    },
  };
}

function relayPorts(relay: ChildProcess): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: relay.stdout! });
    const fail = (why: string) => reject(new Error(`the slow link's relay ${why}`));
    lines.once("line", (line) => {
      lines.close();
      resolve(JSON.parse(line) as number[]);
    });
    relay.once("exit", (code) => fail(`exited with code ${code} before it listened`));
    relay.once("error", (error) => fail(`could not start: ${error.message}`));
  });
}
