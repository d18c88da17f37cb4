import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePorts } from "@zkgrid/testing";
import { Redis } from "ioredis";
import { GuardedProcess } from "./processes.js";

const run = promisify(execFile);

/**
 * How the bench's Redis keeps its data: "none" (no snapshots, no AOF), or "aof-always" (every write
 * appended to the AOF and synced before Redis answers: the durability ZooKeeper gives by default).
 */
export type RedisPersistence = "none" | "aof-always";

/** A throw-away redis-server on 127.0.0.1 on a free port, stopped by the bench. */
export interface RedisServer {
  readonly port: number;
  readonly version: string;
  readonly process: GuardedProcess;
  stop(): Promise<void>;
}

function findRedisServer(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/sbin"])) {
    try {
      const path = join(dir, "redis-server");
      execFileSync(path, ["--version"], { stdio: "ignore" });
      return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Debian's redis-server, apt-installed when missing and we are root (as the harness does for ZooKeeper). */
async function ensureRedisServer(log: (line: string) => void): Promise<string> {
  const found = findRedisServer();
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0) {
    throw new Error("redis-server is missing: run `apt-get install redis-server` as root");
  }
  log("redis-server is missing: apt-get install redis-server");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-qq"], { env });
  await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "redis-server"], { env });
  const installed = findRedisServer();
  if (installed === undefined) throw new Error("apt-get installed redis-server, but it cannot be run");
  return installed;
}

export async function startRedis(
  workDir: string,
  log: (line: string) => void,
  persistence: RedisPersistence = "none",
): Promise<RedisServer> {
  const binary = await ensureRedisServer(log);
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error("no free port for Redis");
  const proc = new GuardedProcess(
    "redis",
    binary,
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--protected-mode",
      "yes",
      // Never snapshots; the AOF, when on, is what makes each write durable.
      "--save",
      "",
      ...(persistence === "aof-always"
        ? ["--appendonly", "yes", "--appendfsync", "always"]
        : ["--appendonly", "no"]),
      "--dir",
      workDir,
      "--daemonize",
      "no",
    ],
    { logFile: join(workDir, "redis.log") },
  );
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on("error", () => {});
  const deadline = Date.now() + 15_000;
  try {
    for (;;) {
      if (!proc.isRunning) throw new Error(`redis-server exited at start; see ${join(workDir, "redis.log")}`);
      try {
        if (client.status !== "ready") await client.connect();
        if ((await client.ping()) === "PONG") break;
      } catch {
        if (Date.now() > deadline) throw new Error("redis-server did not answer PING within 15 s");
        client.disconnect();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const info = await client.info("server");
    const version = /^redis_version:(\S+)/m.exec(info)?.[1] ?? "unknown";
    return { port, version, process: proc, stop: () => proc.stop() };
  } catch (error) {
    await proc.stop();
    throw error;
  } finally {
    client.disconnect();
  }
}

/** Redis's load per job, counted apart from the timed jobs. */
export interface RedisLoad {
  /**
   * Commands clients sent that write: scripts (BullMQ's Lua scripts all write, each one atomic append
   * to the AOF) and commands COMMAND INFO flags as writes. What scripts call inside is not counted.
   */
  writesPerJob: number;
  /** Every command clients sent (reads, blocking pops and stream reads included). */
  commandsPerJob: number;
  /** The writes per job by command (scripts by their SHA or name are all "evalsha"). */
  writesByCommand: Record<string, number>;
  /** Jobs counted. */
  jobs: number;
}

/**
 * Runs `jobs` jobs one at a time (`runJob`) under MONITOR and counts the commands clients sent for them;
 * MONITOR slows Redis down, so these jobs are never timed.
 */
export async function countRedisLoad(
  port: number,
  jobs: number,
  runJob: (i: number) => Promise<unknown>,
): Promise<RedisLoad> {
  const admin = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
  const monitor = await admin.monitor();
  const calls = new Map<string, number>();
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    if (source === "lua") return;
    const name = (args[0] ?? "").toLowerCase();
    calls.set(name, (calls.get(name) ?? 0) + 1);
  });
  try {
    for (let i = 0; i < jobs; i++) await runJob(i);
    // MONITOR lines trail the replies a little.
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    monitor.disconnect();
  }
  try {
    const perJob = (n: number) => Math.round((n / jobs) * 100) / 100;
    let writes = 0;
    let commands = 0;
    const writesByCommand: Record<string, number> = {};
    for (const [name, count] of calls) {
      commands += count;
      let write = /^(eval|evalsha|fcall)$/.test(name);
      if (!write) {
        const [info] = (await admin.command("INFO", name)) as [unknown[] | null];
        write = Array.isArray(info) && Array.isArray(info[2]) && (info[2] as string[]).includes("write");
      }
      if (!write) continue;
      writes += count;
      writesByCommand[name] = perJob(count);
    }
    return { writesPerJob: perJob(writes), commandsPerJob: perJob(commands), writesByCommand, jobs };
  } finally {
    admin.disconnect();
  }
}

/**
 * Until Redis has no AOF rewrite running or scheduled (at most `timeoutMs`; then it goes on): a
 * rewrite forks and writes the whole data set, and should not run into another side's round.
 */
export async function untilNoRewrite(port: number, timeoutMs = 60_000): Promise<void> {
  const client = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const info = await client.info("persistence");
      const busy = /^aof_rewrite_(in_progress|scheduled):1/m.test(info);
      if (!busy) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    client.disconnect();
  }
}
