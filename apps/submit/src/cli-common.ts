import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  type ConnectionOptions,
  CredentialsError,
  markErrorClass,
  messageOf,
  readCredentials,
  ZkgridError,
} from "@zkgrid/core";
import type { GridObserver } from "@zkgrid/observer";
import { parseDuration } from "@zkgrid/protocol";
import packageJson from "../package.json" with { type: "json" };
import type { CliIo } from "./cli.js";
import { connectGrid, type GridClient } from "./grid-client.js";

/** The name the subcommands go by in messages. */
export const PROGRAM = "zkgrid";
/** Someone is waiting at a prompt: shorter than the library's default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** Bad usage or input: exit status 2, nothing written. */
export class CliUsageError extends ZkgridError {
  static {
    markErrorClass(CliUsageError, "@zkgrid/submit/CliUsageError");
  }
  override readonly name = "CliUsageError";
  declare readonly code: "USAGE";
  constructor(message: string) {
    super(message, "USAGE");
  }
}

/** What every command that reaches the grid takes. */
export const GRID_OPTIONS = {
  connect: { type: "string" },
  root: { type: "string" },
  auth: { type: "string" },
  acl: { type: "string" },
  "connect-timeout": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The grid flags, as every command's help lists them. */
export const GRID_FLAGS_USAGE = `Grid:
  --connect <hosts>       ZooKeeper connect string (env ZKGRID_CONNECT, default 127.0.0.1:2181)
  --root <path>           the grid's root znode (env ZKGRID_ROOT, default /zkgrid)
  --auth <file>           a file holding digest credentials user:password (env ZKGRID_AUTH_FILE;
                          or the credentials themselves in env ZKGRID_AUTH, never on the command line)
  --acl <entries>         more ACL entries for the nodes it creates, e.g. digest:user:<hash>:cdrwa
                          (env ZKGRID_ACL; see "ACLs" in
                          ${fileURLToPath(new URL("../docs/operators.md", import.meta.url))})
  --connect-timeout <duration>
                          give up when no ZooKeeper session is made by then (default 15s)`;

export const DURATIONS_USAGE = "Durations: milliseconds, or with a unit: 500ms, 30s, 2m.";

/** The end of a subcommand's help: the grid flags, --help and how durations are written. */
export const GRID_USAGE = `${GRID_FLAGS_USAGE}
  -h, --help              print this help

${DURATIONS_USAGE}`;

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** Parses a subcommand's arguments strictly; throws CliUsageError naming the command. */
export function parseCommand<O extends OptionSpec>(
  command: string,
  argv: readonly string[],
  options: O,
): {
  values: ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>>["values"];
  positionals: string[];
} {
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (err) {
    throw new CliUsageError(`${messageOf(err)}\nTry "${PROGRAM} ${command} --help".`);
  }
}

/** A positive integer flag value, or undefined when absent. */
export function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new CliUsageError(`--${flag}: expected a positive integer, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** A positive duration flag value (milliseconds, or 500ms, 30s, 2m), or undefined when absent. */
export function positiveDuration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms < 1) {
    throw new CliUsageError(
      `--${flag}: expected a positive duration such as 30000, 30s or 500ms, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** Where and how a command reaches the grid, from the grid options. */
export interface GridTarget
  extends Required<Pick<ConnectionOptions, "connectString" | "root">>,
    Pick<ConnectionOptions, "auth" | "acl"> {
  connectTimeoutMs: number;
}

export function gridTarget(
  values: { connect?: string; root?: string; auth?: string; acl?: string; "connect-timeout"?: string },
  io: CliIo,
): GridTarget {
  const { auth, acl } = gridCredentials(values, io);
  return {
    connectString: values.connect ?? io.env.ZKGRID_CONNECT ?? "127.0.0.1:2181",
    root: values.root ?? io.env.ZKGRID_ROOT ?? "/zkgrid",
    connectTimeoutMs:
      positiveDuration("connect-timeout", values["connect-timeout"]) ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(auth ? { auth } : {}),
    ...(acl ? { acl } : {}),
  };
}

/** `--auth <file>`, `--acl` and their environment variables; a literal password is bad usage. */
export function gridCredentials(
  values: { auth?: string; acl?: string },
  io: CliIo,
): Pick<ConnectionOptions, "auth" | "acl"> {
  try {
    const { auth, acl } = readCredentials({ authFile: values.auth, acl: values.acl, env: io.env });
    return { ...(auth ? { auth } : {}), ...(acl ? { acl } : {}) };
  } catch (err) {
    if (err instanceof CredentialsError) throw new CliUsageError(err.message);
    throw err;
  }
}

/**
 * An operator command needs a package that is not installed: exit status 1, naming it. The
 * observer and the dashboard are optional peers, so that the library does not pull them in.
 */
export class MissingPackageError extends ZkgridError {
  static {
    markErrorClass(MissingPackageError, "@zkgrid/submit/MissingPackageError");
  }
  override readonly name = "MissingPackageError";
  declare readonly code: "MISSING_PACKAGE";
  constructor(readonly packageName: string) {
    super(
      `needs ${packageName}, which is not installed: add it beside @zkgrid/submit ` +
        `(npm install ${packageName}@${packageJson.version})`,
      "MISSING_PACKAGE",
    );
  }
}

/** @zkgrid/observer, loaded only by the commands that read the grid. */
export async function loadObserver(): Promise<typeof import("@zkgrid/observer")> {
  try {
    return await import("@zkgrid/observer");
  } catch (err) {
    throw missingOr(err, "@zkgrid/observer");
  }
}

/** @zkgrid/dashboard, loaded only by `zkgrid dashboard`. */
export async function loadDashboard(): Promise<typeof import("@zkgrid/dashboard")> {
  try {
    return await import("@zkgrid/dashboard");
  } catch (err) {
    throw missingOr(err, "@zkgrid/dashboard");
  }
}

/** A MissingPackageError when `err` says `name` itself cannot be found, else `err`. */
function missingOr(err: unknown, name: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const notFound = code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
  return notFound && messageOf(err).includes(`'${name}'`) ? new MissingPackageError(name) : err;
}

/** Connects an observer; a failure is reported (exit status 1) rather than thrown. */
export async function openObserver(target: GridTarget, io: CliIo): Promise<GridObserver | undefined> {
  const { observeGrid } = await loadObserver();
  try {
    return await observeGrid(target);
  } catch (err) {
    io.stderr.write(
      `${PROGRAM}: cannot read the grid at ${target.connectString}${target.root}: ${messageOf(err)}\n`,
    );
    return undefined;
  }
}

/** How a command run by `withGrid` reports a failure. */
export interface GridCommandFailures {
  /** What the failure's line starts with, e.g. "zkgrid schedule". */
  prefix: string;
  /** Picks out the failures that mean the grid refused the input, nothing written (exit status 2). */
  refused?: (err: unknown) => boolean;
}

/**
 * Runs a command on a grid client of its own, closed afterwards. A failure is printed on stderr, with
 * exit status 2 when the grid refused the input, 1 otherwise and when the grid cannot be reached.
 */
export async function withGrid(
  target: GridTarget,
  io: CliIo,
  { prefix, refused }: GridCommandFailures,
  run: (grid: GridClient) => Promise<number>,
): Promise<number> {
  let grid: GridClient;
  try {
    grid = await connectGrid(target);
  } catch (err) {
    io.stderr.write(`${prefix}: cannot connect to ZooKeeper at ${target.connectString}: ${messageOf(err)}\n`);
    return 1;
  }
  try {
    return await run(grid);
  } catch (err) {
    io.stderr.write(`${prefix}: ${messageOf(err)}\n`);
    return refused?.(err) ? 2 : 1;
  } finally {
    await grid.close();
  }
}

/** Ids for a message: the first ten, then how many more. */
export function idList(ids: readonly string[]): string {
  const more = ids.length > 10 ? ` and ${ids.length - 10} more` : "";
  return `${ids.slice(0, 10).join(" ")}${more}`;
}
