import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServerStartError } from "./errors.js";
import { findZooKeeper, type ZooKeeperInstallation } from "./find.js";
import { fourLetterWord, type ServerMode, serverMode } from "./four-letter.js";
import { freePorts } from "./ports.js";
import { removeDirAtExit, WatchedProcess } from "./process.js";
import { sleep } from "./wait.js";

const LOOPBACK: ServerHost = { address: "127.0.0.1", commandPrefix: [] };
const PORT_RETRIES = 3;

/** Settings a config line can take. */
export type ConfigValue = string | number | boolean;

export interface ServerOptions {
  /** From findZooKeeper(); found (not installed) on each start when omitted. */
  zookeeper?: ZooKeeperInstallation;
  /** Let findZooKeeper apt-install ZooKeeper when `zookeeper` is omitted and none is found. */
  install?: boolean;
  /** tickTime; default 500 so that sessions as short as 1 s are allowed. */
  tickTimeMs?: number;
  /** Default 2 × tickTimeMs (ZooKeeper's own floor). */
  minSessionTimeoutMs?: number;
  /** Default 60 000. */
  maxSessionTimeoutMs?: number;
  /** `4lw.commands.whitelist`; default "*". */
  fourLetterWords?: string;
  /**
   * Refuse every request of a client that has not authenticated (ZooKeeper 3.7+:
   * `enforce.auth.enabled`, `enforce.auth.schemes`). `true` means the digest scheme. Such a client still
   * gets a session, but its first request fails with -124 (the client's AuthRequiredError) and the
   * server closes its connection.
   */
  requireAuth?: boolean | string[];
  /**
   * Digest credentials "user:password" that pass every ACL (ZooKeeper's super digest), for a test that
   * inspects or cleans up nodes other identities own. Only its hash reaches the java command line.
   */
  superUser?: string;
  /** More zoo.cfg lines (e.g. authProvider.1=…); they override the defaults. */
  config?: Record<string, ConfigValue>;
  /** More JVM flags (e.g. -Djava.security.auth.login.config=…). */
  jvmFlags?: string[];
  /** Give up on a server that does not answer within this long; default 60 000. */
  startTimeoutMs?: number;
  /** Client port; a free one when omitted. */
  port?: number;
  /** Run the server on a test host (its namespace and address) rather than on 127.0.0.1; see startTestNet(). */
  host?: ServerHost;
  /**
   * A directory to keep the server's config, data and log in, kept after exit (for a local grid whose
   * tasks should survive a restart). A throw-away directory, deleted at exit, when omitted.
   */
  dir?: string;
}

/** Where a server runs: the address it binds and the command prefix that enters its network namespace. */
export interface ServerHost {
  readonly address: string;
  /** e.g. ["ip", "netns", "exec", "zkgrid-…-zk1"]; java runs as its last argument's child, same pid. */
  readonly commandPrefix: readonly string[];
}

/** What a ZkServer needs to (re)start; @internal */
export interface ServerSpec {
  zookeeper: ZooKeeperInstallation;
  host: ServerHost;
  rootDir: string;
  port: number;
  id: number | undefined;
  config: Record<string, ConfigValue>;
  jvmFlags: string[];
  startTimeoutMs: number;
}

export interface RestartOptions {
  /**
   * Wait until the server serves clients (default). Set false for an ensemble member that cannot reach a
   * quorum yet: restart() then returns once the process answers `ruok`.
   */
  waitUntilServing?: boolean;
}

/**
 * A ZooKeeper server process on 127.0.0.1 (or a test host), standalone or one member of a ZkEnsemble.
 * Made by startServer() or startEnsemble().
 */
export class ZkServer {
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:port", for this server alone. */
  readonly connectString: string;
  /** myid within an ensemble; undefined when standalone. */
  readonly id: number | undefined;
  readonly dataDir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly zookeeper: ZooKeeperInstallation;
  private readonly spec: ServerSpec;
  private process: WatchedProcess | undefined;
  private paused = false;

  /** @internal use startServer() or startEnsemble() */
  constructor(spec: ServerSpec) {
    this.spec = spec;
    this.zookeeper = spec.zookeeper;
    this.port = spec.port;
    this.id = spec.id;
    this.host = spec.host.address;
    this.connectString = `${this.host}:${spec.port}`;
    this.dataDir = join(spec.rootDir, "data");
    this.configFile = join(spec.rootDir, "zoo.cfg");
    this.logFile = join(spec.rootDir, "server.log");
    mkdirSync(this.dataDir, { recursive: true });
    if (spec.id !== undefined) writeFileSync(join(this.dataDir, "myid"), `${spec.id}\n`);
    writeFileSync(this.configFile, renderConfig({ ...spec.config, dataDir: this.dataDir }));
  }

  /** The java process id while it runs. */
  get pid(): number | undefined {
    return this.process?.running ? this.process.pid : undefined;
  }

  get running(): boolean {
    return this.process?.running ?? false;
  }

  /** True between pause() and resume(). */
  get isPaused(): boolean {
    return this.running && this.paused;
  }

  /** Starts java and waits until it answers; @internal use restart() */
  async launch(waitUntilServing = true): Promise<void> {
    if (this.running) throw new Error(`server ${this.connectString} is already running`);
    appendFileSync(this.logFile, `=== @zkgrid/testing: starting ${this.connectString} ===\n`);
    const [command = this.zookeeper.java, ...prefixArgs] = [
      ...this.spec.host.commandPrefix,
      this.zookeeper.java,
    ];
    const started = new WatchedProcess(command, [...prefixArgs, ...this.javaArgs()], this.logFile);
    this.process = started;
    this.paused = false;
    const deadline = Date.now() + this.spec.startTimeoutMs;
    for (;;) {
      if (!started.running) {
        const exit = await started.exited;
        throw new ServerStartError(
          `ZooKeeper on ${this.connectString} exited (code ${exit.code}, signal ${exit.signal}) before it served`,
          this.logTail(),
        );
      }
      if (await this.answers(waitUntilServing)) return;
      if (Date.now() > deadline) {
        await started.kill();
        throw new ServerStartError(
          `ZooKeeper on ${this.connectString} did not ${waitUntilServing ? "serve" : "answer"} ` +
            `within ${this.spec.startTimeoutMs} ms`,
          this.logTail(),
        );
      }
      await Promise.race([sleep(50), started.exited]);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. The data dir stays. */
  async stop(graceMs = 5000): Promise<void> {
    const current = this.process;
    if (current?.running) await current.terminate(graceMs);
    this.paused = false;
  }

  /** SIGKILL: a crash, without a clean shutdown. Resolves once the process is gone. */
  async kill(): Promise<void> {
    const current = this.process;
    if (current?.running) await current.kill();
    this.paused = false;
  }

  /** SIGSTOP: the server freezes with its sockets open, as in a long GC pause. */
  pause(): void {
    if (!this.running) throw new Error(`server ${this.connectString} is not running`);
    this.process?.signal("SIGSTOP");
    this.paused = true;
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.process?.signal("SIGCONT");
    this.paused = false;
  }

  /** Stops the server if it runs, then starts it again on the same port with the same data. */
  async restart(options: RestartOptions = {}): Promise<void> {
    await this.stop();
    await this.launch(options.waitUntilServing ?? true);
  }

  /** The server's role per `srvr`, or undefined while it does not serve. */
  mode(timeoutMs = 2000): Promise<ServerMode | undefined> {
    return serverMode(this.host, this.port, timeoutMs);
  }

  /** Sends a four-letter word (`srvr`, `mntr`, `cons`, `dump`, …) to this server. */
  fourLetterWord(word: string, timeoutMs = 2000): Promise<string> {
    return fourLetterWord(this.host, this.port, word, timeoutMs);
  }

  /** The last `lines` lines of the server's log (all its runs). */
  logTail(lines = 40): string {
    try {
      const text = readFileSync(this.logFile, "utf8").trimEnd();
      return text.split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  private async answers(waitUntilServing: boolean): Promise<boolean> {
    if (waitUntilServing) return (await this.mode(1000)) !== undefined;
    try {
      return (await this.fourLetterWord("ruok", 1000)) === "imok";
    } catch {
      return false;
    }
  }

  private javaArgs(): string[] {
    return [
      // Small and quick: several of these share a 2-core machine with the tests.
      "-Xmx256m",
      "-XX:+UseSerialGC",
      "-Djava.net.preferIPv4Stack=true",
      "-Dzookeeper.jmx.log4j.disable=true",
      "-Dzookeeper.admin.enableServer=false",
      `-Dzookeeper.log.dir=${this.spec.rootDir}`,
      // log4j-based releases (3.6, 3.7) and Debian's slf4j-simple: log to the console, i.e. our log file.
      "-Dzookeeper.root.logger=INFO,CONSOLE",
      "-Dzookeeper.console.threshold=INFO",
      "-Dorg.slf4j.simpleLogger.showDateTime=true",
      "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
      ...this.spec.jvmFlags,
      "-cp",
      this.zookeeper.classpath.join(":"),
      "org.apache.zookeeper.server.quorum.QuorumPeerMain",
      this.configFile,
    ];
  }
}

/**
 * Starts a standalone ZooKeeper on a free 127.0.0.1 port with a throw-away data dir, and resolves once it
 * serves. Throws ServerStartError (with the log tail) if it exits early or does not serve in time.
 */
export async function startServer(options: ServerOptions = {}): Promise<ZkServer> {
  const zookeeper = options.zookeeper ?? (await findZooKeeper({ install: options.install ?? false }));
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePorts(1))[0]!;
    const server = new ZkServer({
      ...serverSpecDefaults(zookeeper, options),
      port,
      id: undefined,
      config: { ...baseConfig(options, options.host), clientPort: port, ...options.config },
    });
    try {
      await server.launch();
      return server;
    } catch (error) {
      // Someone took the free port between our probe and java's bind: try fresh ports.
      const retry = error instanceof ServerStartError && error.portInUse && options.port === undefined;
      if (!retry || attempt >= PORT_RETRIES) throw error;
    }
  }
}

/** @internal */
export function serverSpecDefaults(
  zookeeper: ZooKeeperInstallation,
  options: ServerOptions,
  host: ServerHost | undefined = options.host,
): Pick<ServerSpec, "zookeeper" | "host" | "rootDir" | "jvmFlags" | "startTimeoutMs"> {
  let rootDir = options.dir;
  if (rootDir === undefined) {
    rootDir = mkdtempSync(join(tmpdir(), "zkgrid-zk-"));
    removeDirAtExit(rootDir);
  } else {
    mkdirSync(rootDir, { recursive: true });
  }
  const superFlags =
    options.superUser === undefined
      ? []
      : [`-Dzookeeper.DigestAuthenticationProvider.superDigest=${superDigest(options.superUser)}`];
  return {
    zookeeper,
    host: host ?? LOOPBACK,
    rootDir,
    jvmFlags: [...superFlags, ...(options.jvmFlags ?? [])],
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
  };
}

/** zoo.cfg entries shared by standalone servers and ensemble members; @internal */
export function baseConfig(options: ServerOptions, host: ServerHost = LOOPBACK): Record<string, ConfigValue> {
  const tickTime = options.tickTimeMs ?? 500;
  return {
    tickTime,
    initLimit: 10,
    syncLimit: 5,
    clientPortAddress: host.address,
    minSessionTimeout: options.minSessionTimeoutMs ?? 2 * tickTime,
    maxSessionTimeout: options.maxSessionTimeoutMs ?? 60_000,
    "admin.enableServer": false,
    "4lw.commands.whitelist": options.fourLetterWords ?? "*",
    // Throw-away data: skip fsync, which only slows tests down.
    forceSync: "no",
    ...authConfig(options.requireAuth),
  };
}

function authConfig(requireAuth: ServerOptions["requireAuth"]): Record<string, ConfigValue> {
  if (requireAuth === undefined || requireAuth === false) return {};
  const schemes = requireAuth === true ? ["digest"] : requireAuth;
  if (schemes.length === 0) throw new RangeError("requireAuth: name at least one scheme");
  // Keys ZooKeeper does not know become "zookeeper."-prefixed system properties, which is where it reads these.
  return { "enforce.auth.enabled": true, "enforce.auth.schemes": schemes.join(",") };
}

/** "user:base64(sha1(user:password))", the form of DigestAuthenticationProvider.superDigest. */
function superDigest(credentials: string): string {
  const colon = credentials.indexOf(":");
  if (colon <= 0) throw new RangeError('superUser: expected digest credentials "user:password"');
  return `${credentials.slice(0, colon)}:${createHash("sha1").update(credentials).digest("base64")}`;
}

function renderConfig(entries: Record<string, ConfigValue>): string {
  return `${Object.entries(entries)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n")}\n`;
}
