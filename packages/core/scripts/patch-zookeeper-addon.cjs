/**
 * @zkgrid/core's postinstall (and the monorepo's): two changes to the `zookeeper` addon's source, then
 * a rebuild of the addon (node-gyp, offline: it uses the headers the addon's own install used).
 * - It resolves its connect string only after a connection loss. As shipped, the C client resolves it
 *   again (getaddrinfo, then a shuffle read from /dev/urandom) every time the addon asks it what to
 *   poll, i.e. after every reply: about 13 µs of CPU per ZooKeeper reply in every zkgrid process.
 * - Its socket to ZooKeeper is close-on-exec. As shipped, every child a process spawns after it
 *   connects (a handler's `sh`, a task spawned without the Perl launcher) inherits the connection and
 *   could write to its session.
 *
 * Success writes build/Release/.zkgrid-resolution-patch beside the addon; @zkgrid/core warns at
 * connect when it is missing. Failure never fails the install: the addon is left as it was and a boxed
 * message says what that costs and how to fix it.
 *
 * Usage: node patch-zookeeper-addon.cjs [addon-dir]   (the addon dir defaults to the one core resolves)
 */
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const MARK = "zoo_set_servers_resolution_delay(zhandle, -1);";
const ANCHOR = "        Ref();\n\n        uv_timer_init(Nan::GetCurrentEventLoop(), &zk_timer);";
const PATCHED = `        Ref();\n        // zkgrid: resolve the hosts again only after a connection loss, not after every reply.\n        ${MARK}\n\n        uv_timer_init(Nan::GetCurrentEventLoop(), &zk_timer);`;
/** The second change: the addon marks each new socket close-on-exec as soon as the C client returns it. */
const CLOEXEC_MARK = "zkgrid: close-on-exec";
const CLOEXEC_INCLUDE_ANCHOR = "    #include <errno.h>\n#endif";
const CLOEXEC_INCLUDE = "    #include <errno.h>\n    #include <fcntl.h>\n#endif";
const CLOEXEC_ANCHOR = "             zk_io->data = this;";
const CLOEXEC = `             #ifndef WIN32
             // ${CLOEXEC_MARK}: a child spawned later must not inherit the session's connection.
             fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
             #endif
             zk_io->data = this;`;
const STAMP = ".zkgrid-resolution-patch";

/** The addon's source with both changes, or undefined if it is not the source they were written for. */
function patchedSource(original) {
  let source = original;
  if (!source.includes(MARK)) {
    if (!source.includes(ANCHOR)) return undefined;
    source = source.replace(ANCHOR, PATCHED);
  }
  if (!source.includes(CLOEXEC_MARK)) {
    if (!source.includes(CLOEXEC_INCLUDE_ANCHOR) || !source.includes(CLOEXEC_ANCHOR)) return undefined;
    source = source.replace(CLOEXEC_INCLUDE_ANCHOR, CLOEXEC_INCLUDE).replace(CLOEXEC_ANCHOR, CLOEXEC);
  }
  return source;
}
/** The C client's autotools outputs, each listed after what it is made from (see its Makefile.in). */
const AUTOTOOLS_OUTPUTS = ["aclocal.m4", "configure", "config.h.in", "Makefile.in"];
/** Make variables that stop make from regenerating autotools files, should a timestamp still ask it to. */
const NO_AUTOTOOLS = "ACLOCAL=true AUTOMAKE=true AUTOCONF=true AUTOHEADER=true";

const say = (msg) => process.stderr.write(`@zkgrid/core postinstall: ${msg}\n`);

/** Writes a new file rather than into the old one: installed files may be hard links into pnpm's store. */
function replaceFile(file, content) {
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, content);
}

/** The message a user must not miss: boxed, on stderr, and on the terminal when npm hides script output. */
function warnUnpatched(reason) {
  const lines = [
    "@zkgrid/core: the zookeeper addon was NOT patched.",
    `Why: ${reason}`,
    "Cost: the addon resolves its ZooKeeper hosts again after every reply",
    "(about 13 us of CPU per reply in every zkgrid process), and a child",
    "spawned after connecting inherits its ZooKeeper socket. zkgrid works,",
    "but slower than its published figures; it warns at connect.",
    "Fix: install a C compiler, make and Python 3, then run",
    "  npm rebuild @zkgrid/core     (or: pnpm rebuild @zkgrid/core)",
    "With pnpm, approve the builds of both `zookeeper` and `@zkgrid/core`.",
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const rule = `+${"-".repeat(width + 2)}+`;
  const box = [rule, ...lines.map((line) => `| ${line.padEnd(width)} |`), rule].join("\n");
  process.stderr.write(`\n${box}\n\n`);
  // npm shows a dependency's script output only when the script fails; this one must not fail.
  const agent = process.env.npm_config_user_agent ?? "";
  if (agent.startsWith("npm/") && process.env.npm_config_foreground_scripts !== "true") {
    try {
      fs.writeFileSync("/dev/tty", `\n${box}\n\n`);
    } catch {
      // No terminal (CI): stderr and the warning at connect remain.
    }
  }
}

function addonDir() {
  if (process.argv[2]) return path.resolve(process.argv[2]);
  try {
    return path.dirname(require.resolve("zookeeper/package.json", { paths: [path.join(__dirname, "..")] }));
  } catch {
    return undefined;
  }
}

/**
 * Installs can leave the C client's files with arbitrary timestamps (pnpm's store keeps none), and make
 * then wants aclocal and automake to regenerate files that are already there. Touch the outputs in
 * dependency order, all at one instant no older than any source, so make finds them up to date.
 */
function settleAutotoolsTimestamps(clientDir) {
  const sources = ["configure.ac", "acinclude.m4", "Makefile.am", "aminclude.am"]
    .map((name) => path.join(clientDir, name))
    .filter((file) => fs.existsSync(file));
  const newest = Math.max(Date.now(), ...sources.map((file) => fs.statSync(file).mtimeMs));
  const when = new Date(newest);
  for (const name of AUTOTOOLS_OUTPUTS) {
    const file = path.join(clientDir, name);
    if (fs.existsSync(file)) fs.utimesSync(file, when, when);
  }
}

function findNodeGyp() {
  const fromEnv = process.env.npm_config_node_gyp;
  if (fromEnv && fs.existsSync(fromEnv)) return fromEnv;
  // Run by hand: npm's own node-gyp, next to the npm that runs this node.
  const npmDir = path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm");
  const npmGyp = path.join(npmDir, "node_modules", "node-gyp", "bin", "node-gyp.js");
  return fs.existsSync(npmGyp) ? npmGyp : undefined;
}

function main() {
  const dir = addonDir();
  if (!dir) {
    say("the zookeeper addon is not installed; nothing to do");
    return;
  }
  const source = path.join(dir, "src", "node-zk.cpp");
  const binary = path.join(dir, "build", "Release", "zookeeper.node");
  const stamp = path.join(dir, "build", "Release", STAMP);
  const original = fs.readFileSync(source, "utf8");
  if (
    fs.existsSync(stamp) &&
    fs.existsSync(binary) &&
    original.includes(MARK) &&
    original.includes(CLOEXEC_MARK)
  ) {
    say("the zookeeper addon is already patched");
    return;
  }
  const patched = patchedSource(original);
  if (patched === undefined) {
    warnUnpatched("its source is not the one this patch knows (another zookeeper version?).");
    return;
  }
  if (patched !== original) replaceFile(source, patched);
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) {
    replaceFile(source, original);
    warnUnpatched("node-gyp was not found (run this through npm or pnpm).");
    return;
  }

  const clientDir = path.join(dir, "deps", "zookeeper-client-c");
  if (fs.existsSync(clientDir)) settleAutotoolsTimestamps(clientDir);
  // The patch changes only the addon, not the C client the first install built. The addon's build
  // script skips the C client when this file exists (it never does on Linux otherwise), which saves
  // a configure and make of it.
  const clientBuilt = path.join(dir, "build", "zk", "lib", "libzookeeper_st.la");
  const reuseClient =
    fs.existsSync(path.join(clientDir, ".libs", "libzookeeper_st.a")) && !fs.existsSync(clientBuilt);
  if (reuseClient) {
    fs.mkdirSync(path.dirname(clientBuilt), { recursive: true });
    fs.writeFileSync(clientBuilt, "# zkgrid: the C client in deps/zookeeper-client-c is built\n");
  }
  // Outside build/, in case a failed build leaves it half made.
  const backup = fs.existsSync(binary) ? path.join(dir, "zookeeper.node.before-zkgrid-patch") : undefined;
  if (backup) fs.copyFileSync(binary, backup);
  // An earlier version's patch (the hosts only) stays stamped if this rebuild fails: its binary is kept.
  const earlierStamp = fs.existsSync(stamp) ? fs.readFileSync(stamp) : undefined;
  fs.rmSync(stamp, { force: true });
  say("rebuilding the zookeeper addon (about 20 s)");
  const env = { ...process.env, MAKEFLAGS: `${process.env.MAKEFLAGS ?? ""} ${NO_AUTOTOOLS}`.trim() };
  let output = "";
  // configure and build, not rebuild: rebuild deletes build/, and with it the C client's library.
  const gyp = (step) => {
    const run = spawnSync(process.execPath, [nodeGyp, step], { cwd: dir, env, encoding: "utf8" });
    output += `${run.stdout ?? ""}${run.stderr ?? ""}`;
    return run.status ?? 1;
  };
  const status = gyp("configure") === 0 ? gyp("build") : 1;
  if (reuseClient) fs.rmSync(path.join(dir, "build", "zk"), { recursive: true, force: true });
  if (status === 0 && fs.existsSync(binary)) {
    fs.writeFileSync(stamp, `${MARK}\n`);
    if (backup) fs.rmSync(backup, { force: true });
    say(
      "done: the addon resolves the connect string only after a connection loss, and its socket is close-on-exec",
    );
    return;
  }
  replaceFile(source, original);
  if (backup) {
    fs.mkdirSync(path.dirname(binary), { recursive: true });
    fs.rmSync(binary, { force: true });
    fs.renameSync(backup, binary);
    if (earlierStamp !== undefined) fs.writeFileSync(stamp, earlierStamp);
  }
  const tail = output.trimEnd().split("\n").slice(-12).join("\n");
  process.stderr.write(`${tail}\n`);
  warnUnpatched(`the rebuild failed (node-gyp exit ${status}; its last lines are above).`);
}

main();
