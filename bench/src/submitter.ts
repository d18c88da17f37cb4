/**
 * One submitter of the `submitters` part (see submitters.ts): connects, says it is ready, waits for the
 * go node, submits its tasks in rounds and waits for each round, then prints what its waiting cost it.
 *
 *   node submitter.js <connect> <root> <barrier> <index> <rounds> <tasks-per-round> [shared|reply]
 *
 * `reply`: the client has a reply address of its own (its results come to its reply dir); `shared`
 * (the default): its results go to R/results with everyone's.
 */
import { performance } from "node:perf_hooks";
import { type ChildrenChange, connect, type ZkClient } from "@zkgrid/core";
import { connectGrid } from "@zkgrid/submit";

/** What the grid client read from ZooKeeper, counted at its client. */
interface ReadTally {
  /** Data bytes of every node read, plus the names of every listing (4 bytes of length each). */
  bytes: number;
  /** Result nodes read (get on a node under the grid's results). */
  resultNodes: number;
  /** Listings delivered (each watch event of a children watch, and each getChildren). */
  listings: number;
}

const [connectString, root, barrier, index, roundsText, perRoundText, place = "shared"] =
  process.argv.slice(2);
if (perRoundText === undefined) {
  process.stderr.write("usage: submitter.js <connect> <root> <barrier> <index> <rounds> <tasks-per-round>\n");
  process.exit(2);
}
const rounds = Number(roundsText);
const perRound = Number(perRoundText);
const tally: ReadTally = { bytes: 0, resultNodes: 0, listings: 0 };
// A long session: 50 processes starting at once on a small machine can starve one for seconds.
const zk = await connect({ connectString: connectString!, sessionTimeoutMs: 30_000 });
const grid = await connectGrid(counted(zk, [`${root}/results/`, `${root}/replies/`], tally), {
  root: root!,
  submitter: `bench-${index}`,
  // A reply dir of its own is the default; "shared" opts out.
  ...(place === "reply" ? {} : { replyAddress: false as const }),
});
await zk.create(`${barrier}/ready-${index}`, undefined, "ephemeral");
await untilExists(zk, `${barrier}/go`);

const cpu = process.cpuUsage();
const start = performance.now();
let failed = 0;
for (let round = 0; round < rounds; round++) {
  const tasks = Array.from({ length: perRound }, (_, i) => ({
    handler: "noop",
    input: round * perRound + i,
  }));
  const results = await grid.submitAndWait(tasks, { timeoutMs: 300_000 });
  for (const status of results.values()) if (status.state !== "succeeded") failed++;
}
const ms = performance.now() - start;
const used = process.cpuUsage(cpu);
process.stdout.write(
  `${JSON.stringify({ index: Number(index), ms, cpuMs: (used.user + used.system) / 1000, failed, ...tally })}\n`,
);
await grid.close();
await zk.close();

/** The client, counting what its reads return (`results`: the path prefixes of result nodes). */
function counted(client: ZkClient, results: readonly string[], into: ReadTally): ZkClient {
  const listed = (children: readonly string[]) => {
    into.listings += 1;
    for (const name of children) into.bytes += 4 + Buffer.byteLength(name);
  };
  return new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop === "get") {
        return async (path: string) => {
          const got = await target.get(path);
          into.bytes += got.data.length;
          if (results.some((dir) => path.startsWith(dir))) into.resultNodes += 1;
          return got;
        };
      }
      if (prop === "getChildren") {
        return async (path: string) => {
          const children = await target.getChildren(path);
          listed(children);
          return children;
        };
      }
      if (prop === "watchChildren") {
        return (path: string, options?: Parameters<ZkClient["watchChildren"]>[1]) => {
          const stream = target.watchChildren(path, options);
          const next = stream.next.bind(stream);
          stream.next = async () => {
            const step = await next();
            if (!step.done) listed((step.value as ChildrenChange).children);
            return step;
          };
          return stream;
        };
      }
      return value.bind(target);
    },
  });
}

async function untilExists(client: ZkClient, path: string): Promise<void> {
  for await (const change of client.watchData(path)) if (change !== null) return;
}
