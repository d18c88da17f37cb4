/**
 * @zkgrid/core's postinstall (and the monorepo's): changes to the `zookeeper` addon's source and to the
 * C client it bundles, then a rebuild of both (make and node-gyp, offline: it uses the headers the
 * addon's own install used).
 * - It resolves its connect string only after a connection loss. As shipped, the C client resolves it
 *   again (getaddrinfo, then a shuffle read from /dev/urandom) every time the addon asks it what to
 *   poll, i.e. after every reply: about 13 µs of CPU per ZooKeeper reply in every zkgrid process.
 * - Its socket to ZooKeeper is close-on-exec. As shipped, every child a process spawns after it
 *   connects (a handler's `sh`, a task spawned without the Perl launcher) inherits the connection and
 *   could write to its session.
 * - It can add a persistent recursive watch (ZooKeeper 3.6's addWatch), which the C client lacks: the
 *   addon's `a_add_watch(path, mode, cb)`. An event that no one-shot watch asked for (so one a
 *   persistent watch sent) goes to the handle's own watcher, which the addon emits as "created",
 *   "deleted" or "changed" with the node's path. A worker learns of a task put in its inbox from the
 *   event itself, without listing the inbox again.
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
/** The third change, the addon's side: `a_add_watch(path, mode, cb)` over the C client's new function. */
const ADD_WATCH_MARK = "zkgrid: addWatch";
const ADD_WATCH_DECL_ANCHOR = "namespace zk {";
const ADD_WATCH_DECL = `// ${ADD_WATCH_MARK}: ZooKeeper 3.6's persistent watches, added to the C client by zkgrid's install step.
extern "C" int zkgrid_aadd_watch(zhandle_t *zh, const char *path, int mode,
        void_completion_t completion, const void *data);

namespace zk {`;
const ADD_WATCH_METHOD_ANCHOR = "    static void ADelete(const Nan::FunctionCallbackInfo<Value>& info) {";
const ADD_WATCH_METHOD = `    // ${ADD_WATCH_MARK}: mode 0 persistent, 1 persistent and recursive. Its events reach main_watcher.
    static void AAddWatch(const Nan::FunctionCallbackInfo<Value>& info) {
        A_METHOD_PROLOG(3);
        Nan::Utf8String _path (toString(info[0]));
        int mode = (int) toUint(info[1]);

        struct completion_data *data = (struct completion_data *) malloc(sizeof(struct completion_data));
        data->cb = cb;
        data->type = 106;
        data->data = NULL;

        METHOD_EPILOG (zkgrid_aadd_watch(zk->zhandle, *_path, mode, &void_completion, data));
    }

${ADD_WATCH_METHOD_ANCHOR}`;
const ADD_WATCH_REGISTER_ANCHOR = '"a_delete_",  ADelete);';
const ADD_WATCH_REGISTER = `${ADD_WATCH_REGISTER_ANCHOR}
        Nan::SetPrototypeMethod(constructor_template,  "a_add_watch",  AAddWatch); // ${ADD_WATCH_MARK}`;

/**
 * The third change, the C client's side, file by file: each a mark that says it is done, and the text
 * it goes after (undefined: the end of the file).
 */
const CLIENT_CHANGES = [
  {
    file: path.join("src", "zookeeper.c"),
    mark: ADD_WATCH_MARK,
    after: undefined,
    text: `
/* ${ADD_WATCH_MARK}: ZooKeeper 3.6's addWatch request (opcode 106: a path and a mode, 0 persistent, 1
 * persistent and recursive), which this client lacks. Its events carry no watcher of their own here:
 * collectWatchers hands them to the handle's watcher. A connection loss ends the watch on the server,
 * and the client does not set it again: its caller adds it again after each reconnect. */
int zkgrid_aadd_watch(zhandle_t *zh, const char *path, int mode,
        void_completion_t completion, const void *data)
{
    struct oarchive *oa;
    struct RequestHeader h = {get_xid(), 106};
    char *server_path;
    int32_t watch_mode = mode;
    int rc = Request_path_init(zh, 0, &server_path, path);
    if (rc != ZOK) {
        return rc;
    }
    oa = create_buffer_oarchive();
    rc = serialize_RequestHeader(oa, "header", &h);
    rc = rc < 0 ? rc : oa->serialize_String(oa, "path", &server_path);
    rc = rc < 0 ? rc : oa->serialize_Int(oa, "mode", &watch_mode);
    enter_critical(zh);
    rc = rc < 0 ? rc : add_void_completion(zh, h.xid, completion, data);
    rc = rc < 0 ? rc : queue_buffer_bytes(&zh->to_send, get_buffer(oa),
            get_buffer_len(oa));
    leave_critical(zh);
    free_duplicate_path(server_path, path);
    /* We queued the buffer, so don't free it */
    close_buffer_oarchive(&oa, 0);
    return nonblocking_send(zh, rc);
}
`,
  },
  {
    file: path.join("src", "zk_hashtable.c"),
    mark: ADD_WATCH_MARK,
    after: "        add_for_event(zh->active_child_watchers,path,&list);\n        break;\n    }\n",
    text: `    /* ${ADD_WATCH_MARK}: no one-shot watch asked for this event, so a persistent watch sent it. */
    if (list->head == 0) {
        watcher_object_t defWatcher;
        defWatcher.watcher=zh->watcher;
        defWatcher.context=zh->context;
        add_to_list(&list, &defWatcher, 1);
    }
`,
  },
];

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
  if (!source.includes(ADD_WATCH_MARK)) {
    const anchors = [ADD_WATCH_DECL_ANCHOR, ADD_WATCH_METHOD_ANCHOR, ADD_WATCH_REGISTER_ANCHOR];
    if (!anchors.every((anchor) => source.split(anchor).length === 2)) return undefined;
    source = source
      .replace(ADD_WATCH_DECL_ANCHOR, ADD_WATCH_DECL)
      .replace(ADD_WATCH_METHOD_ANCHOR, ADD_WATCH_METHOD)
      .replace(ADD_WATCH_REGISTER_ANCHOR, ADD_WATCH_REGISTER);
  }
  return source;
}

/** A C client file with its change, or undefined if it is not the source the change was written for. */
function patchedClientSource(original, change) {
  if (original.includes(change.mark)) return original;
  if (change.after === undefined) return `${original}${change.text}`;
  if (original.split(change.after).length !== 2) return undefined;
  return original.replace(change.after, `${change.after}${change.text}`);
}
/** The C client's autotools outputs, each listed after what it is made from (see its Makefile.in). */
const AUTOTOOLS_OUTPUTS = ["aclocal.m4", "configure", "config.h.in", "Makefile.in"];
/**
 * What configure made from them, already there in a built client: settled with them, so that make runs
 * neither config.status nor configure again before it compiles the changed files.
 */
const CONFIGURE_OUTPUTS = ["config.status", "Makefile", "config.h", "stamp-h1", "libtool"];
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
    "(about 13 us of CPU per reply in every zkgrid process), a child",
    "spawned after connecting inherits its ZooKeeper socket, and a worker",
    "lists its inbox after every lone task (one round trip more each).",
    "zkgrid works, but slower than its published figures; it warns at",
    "connect.",
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
 * then wants aclocal and automake to regenerate files that are already there, and configure to run
 * again. Touch the outputs, all at one instant no older than any source, so make finds them up to date.
 */
function settleAutotoolsTimestamps(clientDir) {
  const sources = ["configure.ac", "acinclude.m4", "Makefile.am", "aminclude.am"]
    .map((name) => path.join(clientDir, name))
    .filter((file) => fs.existsSync(file));
  const newest = Math.max(Date.now(), ...sources.map((file) => fs.statSync(file).mtimeMs));
  const when = new Date(newest);
  for (const name of [...AUTOTOOLS_OUTPUTS, ...CONFIGURE_OUTPUTS]) {
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
  const clientDir = path.join(dir, "deps", "zookeeper-client-c");
  const clientFiles = CLIENT_CHANGES.map((change) => {
    const file = path.join(clientDir, change.file);
    const before = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
    return {
      change,
      file,
      before,
      after: before === undefined ? undefined : patchedClientSource(before, change),
    };
  });
  if (
    fs.existsSync(stamp) &&
    fs.existsSync(binary) &&
    [MARK, CLOEXEC_MARK, ADD_WATCH_MARK].every((mark) => original.includes(mark)) &&
    clientFiles.every(({ before, change }) => before?.includes(change.mark))
  ) {
    say("the zookeeper addon is already patched");
    return;
  }
  const patched = patchedSource(original);
  if (patched === undefined || clientFiles.some(({ after }) => after === undefined)) {
    warnUnpatched("its source is not the one this patch knows (another zookeeper version?).");
    return;
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) {
    warnUnpatched("node-gyp was not found (run this through npm or pnpm).");
    return;
  }
  if (patched !== original) replaceFile(source, patched);
  for (const { file, before, after } of clientFiles) if (after !== before) replaceFile(file, after);
  const restoreSources = () => {
    replaceFile(source, original);
    for (const { file, before, after } of clientFiles) if (after !== before) replaceFile(file, before);
  };

  if (fs.existsSync(clientDir)) settleAutotoolsTimestamps(clientDir);
  const env = { ...process.env, MAKEFLAGS: `${process.env.MAKEFLAGS ?? ""} ${NO_AUTOTOOLS}`.trim() };
  let output = "";
  // The C client the first install built is made again from its changed files only (make), and the
  // addon's build script is told to skip it: this file never exists on Linux otherwise. A client never
  // built is built by the addon's build script, from the changed sources.
  const clientBuilt = path.join(dir, "build", "zk", "lib", "libzookeeper_st.la");
  const reuseClient =
    fs.existsSync(path.join(clientDir, ".libs", "libzookeeper_st.a")) && !fs.existsSync(clientBuilt);
  if (reuseClient) {
    say("rebuilding the ZooKeeper C client's changed files");
    const make = spawnSync("make", ["--no-print-directory", "libzookeeper_st.la"], {
      cwd: clientDir,
      env,
      encoding: "utf8",
    });
    output += `${make.stdout ?? ""}${make.stderr ?? ""}${make.error ? `${make.error.message}\n` : ""}`;
    if (make.status !== 0) {
      restoreSources();
      const tail = output.trimEnd().split("\n").slice(-12).join("\n");
      process.stderr.write(`${tail}\n`);
      warnUnpatched(`the C client's rebuild failed (make exit ${make.status ?? make.error?.message}).`);
      return;
    }
  }
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
      "done: the addon resolves the connect string only after a connection loss, its socket is close-on-exec, and it can add persistent watches",
    );
    return;
  }
  restoreSources();
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
