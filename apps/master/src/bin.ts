#!/usr/bin/env node
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CredentialsError, type GridCredentials, readCredentials } from "@zkgrid/core";
import { createLogger, isLogLevel } from "@zkgrid/log";
import { parseDuration } from "@zkgrid/protocol";
import { startMaster } from "./master.js";

const USAGE = `Usage: zkgrid-master <name> [options]

Starts a zkgrid master named <name>. Masters elect one leader; the others wait as hot standbys.

Options:
  --connect <hosts>        ZooKeeper connect string (env ZKGRID_CONNECT; default 127.0.0.1:2181)
  --root <path>            the grid's root znode (env ZKGRID_ROOT; default /zkgrid)
  --session-timeout <duration>  ZooKeeper session timeout (default 10s)
  --auth <file>            a file holding digest credentials user:password (env ZKGRID_AUTH_FILE;
                           or the credentials themselves in env ZKGRID_AUTH, never on the command line)
  --acl <entries>          more ACL entries for the nodes it creates, e.g. digest:user:<hash>:cdrwa
                           (env ZKGRID_ACL; see "ACLs" in
                           ${fileURLToPath(new URL("../docs/operators.md", import.meta.url))})
  --keep-results <n>       result nodes kept under <root>/results and <root>/replies together; older ones
                           are deleted (default 5000)
  --http-port <n>          serve the dashboard and /metrics on this port (0: any free port)
  --http-host <addr>       the address for it (default 127.0.0.1)
  --log-level <level>      debug, info, warn or error (default info)
  -h, --help               show this help
  -v, --version            show the version

Durations: milliseconds, or with a unit: 500ms, 30s, 2m.

Run several masters with different names for failover:
  pnpm --filter master start -- master1
  pnpm --filter master start -- master2`;

const VERSION = "0.1.0";

function fail(message: string): never {
  process.stderr.write(`zkgrid-master: ${message}\nRun zkgrid-master --help for usage.\n`);
  process.exit(2);
}

function positiveDuration(flag: string, text: string): number {
  const ms = parseDuration(text) ?? 0;
  if (ms < 1) fail(`--${flag}: expected a duration such as 30000, 30s or 500ms, got "${text}"`);
  return ms;
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--")),
      allowPositionals: true,
      strict: true,
      options: {
        connect: { type: "string" },
        root: { type: "string" },
        "session-timeout": { type: "string" },
        auth: { type: "string" },
        acl: { type: "string" },
        "log-level": { type: "string" },
        "http-port": { type: "string" },
        "keep-results": { type: "string" },
        "http-host": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    });
  } catch (err) {
    fail((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (positionals.length !== 1)
    fail(positionals.length === 0 ? "a master name is required" : `unexpected argument "${positionals[1]}"`);
  const name = positionals[0] as string;
  const level = (values["log-level"] as string | undefined) ?? "info";
  if (!isLogLevel(level)) fail(`--log-level must be one of debug, info, warn, error (got "${level}")`);
  const timeoutText = values["session-timeout"] as string | undefined;
  const sessionTimeoutMs =
    timeoutText === undefined ? 10_000 : positiveDuration("session-timeout", timeoutText);
  const httpPortText = values["http-port"] as string | undefined;
  const httpPort = httpPortText === undefined ? undefined : Number(httpPortText);
  if (httpPort !== undefined && !(/^\d+$/.test(httpPortText ?? "") && httpPort <= 65535)) {
    fail(`--http-port: expected a port number 0..65535, got "${httpPortText}"`);
  }
  const keepText = values["keep-results"] as string | undefined;
  const keepResults = keepText === undefined ? undefined : Number(keepText);
  if (keepResults !== undefined && !(/^\d+$/.test(keepText ?? "") && keepResults >= 1)) {
    fail(`--keep-results: expected a whole number ≥ 1, got "${keepText}"`);
  }
  let credentials: GridCredentials;
  try {
    credentials = readCredentials({
      authFile: values.auth as string | undefined,
      acl: values.acl as string | undefined,
    });
  } catch (err) {
    if (!(err instanceof CredentialsError)) throw err;
    fail(err.message);
  }
  const logger = createLogger({ name: "master", level, base: { master: name } });

  let master: Awaited<ReturnType<typeof startMaster>>;
  try {
    master = await startMaster({
      name,
      connectString: (values.connect as string | undefined) ?? process.env.ZKGRID_CONNECT ?? "127.0.0.1:2181",
      root: (values.root as string | undefined) ?? process.env.ZKGRID_ROOT ?? "/zkgrid",
      sessionTimeoutMs,
      ...(credentials.auth === undefined ? {} : { auth: credentials.auth }),
      ...(credentials.acl === undefined ? {} : { acl: credentials.acl }),
      logger,
      ...(keepResults === undefined ? {} : { keepResults }),
      ...(httpPort === undefined ? {} : { httpPort, httpHost: values["http-host"] as string | undefined }),
    });
  } catch (err) {
    process.stderr.write(`zkgrid-master: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  master.onRole((role) => {
    if (role !== "stopped" || stopping) return;
    process.stderr.write("zkgrid-master: stopped: it could not stay in the election (see the log)\n");
    process.exit(1);
  });
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger("info", `received ${signal}; stopping`);
    void master.stop().then(
      () => process.exit(0),
      (err) => {
        logger("error", "stop failed", { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

void main();
