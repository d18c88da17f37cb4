import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { ZooKeeperNotFoundError } from "./errors.js";

const run = promisify(execFile);

const DEBIAN_HOME = "/usr/share/zookeeper";
const DEBIAN_JARS = "/usr/share/java";
const INSTALL_HINT =
  "Install it with `apt-get install zookeeper` (Debian/Ubuntu, as root), " +
  "or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper 3.6+ release (the -bin tarball).";
const JAVA_HINT = "Install a Java runtime (`apt-get install default-jre-headless`) or set JAVA_HOME.";

/** Where ZooKeeper's server classes and a Java runtime live. */
export interface ZooKeeperInstallation {
  /** `debian` for the distribution package (jars in /usr/share/java), `apache` for a release tarball. */
  kind: "debian" | "apache";
  home: string;
  /** e.g. "3.8.0", when the jar names tell. */
  version: string | undefined;
  /** Entries for java's -cp: the server jar(s), their dependencies and a logging backend. */
  classpath: string[];
  /** Absolute path of the java executable. */
  java: string;
}

export interface FindZooKeeperOptions {
  /** When nothing is found and we are root on Debian, install the `zookeeper` package with apt-get. */
  install?: boolean;
}

/**
 * Finds ZooKeeper: `$ZOOKEEPER_HOME`, else Debian's /usr/share/zookeeper; with `install`, apt-installs it
 * when missing. Throws ZooKeeperNotFoundError saying what to install.
 */
export async function findZooKeeper(options: FindZooKeeperOptions = {}): Promise<ZooKeeperInstallation> {
  const fromEnv = process.env.ZOOKEEPER_HOME;
  if (fromEnv) {
    // An explicit choice is never overridden by an install.
    return withJava(layoutAt(fromEnv) ?? notFound(`ZOOKEEPER_HOME=${fromEnv} holds no ZooKeeper jars.`));
  }
  let layout = layoutAt(DEBIAN_HOME);
  if (layout === undefined || findJava() === undefined) {
    if (options.install && canApt()) {
      await aptInstall(layout === undefined ? "zookeeper" : "default-jre-headless");
      layout = layoutAt(DEBIAN_HOME);
    }
  }
  if (layout === undefined) {
    const why = options.install && !canApt() ? " (cannot install it here: not root, or no apt-get)" : "";
    notFound(`ZooKeeper was not found${why}.`);
  }
  return withJava(layout);
}

function withJava(layout: Omit<ZooKeeperInstallation, "java">): ZooKeeperInstallation {
  const [major = 0, minor = 0] = (layout.version ?? "").split(".").map(Number);
  if (layout.version !== undefined && (major < 3 || (major === 3 && minor < 6))) {
    // Older servers lack the 4lw whitelist and admin settings the harness writes.
    throw new ZooKeeperNotFoundError(
      `ZooKeeper ${layout.version} at ${layout.home} is too old. ${INSTALL_HINT}`,
    );
  }
  const java = findJava();
  if (java === undefined) {
    throw new ZooKeeperNotFoundError(
      `ZooKeeper is at ${layout.home}, but no \`java\` was found. ${JAVA_HINT}`,
    );
  }
  return { ...layout, java };
}

function notFound(reason: string): never {
  const java = findJava() === undefined ? ` Java is missing too: ${JAVA_HINT}` : "";
  throw new ZooKeeperNotFoundError(`${reason} ${INSTALL_HINT}${java}`);
}

function layoutAt(home: string): Omit<ZooKeeperInstallation, "java"> | undefined {
  if (!existsSync(home)) return undefined;
  // Apache release: lib/ holds zookeeper-3.x.y.jar and every dependency, conf/ the logback/log4j config.
  const lib = join(home, "lib");
  const libJars = jarsIn(lib);
  const serverJar = libJars.find((name) => /^zookeeper-\d+\.\d+\.\d+\.jar$/.test(name));
  if (serverJar !== undefined) {
    return {
      kind: "apache",
      home,
      version: versionOf(serverJar),
      classpath: [join(home, "conf"), ...libJars.map((name) => join(lib, name))],
    };
  }
  // Debian: bin/zkEnv.sh names the classpath; zookeeper.jar's manifest Class-Path pulls in the rest.
  const zkEnv = join(home, "bin", "zkEnv.sh");
  if (existsSync(zkEnv)) {
    const classpath = debianClasspath(zkEnv).filter((entry) => existsSync(entry));
    if (!classpath.some((entry) => entry.endsWith(".jar"))) return undefined;
    // The manifest brings only slf4j-api, so without a backend the server logs nothing at all.
    const simple = join(DEBIAN_JARS, "slf4j-simple.jar");
    if (existsSync(simple)) classpath.push(simple);
    const versioned = jarsIn(DEBIAN_JARS).find((name) => /^zookeeper-\d+\.\d+\.\d+\.jar$/.test(name));
    return { kind: "debian", home, version: versioned && versionOf(versioned), classpath };
  }
  return undefined;
}

function debianClasspath(zkEnv: string): string[] {
  const match = /^\s*CLASSPATH="?([^"\n]+)"?/m.exec(readFileSync(zkEnv, "utf8"));
  const raw = match?.[1] ?? `/etc/zookeeper/conf:${DEBIAN_JARS}/zookeeper.jar`;
  return raw.split(":").filter((entry) => entry !== "" && !entry.includes("$"));
}

function jarsIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => name.endsWith(".jar"))
      .sort();
  } catch {
    return [];
  }
}

function versionOf(jarName: string): string | undefined {
  return /(\d+\.\d+\.\d+)/.exec(jarName)?.[1];
}

/** $JAVA_HOME/bin/java, else `java` on PATH. */
export function findJava(): string | undefined {
  const javaHome = process.env.JAVA_HOME;
  if (javaHome && isExecutable(join(javaHome, "bin", "java"))) return join(javaHome, "bin", "java");
  for (const dir of (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter)) {
    const candidate = join(dir, "java");
    if (dir !== "" && isExecutable(candidate)) return realpathSync(candidate);
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function canApt(): boolean {
  return process.getuid?.() === 0 && isExecutable("/usr/bin/apt-get");
}

let aptUpdated: Promise<unknown> | undefined;

async function aptInstall(pkg: string): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  process.stderr.write(`@zkgrid/testing: installing ${pkg} with apt-get\n`);
  try {
    // One `apt-get update` per process: the package lists do not change during a test run.
    aptUpdated ??= run("apt-get", ["update"], { env, maxBuffer: 64 * 1024 * 1024 });
    await aptUpdated;
    await run("apt-get", ["install", "-y", "--no-install-recommends", pkg], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    throw new ZooKeeperNotFoundError(`apt-get install ${pkg} failed. ${INSTALL_HINT}`, { cause: error });
  }
}
