#!/usr/bin/env bash
# Consumer checks: packs every package, installs the tarballs into fresh npm and pnpm projects outside
# the workspace (dependencies such as zod, pino and zookeeper come from the registry), and checks what a
# user would do: import every package from ESM and CommonJS, typecheck a consumer file (node16 and
# bundler resolution), run each bin's --help, run a task end to end (ZooKeeper from the consumer's
# @zkgrid/testing, a master and a worker from its install, zkgrid-submit --wait), and lint each tarball
# with publint and @arethetypeswrong/cli (fetched with npx when missing).
# Prints PASS/FAIL per check with its seconds; exits 1 if any failed. Run `pnpm build` first.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
# Every published package of the workspace (private ones, such as the bench, are not packed).
PACKAGES=()
for dir in packages/* apps/*; do
  [ -f "$dir/package.json" ] && [ "$(node -p "require('./$dir/package.json').private === true")" = false ] &&
    PACKAGES+=("$dir")
done
NAMES=()
for dir in "${PACKAGES[@]}"; do NAMES+=("$(node -p "require('./$dir/package.json').name")"); done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zkgrid-consumers.XXXXXX")
PIDS=()
cleanup() {
  # A master or worker closes its ZooKeeper session on SIGTERM (up to a few seconds); then SIGKILL.
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for _ in $(seq 1 20); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.5
  done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "consumers: kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
began=$SECONDS
failed=()
# check NAME CMD...: runs CMD with its output in $WORK/logs/NAME.log; prints the log's tail on failure.
mkdir -p "$WORK/logs"
check() {
  local name=$1 log
  shift
  log="$WORK/logs/$(echo "$name" | tr ' /:@' '____').log"
  local at=$SECONDS
  if "$@" >"$log" 2>&1; then
    printf 'PASS  %s (%d s)\n' "$name" "$((SECONDS - at))"
  else
    printf 'FAIL  %s (%d s)\n' "$name" "$((SECONDS - at))"
    tail -n 25 "$log" | sed 's/^/      /'
    failed+=("$name")
  fi
}

# --- pack -------------------------------------------------------------------------------------------
mkdir -p "$WORK/tarballs"
pack_all() {
  for dir in "${PACKAGES[@]}"; do (cd "$dir" && pnpm pack --pack-destination "$WORK/tarballs") || return 1; done
}
check "pack every package" pack_all
tarball() { ls "$WORK/tarballs/$(echo "${1#@}" | tr '/' '-')"-*.tgz; }

# --- the consumer projects --------------------------------------------------------------------------
# Every @zkgrid/* package (and every internal dependency, through overrides) comes from its tarball.
write_consumer() { # dir type
  node - "$1" "$2" "$WORK/tarballs" "${NAMES[@]}" <<'EOF'
const [dir, type, tarballs, ...names] = process.argv.slice(2);
const fs = require("node:fs");
const path = require("node:path");
const files = fs.readdirSync(tarballs);
const spec = Object.fromEntries(names.map((n) => {
  const file = files.find((f) => f.startsWith(`${n.slice(1).replace("/", "-")}-`));
  return [n, `file:${path.relative(dir, path.join(tarballs, file))}`];
}));
// pnpm approves a tarball's build by name@spec; from the registry, the name alone does (see README).
const builds = ["zookeeper", "@zkgrid/core", `@zkgrid/core@${spec["@zkgrid/core"]}`];
const pkg = {
  name: "zkgrid-consumer",
  private: true,
  type,
  dependencies: spec,
  devDependencies: { typescript: "^5.9.3", "@types/node": "^20.19.0" },
  overrides: spec,
  pnpm: { overrides: spec, onlyBuiltDependencies: builds },
};
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
EOF
}
write_consumer "$WORK/npm" module
write_consumer "$WORK/pnpm" module

install_npm() { (cd "$WORK/npm" && npm install --no-audit --no-fund --foreground-scripts); }
# A store of its own, empty: pnpm's side-effects cache holds nothing yet, so both install scripts run
# (with a build of these versions cached, pnpm would run neither: see the README's Install and the
# check "pnpm: a second project ..." below).
install_pnpm() {
  (cd "$WORK/pnpm" && pnpm install --store-dir "$WORK/pnpm-store" --reporter=append-only)
}
# background NAME CMD...: starts CMD with its output in a log of its own; `check NAME finish NAME`
# then waits for it and reports it (its time there is what the wait added to the run).
declare -A JOB_PID JOB_LOG
background() {
  local name=$1
  shift
  JOB_LOG[$name]="$WORK/logs/job-$(echo "$name" | tr ' /:@' '____').log"
  "$@" >"${JOB_LOG[$name]}" 2>&1 &
  JOB_PID[$name]=$!
}
finish() {
  local status=0
  wait "${JOB_PID[$1]}" || status=$?
  cat "${JOB_LOG[$1]}"
  return "$status"
}
# Both installs build the zookeeper addon: in parallel, they take the time of one. The lint tools are
# fetched meanwhile, into a scratch prefix (not the consumers: they hold only what a user installs).
background "npm: install the tarballs" install_npm
background "pnpm: install the tarballs" install_pnpm
background "fetch publint and @arethetypeswrong/cli" \
  npm install --prefix "$WORK/tools" --no-audit --no-fund --no-save publint@0 @arethetypeswrong/cli@0
check "npm: install the tarballs" finish "npm: install the tarballs"
check "pnpm: install the tarballs" finish "pnpm: install the tarballs"
# The addon must be patched in both: the postinstall leaves its stamp only when the rebuild worked.
addon_patched() {
  (cd "$1" && node -e '
    const path = require("node:path"), fs = require("node:fs");
    const core = path.dirname(require.resolve("@zkgrid/core/package.json"));
    const addon = path.dirname(require.resolve("zookeeper/package.json", { paths: [core] }));
    const stamp = path.join(addon, "build", "Release", ".zkgrid-resolution-patch");
    if (!fs.existsSync(stamp)) { console.error(`no ${stamp}`); process.exit(1); }
    const ZooKeeper = require(addon);
    if (typeof new ZooKeeper({}).native.a_add_watch !== "function") {
      console.error(`the addon in ${addon} has no a_add_watch`); process.exit(1);
    }')
}

# What the README's Install says of pnpm's side-effects cache: the first install cached the addon as
# its own install script left it, unpatched; a second project installed from that store gets it so,
# without running either script. The warning at connect names the fix (core's addon test checks its
# words); here the fix itself: `pnpm rebuild @zkgrid/core`.
pnpm_cache_undoes_the_patch() {
  write_consumer "$WORK/pnpm-again" module
  (cd "$WORK/pnpm-again" && pnpm install --store-dir "$WORK/pnpm-store" --reporter=append-only) || return 1
  if addon_patched "$WORK/pnpm-again"; then
    echo "the addon restored from the side-effects cache is patched: pnpm changed; update the README"
    return 1
  fi
  (cd "$WORK/pnpm-again" && pnpm rebuild @zkgrid/core --store-dir "$WORK/pnpm-store") || return 1
  addon_patched "$WORK/pnpm-again"
}
check "pnpm: a second project from the same store gets the addon unpatched; pnpm rebuild @zkgrid/core patches it" \
  pnpm_cache_undoes_the_patch

for pm in npm pnpm; do
  dir="$WORK/$pm"
  check "$pm: the addon carries the patch (hosts once, persistent watches)" addon_patched "$dir"
  # Bare names in -e code resolve from the current directory: the consumer's.
  names_json=$(printf '"%s",' "${NAMES[@]}")
  check "$pm: import every package (ESM)" bash -c "cd '$dir' && node --input-type=module -e '
    for (const name of [${names_json%,}]) {
      const mod = await import(name);
      if (Object.keys(mod).length === 0) throw new Error(name + \": no exports\");
      console.log(name, Object.keys(mod).length, \"exports\");
    }'"
  check "$pm: require every package (CommonJS)" bash -c "cd '$dir' && node -e '
    for (const name of [${names_json%,}]) {
      const mod = require(name);
      if (Object.keys(mod).length === 0) throw new Error(name + \": no exports\");
      console.log(name, Object.keys(mod).length, \"exports\");
    }'"
done

# --- types ------------------------------------------------------------------------------------------
write_types() { # dir
  cat >"$1/consumer.ts" <<'EOF'
import { ZkClient } from "@zkgrid/core";
import { type Dashboard, startDashboard } from "@zkgrid/dashboard";
import { createLogger, type Logger } from "@zkgrid/log";
import { type GridSnapshot, observeGrid } from "@zkgrid/observer";
import { type TaskSpec, type TaskStatus, parseDuration } from "@zkgrid/protocol";
import { connectGrid, type GridClient } from "@zkgrid/submit";
import { startServer } from "@zkgrid/testing";
import * as master from "@zkgrid/master";
import * as worker from "@zkgrid/worker";

const log: Logger = createLogger({ name: "consumer" });
const spec: Partial<TaskSpec> = { cmd: "true" };
const seconds: number | undefined = parseDuration("30s");
export const used = [ZkClient, startDashboard, observeGrid, connectGrid, startServer, master, worker, log, spec, seconds];
export type Used = [Dashboard, GridSnapshot, GridClient, TaskStatus];
EOF
  # The same file as CommonJS: under node16 its imports resolve through the packages' "require" types.
  cp "$1/consumer.ts" "$1/consumer.cts"
  cat >"$1/tsconfig.node16.json" <<'EOF'
{ "compilerOptions": { "module": "node16", "moduleResolution": "node16", "target": "es2022", "strict": true,
  "noEmit": true, "skipLibCheck": false, "types": ["node"] }, "files": ["consumer.ts", "consumer.cts"] }
EOF
  cat >"$1/tsconfig.bundler.json" <<'EOF'
{ "compilerOptions": { "module": "esnext", "moduleResolution": "bundler", "target": "es2022", "strict": true,
  "noEmit": true, "skipLibCheck": false, "types": ["node"] }, "files": ["consumer.ts"] }
EOF
}
# The four typechecks at once: each tsc uses one core.
typechecks=()
for pm in npm pnpm; do
  dir="$WORK/$pm"
  write_types "$dir"
  for resolution in node16 bundler; do
    name="$pm: typecheck (moduleResolution $resolution$([ $resolution = node16 ] && echo ", ESM and CommonJS"))"
    background "$name" bash -c "cd '$dir' && node_modules/.bin/tsc -p tsconfig.$resolution.json"
    typechecks+=("$name")
  done
done
for name in "${typechecks[@]}"; do check "$name" finish "$name"; done

# --- bins -------------------------------------------------------------------------------------------
# --help works, and every file it points at exists in the install.
help_ok() { # dir bin
  local out file
  out=$("$1/node_modules/.bin/$2" --help) || return 1
  echo "$out"
  for file in $(echo "$out" | grep -oE '[^ ()"]+\.md'); do
    [ -f "$file" ] || { echo "--help points at $file, which is not installed"; return 1; }
  done
}
for pm in npm pnpm; do
  for bin in zkgrid-master zkgrid-worker zkgrid-submit zkgrid; do
    check "$pm: $bin --help" help_ok "$WORK/$pm" "$bin"
  done
done

# --- a task end to end ------------------------------------------------------------------------------
# ZooKeeper from the pnpm consumer's @zkgrid/testing; it prints its connect string, then runs until killed.
(cd "$WORK/pnpm" && exec node --input-type=module -e '
  const { startServer } = await import("@zkgrid/testing");
  const server = await startServer();
  console.log(server.connectString);
  const stop = () => server.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setInterval(() => {}, 1 << 30);') >"$WORK/zookeeper.out" 2>"$WORK/logs/zookeeper.log" &
PIDS+=($!)
connect=""
for _ in $(seq 1 120); do
  connect=$(head -n 1 "$WORK/zookeeper.out" 2>/dev/null)
  [ -n "$connect" ] && break
  sleep 0.5
done
end_to_end() { # pm
  local dir="$WORK/$1" root="/consumer-$1" out
  (cd "$dir" && exec node_modules/.bin/zkgrid-master m1 --connect "$connect" --root "$root") \
    >"$WORK/logs/$1-master.log" 2>&1 &
  PIDS+=($!)
  mkdir -p "$dir/grid-output"
  (cd "$dir" && exec node_modules/.bin/zkgrid-worker w1 --connect "$connect" --root "$root" --cwd grid-output) \
    >"$WORK/logs/$1-worker.log" 2>&1 &
  PIDS+=($!)
  out=$(cd "$dir" && timeout 90 node_modules/.bin/zkgrid-submit --connect "$connect" --root "$root" \
    --cmd "echo hello from the $1 consumer" --wait --json) || { echo "$out"; return 1; }
  echo "$out"
  echo "$out" | grep -q '"state":"succeeded"' && echo "$out" | grep -q "hello from the $1 consumer"
}
if [ -n "$connect" ]; then
  for pm in pnpm npm; do check "$pm: a task runs end to end (master, worker, submit --wait)" end_to_end "$pm"; done
else
  check "start ZooKeeper from @zkgrid/testing" bash -c "cat '$WORK/logs/zookeeper.log'; false"
fi

# --- publint and arethetypeswrong -------------------------------------------------------------------
check "fetch publint and @arethetypeswrong/cli" finish "fetch publint and @arethetypeswrong/cli"
# The tarballs' lints four at a time (two tarballs): each is a short single-threaded run, and attw
# loads TypeScript.
for ((i = 0; i < ${#NAMES[@]}; i += 2)); do
  batch=("${NAMES[@]:i:2}")
  for name in "${batch[@]}"; do
    file=$(tarball "$name")
    background "publint $name" "$WORK/tools/node_modules/.bin/publint" run --strict "$file"
    background "attw $name" "$WORK/tools/node_modules/.bin/attw" --profile node16 --no-color "$file"
  done
  for name in "${batch[@]}"; do
    check "publint $name" finish "publint $name"
    check "attw $name" finish "attw $name"
  done
done

echo "consumers: $((SECONDS - began)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "consumers: ${#failed[@]} check(s) failed"
  exit 1
fi
echo "consumers: all checks passed"
