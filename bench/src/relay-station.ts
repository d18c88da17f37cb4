/**
 * One station of the ZooKeeper relay floor: `node relay-station.js <connect> <from> <to>` watches the
 * data of node `from`; each time it changes, it writes the new data to node `to`. Learning of a write
 * through a watch, reading it and writing is the least a process can do per hop through ZooKeeper.
 * Prints `ready` once its watch is armed.
 */
import { connect } from "@zkgrid/core";

const [connectString, from, to] = process.argv.slice(2);
if (!connectString || !from || !to) {
  process.stderr.write("usage: relay-station <connect> <from> <to>\n");
  process.exit(2);
}

const zk = await connect({ connectString });
let ready = false;
for await (const change of zk.watchData(from)) {
  if (!ready) {
    ready = true;
    process.stdout.write("ready\n");
    continue;
  }
  if (change === null) continue;
  zk.set(to, change.data).catch((error: unknown) =>
    process.stderr.write(`relay-station: ${String(error)}\n`),
  );
}
