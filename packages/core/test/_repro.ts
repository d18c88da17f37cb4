import { expireSession } from "../../testing/src/index.js";
import { connect } from "../src/index.js";
const cs = "127.0.0.1:22181";
for (let i = 0; i < 150; i++) {
  const root = `/repro-${Date.now()}-${i}`;
  const zk = await connect({ connectString: cs, root, sessionTimeoutMs: 4000 });
  const other = await connect({ connectString: cs, root, sessionTimeoutMs: 4000 });
  await zk.ensurePath("/workers");
  const stop = new AbortController();
  const running = zk.keepRunning(async ({ client }) => { await client.create("/workers/a-", "", "ephemeral-sequential"); }, { signal: stop.signal });
  const watch = zk.watchChildren("/workers");
  const seen: string[][] = [];
  const consume = (async () => { for await (const c of watch) seen.push(c.children); })();
  const dataWatch = zk.watchData("/config");
  await dataWatch.next();
  while (seen.at(-1)?.length !== 1) await new Promise((r) => setTimeout(r, 10));
  await other.create("/workers/b1", "");
  const expired = new Promise((r) => zk.on("expired", r));
  await expireSession(cs, zk.sessionCredentials()!);
  await expired;
  await other.create("/workers/b2", "");
  await other.delete("/workers/b1");
  await other.create("/config", "v2");
  await dataWatch.next();
  watch.stop(); dataWatch.stop(); await consume; stop.abort(); await running;
  await Promise.all([zk.close(), other.close()]);
  process.stdout.write(".");
}
console.log("no crash");
