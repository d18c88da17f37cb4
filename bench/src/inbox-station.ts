/**
 * The worker of the direct-path floor: `node inbox-station.js <connect> <dir>` watches the children of
 * `dir`; for each new node it writes an answer over it (a conditional set under version 0), as a worker
 * answers a direct task with nothing to run. Like a worker, it takes the task from a node's name
 * (`<id>~<base64url>`) after its watch's first listing, and reads any other node first. Prints `ready`
 * once its watch is armed.
 */
import { connect } from "@zkgrid/core";
import { inboxNamedBatch } from "@zkgrid/protocol";

const [connectString, dir] = process.argv.slice(2);
if (!connectString || !dir) {
  process.stderr.write("usage: inbox-station <connect> <dir>\n");
  process.exit(2);
}

const zk = await connect({ connectString });
const seen = new Set<string>();
let ready = false;
for await (const change of zk.watchChildren(dir)) {
  const first = !ready;
  if (!ready) {
    ready = true;
    process.stdout.write("ready\n");
  }
  for (const name of change.removed) seen.delete(name);
  for (const name of change.added) {
    if (seen.has(name)) continue;
    seen.add(name);
    const path = `${dir}/${name}`;
    const named = first ? undefined : inboxNamedBatch(name);
    const answering = Buffer.isBuffer(named)
      ? zk.set(path, Buffer.concat([named, named]), 0)
      : zk
          .get(path)
          .then(({ data, stat }) =>
            stat.version === 0 ? zk.set(path, Buffer.concat([data, data]), 0) : undefined,
          );
    answering.catch((error: unknown) => process.stderr.write(`inbox-station: ${String(error)}\n`));
  }
}
