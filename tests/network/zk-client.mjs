// A ZooKeeper client on a test host (run through TestHost.spawn):
// node zk-client.mjs <path of @zkgrid/core's dist/index.js> <connect string> <session timeout ms>
// Writes one JSON line per connection event ({ event }) and per request; reads requests as JSON lines
// { id, op: "create" | "exists", path } and answers { id, ok, ms, error? }.
import { createInterface } from "node:readline";

const [corePath, connectString, sessionTimeoutMs] = process.argv.slice(2);
const { connect } = await import(corePath);
const say = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const client = await connect({
  connectString,
  sessionTimeoutMs: Number(sessionTimeoutMs),
  connectTimeoutMs: 60_000,
  opTimeoutMs: 3_000,
});
client.on("*", (event) => say({ event: event.type }));

const ops = {
  create: ({ path }) => client.create(path, "x", "persistent"),
  exists: ({ path }) => client.exists(path),
};

createInterface({ input: process.stdin }).on("line", (line) => {
  const request = JSON.parse(line);
  const started = performance.now();
  Promise.resolve()
    .then(() => ops[request.op](request))
    .then(
      () => say({ id: request.id, ok: true, ms: performance.now() - started }),
      (error) => say({ id: request.id, ok: false, ms: performance.now() - started, error: String(error) }),
    );
});
process.stdin.on("end", () => client.close().then(() => process.exit(0)));
say({ event: "ready" });
