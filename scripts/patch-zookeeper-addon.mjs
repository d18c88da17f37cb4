/**
 * Run after install: makes the `zookeeper` addon resolve its connect string only after a connection
 * loss. As shipped, the C client resolves it again (getaddrinfo, then a shuffle read from
 * /dev/urandom) every time the addon asks it what to poll, i.e. after every reply: about 13 µs of CPU
 * per ZooKeeper reply in every zkgrid process. One line in the addon's source, then a rebuild of the
 * addon (about 20 s, offline: node-gyp uses the headers install already used). If the rebuild fails,
 * the addon is left as it was and this says so; nothing else depends on it.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const MARK = "zoo_set_servers_resolution_delay(zhandle, -1);";
const ANCHOR = "        Ref();\n\n        uv_timer_init(Nan::GetCurrentEventLoop(), &zk_timer);";
const PATCHED = `        Ref();\n        // zkgrid: resolve the hosts again only after a connection loss, not after every reply.\n        ${MARK}\n\n        uv_timer_init(Nan::GetCurrentEventLoop(), &zk_timer);`;

const say = (msg) => process.stderr.write(`patch-zookeeper-addon: ${msg}\n`);

/** Writes a new file rather than into the old one: installed files may be hard links into pnpm's store. */
function replaceFile(path, text) {
  rmSync(path, { force: true });
  writeFileSync(path, text);
}

const require = createRequire(new URL("../packages/core/package.json", import.meta.url));
let dir;
try {
  dir = dirname(require.resolve("zookeeper/package.json"));
} catch {
  say("the zookeeper addon is not installed; nothing to do");
  process.exit(0);
}
const source = join(dir, "src", "node-zk.cpp");
const binary = join(dir, "build", "Release", "zookeeper.node");
const stamp = join(dir, "build", "Release", ".zkgrid-resolution-patch");
const original = readFileSync(source, "utf8");
if (original.includes(MARK) && existsSync(stamp) && existsSync(binary)) process.exit(0);
if (!original.includes(MARK)) {
  if (!original.includes(ANCHOR)) {
    say("the addon's source is not the one this patch knows (another zookeeper version?); left as it is");
    process.exit(0);
  }
  replaceFile(source, original.replace(ANCHOR, PATCHED));
}

const nodeGyp = process.env.npm_config_node_gyp;
if (!nodeGyp || !existsSync(nodeGyp)) {
  say("node-gyp was not found (run this through pnpm install); the addon is left as it was");
  replaceFile(source, original);
  process.exit(0);
}
// Outside build/, in case a failed build leaves it half made.
const backup = existsSync(binary) ? join(dir, "zookeeper.node.before-zkgrid-patch") : undefined;
if (backup) copyFileSync(binary, backup);
say("rebuilding the addon (about 20 s)");
// configure and build, not rebuild: rebuild deletes build/, and with it the C client's library, whose
// own build then wants autotools that the first install did not need.
const gyp = (step) =>
  spawnSync(process.execPath, [nodeGyp, step], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] }).status;
const status = gyp("configure") === 0 ? gyp("build") : 1;
if (status === 0 && existsSync(binary)) {
  writeFileSync(stamp, `${MARK}\n`);
  say("done: the addon resolves the connect string only after a connection loss");
} else {
  say(`the rebuild failed (exit ${status}); the addon is left as it was`);
  replaceFile(source, original);
  if (backup) {
    mkdirSync(dirname(binary), { recursive: true });
    copyFileSync(backup, binary);
  }
}
