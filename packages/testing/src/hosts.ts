import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import {
  type CommandResult,
  NetCommandError,
  type RunOptions,
  runCommand,
  runCommandQuietly,
} from "./net-command.js";
import type { ServerHost } from "./server.js";

/*
 * Test hosts are Linux network namespaces, each joined by a veth pair to one bridge of its net in the root
 * namespace. The bridge holds 10.213.<net>.254, so the test process itself reaches every host (ZooKeeper's
 * start probes, test clients), while hosts have no route anywhere but their own /24. Every name starts
 * with "zkgrid" and carries the creating pid, so sweepTestNets() can tell a crashed run's leftovers from a
 * live run's nets.
 */
const PREFIX = "zkgrid";
const SUBNET = "10.213";
const BRIDGE_OCTET = 254;
const MAX_HOSTS = 200;
/** Inside each host: the link to the bridge, and the nftables table that holds its faults. */
const HOST_LINK = "eth0";
const FAULT_TABLE = "zkgrid_fault";

const openNets = new Set<TestNet>();
let sequence = 0;
let exitHookInstalled = false;

export interface TestNetOptions {
  /** A label for error messages and the bridge's alias; default "net". */
  name?: string;
}

/** One test host: a network namespace with one address on its net. Made by TestNet.addHost(). */
export class TestHost implements ServerHost {
  readonly name: string;
  /** Its address on the net, e.g. "10.213.7.1". */
  readonly address: string;
  /** The network namespace's name (`ip netns`). */
  readonly namespace: string;
  /** Prefix a command with this to run it on the host; what startServer/startEnsemble's `host(s)` use. */
  readonly commandPrefix: readonly string[];
  readonly #track: (child: ChildProcess) => void;

  /** @internal use TestNet.addHost() */
  constructor(name: string, address: string, namespace: string, track: (child: ChildProcess) => void) {
    this.name = name;
    this.address = address;
    this.namespace = namespace;
    this.commandPrefix = ["ip", "netns", "exec", namespace];
    this.#track = track;
  }

  /** Runs a command on the host and resolves with its output; NetCommandError (with stderr) on failure. */
  exec(command: string, args: readonly string[] = [], options: RunOptions = {}): Promise<CommandResult> {
    return runCommand("ip", ["netns", "exec", this.namespace, command, ...args], options);
  }

  /** Starts a process on the host. TestNet.close() kills it (and anything else left on the host). */
  spawn(command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.namespace, command, ...args], options);
    this.#track(child);
    return child;
  }
}

/**
 * Hosts on one bridge, and the faults between them: isolate, partition, heal. close() kills every
 * process on its hosts and deletes every namespace, veth and bridge it made. Made by startTestNet().
 */
export class TestNet {
  readonly name: string;
  /** The bridge in the root namespace; also the prefix of the hosts' namespaces. */
  readonly bridge: string;
  /** The net's own /24, e.g. "10.213.7.0/24". */
  readonly subnet: string;
  /** The test process's own address on the bridge. */
  readonly gateway: string;
  readonly #namespacePrefix: string;
  readonly #octet: number;
  readonly #hosts = new Map<string, TestHost>();
  readonly #processes = new Set<ChildProcess>();
  readonly #faulted = new Set<TestHost>();
  #closed = false;

  /** @internal use startTestNet() */
  constructor(name: string, octet: number) {
    this.name = name;
    this.#octet = octet;
    this.bridge = `${PREFIX}${octet}`;
    this.subnet = `${SUBNET}.${octet}.0/24`;
    this.gateway = `${SUBNET}.${octet}.${BRIDGE_OCTET}`;
    this.#namespacePrefix = `${PREFIX}-${process.pid}-${++sequence}`;
  }

  get hosts(): readonly TestHost[] {
    return [...this.#hosts.values()];
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds a host named `name` (letters, digits, dashes) with the net's next address. */
  async addHost(name: string): Promise<TestHost> {
    this.#assertOpen();
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/i.test(name)) {
      throw new RangeError(`host name "${name}": use up to 32 letters, digits and dashes`);
    }
    if (this.#hosts.has(name)) throw new RangeError(`net ${this.name} already has a host "${name}"`);
    const index = this.#hosts.size + 1;
    if (index > MAX_HOSTS) throw new RangeError(`net ${this.name} is full (${MAX_HOSTS} hosts)`);
    const namespace = `${this.#namespacePrefix}-${name}`;
    const outside = `${this.bridge}h${index}`;
    const host = new TestHost(name, `${SUBNET}.${this.#octet}.${index}`, namespace, (child) =>
      this.#track(child),
    );
    await ip("netns", "add", namespace);
    // Registered before its links exist, so close() removes a half-made host too.
    this.#hosts.set(name, host);
    await ip("link", "add", outside, "type", "veth", "peer", "name", HOST_LINK, "netns", namespace);
    await ip("link", "set", outside, "master", this.bridge, "up");
    await ip("-n", namespace, "link", "set", "lo", "up");
    await ip("-n", namespace, "addr", "add", `${host.address}/24`, "dev", HOST_LINK);
    await ip("-n", namespace, "link", "set", HOST_LINK, "up");
    return host;
  }

  /**
   * Drops every packet between `host` and `from` (default: everyone, the test process included), both
   * directions, with nftables rules inside the host's namespace. Its processes keep running.
   */
  async isolate(host: TestHost, from?: readonly TestHost[]): Promise<void> {
    this.#assertMine(host);
    let rules: string[];
    if (from === undefined) {
      rules = [`add rule inet ${FAULT_TABLE} in iifname "${HOST_LINK}" drop`];
      rules.push(`add rule inet ${FAULT_TABLE} out oifname "${HOST_LINK}" drop`);
    } else {
      for (const other of from) this.#assertMine(other);
      if (from.length === 0) return;
      const peers = `{ ${from.map((other) => other.address).join(", ")} }`;
      rules = [`add rule inet ${FAULT_TABLE} in ip saddr ${peers} drop`];
      rules.push(`add rule inet ${FAULT_TABLE} out ip daddr ${peers} drop`);
    }
    const script = [
      `add table inet ${FAULT_TABLE}`,
      `add chain inet ${FAULT_TABLE} in { type filter hook input priority 0 ; policy accept ; }`,
      `add chain inet ${FAULT_TABLE} out { type filter hook output priority 0 ; policy accept ; }`,
      ...rules,
    ].join("\n");
    await runCommand("ip", ["netns", "exec", host.namespace, "nft", "-f", "-"], { input: `${script}\n` });
    this.#faulted.add(host);
  }

  /** Cuts every host of `sideA` off from every host of `sideB` (rules on both sides); heal() joins them. */
  async partition(sideA: readonly TestHost[], sideB: readonly TestHost[]): Promise<void> {
    const overlap = sideA.filter((host) => sideB.includes(host));
    if (overlap.length > 0) {
      throw new RangeError(`a partition's sides overlap: ${overlap.map((host) => host.name).join(", ")}`);
    }
    for (const host of sideA) await this.isolate(host, sideB);
    for (const host of sideB) await this.isolate(host, sideA);
  }

  /** Removes the faults of `host`, or of every host: its drop rules. */
  async heal(host?: TestHost): Promise<void> {
    const hosts = host === undefined ? this.hosts : [host];
    for (const each of hosts) {
      this.#assertMine(each);
      if (this.#faulted.has(each)) {
        await runCommand("ip", [
          "netns",
          "exec",
          each.namespace,
          "nft",
          "delete",
          "table",
          "inet",
          FAULT_TABLE,
        ]);
        this.#faulted.delete(each);
      }
    }
  }

  /**
   * Kills every process on the net's hosts (those spawn() started and any other, e.g. a ZooKeeper JVM),
   * then deletes the namespaces (their veths go with them) and the bridge. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const child of this.#processes) child.kill("SIGKILL");
    const failures: unknown[] = [];
    for (const host of this.#hosts.values()) {
      try {
        await killAllIn(host.namespace);
        await ip("netns", "delete", host.namespace);
      } catch (error) {
        failures.push(error);
      }
    }
    try {
      await ip("link", "delete", this.bridge);
    } catch (error) {
      failures.push(error);
    }
    openNets.delete(this);
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `closing test net ${this.name} failed`);
  }

  /** Synchronous best effort, for process exit; @internal */
  closeNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const child of this.#processes) child.kill("SIGKILL");
    for (const host of this.#hosts.values()) removeNamespaceNow(host.namespace);
    runCommandQuietly("ip", ["link", "delete", this.bridge]);
  }

  #track(child: ChildProcess): void {
    this.#processes.add(child);
    child.once("exit", () => this.#processes.delete(child));
    child.on("error", () => this.#processes.delete(child));
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`test net ${this.name} is closed`);
  }

  #assertMine(host: TestHost): void {
    this.#assertOpen();
    if (this.#hosts.get(host.name) !== host)
      throw new RangeError(`host ${host.name} is not on net ${this.name}`);
  }
}

/**
 * Makes a net: a bridge in the root namespace on a free 10.213.x.0/24, to which addHost() joins hosts.
 * Sweeps a crashed run's leftovers first. Needs root and iproute2 (nftables for isolate and partition).
 */
export async function startTestNet(options: TestNetOptions = {}): Promise<TestNet> {
  const name = options.name ?? "net";
  sweepTestNets();
  const used = await usedOctets();
  const free = Array.from({ length: BRIDGE_OCTET - 1 }, (_, i) => i + 1).filter((octet) => !used.has(octet));
  // Random order: parallel test files rarely race for the same bridge; the loser tries the next.
  free.sort(() => Math.random() - 0.5);
  for (const octet of free) {
    const net = new TestNet(name, octet);
    try {
      await ip("link", "add", net.bridge, "type", "bridge");
    } catch (error) {
      if (error instanceof NetCommandError && /File exists/.test(error.stderr)) continue;
      throw error;
    }
    openNets.add(net);
    installExitHook();
    try {
      await ip("link", "set", net.bridge, "alias", `${PREFIX} pid=${process.pid} net=${name}`);
      await ip("addr", "add", `${net.gateway}/24`, "dev", net.bridge);
      await ip("link", "set", net.bridge, "up");
    } catch (error) {
      await net.close().catch(() => {});
      throw error;
    }
    return net;
  }
  throw new Error(`no free ${SUBNET}.x.0/24 for a test net`);
}

/**
 * Removes the namespaces and bridges of test nets whose creating process is gone (a crashed or killed run),
 * killing what still runs in them. Returns what it removed. Live runs' nets are left alone.
 */
export function sweepTestNets(): string[] {
  const removed: string[] = [];
  for (const { name } of parseJson<{ name: string }>(runCommandQuietly("ip", ["-j", "netns", "list"]))) {
    const owner = /^zkgrid-(\d+)-/.exec(name)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    removeNamespaceNow(name);
    removed.push(name);
  }
  const bridges = parseJson<{ ifname: string; ifalias?: string }>(
    runCommandQuietly("ip", ["-j", "link", "show", "type", "bridge"]),
  );
  for (const { ifname, ifalias } of bridges) {
    const owner = /^zkgrid pid=(\d+)/.exec(ifalias ?? "")?.[1];
    if (!/^zkgrid\d+$/.test(ifname) || owner === undefined || isAlive(Number(owner))) continue;
    runCommandQuietly("ip", ["link", "delete", ifname]);
    removed.push(ifname);
  }
  return removed;
}

function ip(...args: string[]): Promise<CommandResult> {
  return runCommand("ip", args);
}

async function usedOctets(): Promise<Set<number>> {
  const { stdout } = await ip("-j", "-4", "addr", "show");
  const used = new Set<number>();
  for (const link of parseJson<{ addr_info?: { local?: string }[] }>(stdout)) {
    for (const { local } of link.addr_info ?? []) {
      const octet = local?.startsWith(`${SUBNET}.`) ? Number(local.split(".")[2]) : undefined;
      if (octet !== undefined) used.add(octet);
    }
  }
  return used;
}

/** Kills everything in a namespace and waits (up to 5 s) until it is empty, so the delete frees it. */
async function killAllIn(namespace: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = await namespacePids(namespace);
    if (pids.length === 0) return;
    for (const pid of pids) signal(pid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`processes in namespace ${namespace} survived SIGKILL: ${await namespacePids(namespace)}`);
}

async function namespacePids(namespace: string): Promise<number[]> {
  const { stdout } = await ip("netns", "pids", namespace);
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

function removeNamespaceNow(namespace: string): void {
  const pids = runCommandQuietly("ip", ["netns", "pids", namespace]).split(/\s+/).filter(Boolean);
  for (const pid of pids) signal(Number(pid), "SIGKILL");
  runCommandQuietly("ip", ["netns", "delete", namespace]);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function parseJson<T>(text: string): T[] {
  try {
    const parsed: unknown = JSON.parse(text || "[]");
    return Array.isArray(parsed) ? (parsed as T[]) : [];
  } catch {
    return [];
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const net of openNets) net.closeNow();
  });
}

export { NetCommandError };
export type { CommandResult, RunOptions };
