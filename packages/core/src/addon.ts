/**
 * The `zookeeper` native addon: loaded on the first connection (not on import, so a program that only
 * imports `@zkgrid/core` runs where the addon is unbuilt), and checked for zkgrid's hosts-once fix.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { AddonUnavailableError } from "./errors.js";
import type { Logger } from "./types.js";

const requireHere = createRequire(import.meta.url);

/** What `@zkgrid/core`'s install step writes beside the addon once it has rebuilt it with the fix. */
const PATCH_STAMP = join("build", "Release", ".zkgrid-resolution-patch");
const BINARY = join("build", "Release", "zookeeper.node");

const HOW_TO_BUILD =
  "With pnpm, approve the build of `zookeeper` (`pnpm approve-builds`, or add it to `onlyBuiltDependencies`), " +
  "then run `pnpm rebuild zookeeper`; with npm, run `npm rebuild zookeeper`. " +
  "The build needs a C compiler (gcc or clang), make and Python 3.";

const UNPATCHED =
  "the zookeeper addon lacks zkgrid's hosts-once fix: its C client resolves the connect string again after " +
  "every reply, about 13 µs of CPU per reply (about 10% on a lone task's latency, half the ceiling on task " +
  "creates), and it cannot add persistent watches (a worker lists its inbox after every lone task, one round " +
  "trip more)";
const REPATCH_NPM =
  "To fix it, run @zkgrid/core's install step again: `npm rebuild @zkgrid/core`, on a machine with a C " +
  "compiler, make and Python 3; its output says why the rebuild failed";
// pnpm skips @zkgrid/core's postinstall when its build is not approved, and also when its side-effects
// cache holds a build of it: the addon then comes from that cache (or a fresh build) without the fix.
const REPATCH_PNPM =
  "Installed by pnpm: @zkgrid/core's postinstall did not run, either because its build is not approved or " +
  "because pnpm's side-effects cache restored an unpatched addon and skipped it. To fix it, put `zookeeper` " +
  "and `@zkgrid/core` in `pnpm.onlyBuiltDependencies`, then run `pnpm rebuild @zkgrid/core` (it needs a C " +
  "compiler, make and Python 3; its output says why a rebuild failed). So that a later install does not undo " +
  "it, install with `side-effects-cache=false` in the project's .npmrc";
/** Where pnpm keeps the packages of a project (its virtual store). */
const PNPM_STORE_PATH = /[\\/]node_modules[\\/]\.pnpm[\\/]/;

export interface AddonStatus {
  /** Whether this process has loaded the addon (it loads on the first connection, or `addonStatus({ load: true })`). */
  loaded: boolean;
  /** Where the `zookeeper` package is installed; undefined when it cannot be found. */
  packageDir: string | undefined;
  /**
   * Whether the addon built there carries zkgrid's fix (its hosts resolved once, not after every reply):
   * the install step's stamp lies beside `build/Release/zookeeper.node`.
   */
  patched: boolean;
  /** Why loading failed, when it was tried and failed. */
  error: string | undefined;
}

// biome-ignore lint/suspicious/noExplicitAny: the addon's untyped CommonJS export
let addon: any;
let loadError: AddonUnavailableError | undefined;

/** The addon's `ZooKeeper` class; throws AddonUnavailableError (saying how to build it) when it will not load. */
export function loadAddon(): unknown {
  if (addon !== undefined) return addon;
  if (loadError !== undefined) throw loadError;
  try {
    addon = requireHere("zookeeper");
    return addon;
  } catch (error) {
    loadError = unavailable(error);
    throw loadError;
  }
}

function unavailable(error: unknown): AddonUnavailableError {
  const detail = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "MODULE_NOT_FOUND" && /'zookeeper'/.test(detail)) {
    return new AddonUnavailableError(
      `the ZooKeeper native addon (the \`zookeeper\` package) is not installed; install @zkgrid/core's dependencies. ${HOW_TO_BUILD}`,
      { cause: error },
    );
  }
  return new AddonUnavailableError(
    `the ZooKeeper native addon (the \`zookeeper\` package) is not built for this Node.js (${detail}). ${HOW_TO_BUILD}`,
    { cause: error },
  );
}

function packageDir(): string | undefined {
  try {
    return dirname(requireHere.resolve("zookeeper/package.json"));
  } catch {
    return undefined;
  }
}

/**
 * The addon's state: loaded or not, and whether it carries zkgrid's hosts-once fix. With `load: true`,
 * tries to load it first (and reports why it failed in `error`).
 */
export function addonStatus(options: { load?: boolean } = {}): AddonStatus {
  let error: string | undefined = loadError?.message;
  if (options.load && addon === undefined && loadError === undefined) {
    try {
      loadAddon();
    } catch (e) {
      error = (e as Error).message;
    }
  }
  const dir = packageDir();
  return {
    loaded: addon !== undefined,
    packageDir: dir,
    patched: dir !== undefined && existsSync(join(dir, BINARY)) && existsSync(join(dir, PATCH_STAMP)),
    error,
  };
}

/** Logs the cost of an addon without the fix, and how to get it: once per client, at its first connection. */
export function warnIfUnpatched(log: Logger): void {
  const { patched, packageDir: dir } = addonStatus();
  if (patched) return;
  const fix = dir !== undefined && PNPM_STORE_PATH.test(dir) ? REPATCH_PNPM : REPATCH_NPM;
  log("warn", `${UNPATCHED}. ${fix}`, { addon: dir });
}
