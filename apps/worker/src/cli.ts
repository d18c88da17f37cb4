import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type ConnectionOptions, CredentialsError, markErrorClass, readCredentials } from "@zkgrid/core";
import {
  labelProblem,
  MAX_CAPACITY,
  parseDuration,
  rootPathProblem,
  workerNameProblem,
} from "@zkgrid/protocol";
import { WorkerError } from "./errors.js";
import {
  answerAddressProblem,
  DEFAULT_CONNECT_STRING,
  DEFAULT_GRACE_MS,
  DEFAULT_ROOT,
  DEFAULT_SESSION_TIMEOUT_MS,
  VERSION,
} from "./worker-options.js";

/** A bad command line: the bin prints the message and exits with code 2. */
export class UsageError extends WorkerError {
  static {
    markErrorClass(UsageError, "@zkgrid/worker/UsageError");
  }
  declare readonly code: "USAGE";
  constructor(message: string) {
    super(message, "USAGE");
    this.name = "UsageError";
  }
}

export const USAGE = `Usage: zkgrid-worker <name> [options]

Runs zkgrid tasks assigned to worker <name>. Output goes to <cwd>/<name>/<task-id>/.

Options:
  --connect <hosts>          ZooKeeper servers (env ZKGRID_CONNECT; default ${DEFAULT_CONNECT_STRING})
  --root <path>              the grid's root znode (env ZKGRID_ROOT; default ${DEFAULT_ROOT})
  --concurrency <n>          tasks run at once (default: the number of CPUs, ${availableParallelism()} here)
  --prefetch <n>             tasks held beyond --concurrency, ready to start, fixed at <n> (0: none).
                             Default: adaptive, 0 while the queue is short or tasks are long, up to
                             the larger of --concurrency and 32 while many short tasks wait; see
                             "Prefetch" in ${fileURLToPath(new URL("../docs/operators.md", import.meta.url))}
  --labels <a,b>             labels that tasks may require
  --cwd <dir>                working directory (default: the current directory)
  --grace <duration>         on SIGINT/SIGTERM, how long running tasks may finish (default ${DEFAULT_GRACE_MS / 1000}s)
  --handlers <module>        a module whose default export (or "handlers") maps handler names to functions
  --session-timeout <duration>  ZooKeeper session timeout (default ${DEFAULT_SESSION_TIMEOUT_MS / 1000}s)
  --cutoff-stop <duration>   stop running tasks once cut off from every ZooKeeper server this long
                             (default: a quarter of --session-timeout, so that they end before the
                             leader can hand them out again; 0 or off: never)
  --auth <file>              a file holding digest credentials user:password (env ZKGRID_AUTH_FILE;
                             or the credentials themselves in env ZKGRID_AUTH, never on the command line)
  --acl <entries>            more ACL entries for the nodes it creates, e.g. digest:user:<hash>:cdrwa
                             (env ZKGRID_ACL; see "ACLs" in
                             ${fileURLToPath(new URL("../docs/operators.md", import.meta.url))})
  --perl <path>              the Perl that runs the task launcher (env ZKGRID_PERL; default perl on the
                             PATH); without one, tasks are spawned by the worker itself and are not
                             killed with it if it is killed (see the worker's README)
  --answer-address <addr>    where submitters ask for their direct tasks' answers: host:port, host or
                             :port (env ZKGRID_ANSWER_ADDRESS; default: the address this host reaches
                             ZooKeeper from, any free port; off: none, answers are read from ZooKeeper)
  --metrics-port <n>         serve Prometheus /metrics on this port (0: any free port)
  --metrics-host <addr>      the address for it (default 127.0.0.1)
  --log-level <level>        debug, info, warn or error (default info)
  -h, --help                 show this help
  -V, --version              show the version

Durations: milliseconds, or with a unit: 500ms, 30s, 2m.
A second SIGINT/SIGTERM kills running tasks at once. Exit codes: 0 stopped, 1 failed, 2 bad usage.
`;

/** What the command line asks for. */
export type CliCommand =
  | { kind: "help" }
  | { kind: "version"; version: string }
  | ({
      kind: "run";
      name: string;
      concurrency: number | undefined;
      prefetch: number | undefined;
      labels: string[];
      cwd: string | undefined;
      graceMs: number;
      /** undefined: the default; false: never. */
      cutoffStopMs: number | false | undefined;
      handlers: string | undefined;
      perl: string | undefined;
      /** undefined: the default; false: none. */
      answerAddress: string | false | undefined;
      metricsPort: number | undefined;
      metricsHost: string;
      logLevel: "debug" | "info" | "warn" | "error";
    } & Required<Pick<ConnectionOptions, "connectString" | "root" | "sessionTimeoutMs">> &
      Pick<ConnectionOptions, "auth" | "acl">);

function durationFlag(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new UsageError(`--${flag}: expected a duration such as 30000, 30s or 500ms, got "${text}"`);
  return ms;
}

function parseInteger(flag: string, text: string, min: 0 | 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
    const expected = min === 1 ? "a positive integer" : "an integer ≥ 0";
    throw new UsageError(`--${flag}: expected ${expected}, got "${text}"`);
  }
  return n;
}

function parseSessionTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_SESSION_TIMEOUT_MS;
  const ms = durationFlag("session-timeout", text);
  if (ms < 1) throw new UsageError(`--session-timeout: must be more than 0, got "${text}"`);
  return ms;
}

/** Parses the worker's arguments (without `node` and the script). Throws `UsageError`. */
export function parseWorkerArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): CliCommand {
  // `pnpm start -- worker1 --concurrency 2` passes the "--" on: it must not end the options here.
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    // Node's message goes on about positionals after "--"; its first sentence names the problem.
    const message = (error as Error).message;
    throw new UsageError(message.split(". ")[0] ?? message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version", version: VERSION };
  if (positionals.length === 0) throw new UsageError("missing the worker's <name>");
  if (positionals.length > 1)
    throw new UsageError(`expected one <name>, got ${positionals.length}: ${positionals.join(" ")}`);
  const name = positionals[0]!;
  const nameProblem = workerNameProblem(name);
  if (nameProblem !== undefined)
    throw new UsageError(`<name>: invalid worker name "${name}": ${nameProblem}`);
  const root = values.root ?? env.ZKGRID_ROOT ?? DEFAULT_ROOT;
  const rootProblem = rootPathProblem(root);
  if (rootProblem !== undefined) throw new UsageError(`--root: invalid root path "${root}": ${rootProblem}`);
  const connectString = values.connect ?? env.ZKGRID_CONNECT ?? DEFAULT_CONNECT_STRING;
  if (connectString.trim() === "") throw new UsageError("--connect: must not be empty");
  const labels =
    values.labels === undefined
      ? []
      : values.labels
          .split(",")
          .map((label) => label.trim())
          .filter((label) => label !== "");
  for (const label of labels) {
    const problem = labelProblem(label);
    if (problem !== undefined) throw new UsageError(`--labels: invalid label "${label}": ${problem}`);
  }
  let credentials: ReturnType<typeof readCredentials>;
  try {
    credentials = readCredentials({ authFile: values.auth, acl: values.acl, env });
  } catch (error) {
    if (error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  const concurrency =
    values.concurrency === undefined ? undefined : parseInteger("concurrency", values.concurrency, 1);
  const prefetch = values.prefetch === undefined ? undefined : parseInteger("prefetch", values.prefetch, 0);
  if ((concurrency ?? availableParallelism()) + (prefetch ?? 0) > MAX_CAPACITY) {
    throw new UsageError(`--prefetch: with --concurrency, at most ${MAX_CAPACITY} tasks in all`);
  }
  return {
    kind: "run",
    name,
    connectString,
    root,
    concurrency,
    prefetch,
    labels,
    cwd: values.cwd,
    graceMs: values.grace === undefined ? DEFAULT_GRACE_MS : durationFlag("grace", values.grace),
    handlers: values.handlers,
    cutoffStopMs: parseCutoffStop(values["cutoff-stop"]),
    sessionTimeoutMs: parseSessionTimeout(values["session-timeout"]),
    auth: credentials.auth,
    acl: credentials.acl,
    perl: parsePerl(values.perl ?? env.ZKGRID_PERL),
    answerAddress: parseAnswerAddress(values["answer-address"] ?? env.ZKGRID_ANSWER_ADDRESS),
    metricsPort: values["metrics-port"] === undefined ? undefined : parsePort(values["metrics-port"]),
    metricsHost: values["metrics-host"] ?? "127.0.0.1",
    logLevel: parseLogLevel(values["log-level"]),
  };
}

function parseCutoffStop(text: string | undefined): number | false | undefined {
  if (text === undefined) return undefined;
  if (text.trim() === "off") return false;
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new UsageError(`--cutoff-stop: expected a duration such as 1s or 500ms, or off, got "${text}"`);
  return ms === 0 ? false : ms;
}

function parseAnswerAddress(text: string | undefined): string | false | undefined {
  if (text === undefined) return undefined;
  if (text.trim() === "off") return false;
  const problem = answerAddressProblem(text);
  if (problem !== undefined) throw new UsageError(`--answer-address: "${text}": ${problem}, or off`);
  return text;
}

function parsePerl(text: string | undefined): string | undefined {
  if (text !== undefined && text.trim() === "") throw new UsageError("--perl: must not be empty");
  return text;
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n > 65535) {
    throw new UsageError(`--metrics-port: expected a port number 0..65535, got "${text}"`);
  }
  return n;
}

function parseLogLevel(text: string | undefined): "debug" | "info" | "warn" | "error" {
  if (text === undefined) return "info";
  if (text === "debug" || text === "info" || text === "warn" || text === "error") return text;
  throw new UsageError(`--log-level: expected debug, info, warn or error, got "${text}"`);
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      connect: { type: "string" },
      root: { type: "string" },
      concurrency: { type: "string" },
      prefetch: { type: "string" },
      labels: { type: "string" },
      cwd: { type: "string" },
      grace: { type: "string" },
      handlers: { type: "string" },
      "session-timeout": { type: "string" },
      "cutoff-stop": { type: "string" },
      auth: { type: "string" },
      acl: { type: "string" },
      perl: { type: "string" },
      "answer-address": { type: "string" },
      "metrics-port": { type: "string" },
      "metrics-host": { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
    },
  });
}
