import { EventEmitter, on as eventsOf } from "node:events";
import { hostname } from "node:os";
import {
  type ConnectionOptions,
  connect,
  errors,
  type LeaderElection,
  type Leadership,
  type Logger,
  sleep,
  type ZkClient,
} from "@zkgrid/core";
import { type Dashboard, startDashboard } from "@zkgrid/dashboard";
import { type GridObserver, observeGrid } from "@zkgrid/observer";
import type { GridLayout } from "@zkgrid/protocol";
import { ACCEPTS_REPLY_TO, assertWorkerName, encodeMasterInfo, gridLayout } from "@zkgrid/protocol";
import { GridLeader, type LeaderStats } from "./leader/grid-leader.js";
import { MasterMetrics } from "./metrics.js";

/** How a master reaches ZooKeeper (core's connection options, see docs/operators.md for `acl`), and more. */
export interface MasterOptions extends Omit<ConnectionOptions, "connectString"> {
  /** A name for this master, shown to operators (same rules as a worker name). */
  name: string;
  /** ZooKeeper connect string; default "127.0.0.1:2181". */
  connectString?: string;
  /** The grid's root path; default "/zkgrid". */
  root?: string;
  /** Use this client instead of connecting (the connection options are then ignored); stop() leaves it open. */
  client?: ZkClient;
  /**
   * Serve the dashboard and `/metrics` on this port (0: any free port). The bound port is published
   * in this master's election node. Off when omitted.
   */
  httpPort?: number;
  /** The address for the dashboard; default 127.0.0.1 (loopback only). */
  httpHost?: string;
  /** How many result nodes the leader keeps under R/results and R/replies together (default 5000); older ones are deleted. */
  keepResults?: number;
}

/** `starting` → `standby` ⇄ `leader` → `stopped`. */
export type MasterRole = "starting" | "standby" | "leader" | "stopped";

export type MasterEvent =
  | { type: "state"; state: MasterRole }
  /** This master leads, with its state rebuilt: the term's epoch. */
  | { type: "term-started"; epoch: number }
  /** That term is over (leadership lost, a refused write, or stop()). */
  | { type: "term-ended"; epoch: number };

/**
 * A master: joins the election and, while it leads, runs the grid (see GridLeader). Standbys wait
 * watching only their predecessor, so a leader's death wakes exactly one of them.
 */
export class Master {
  private role_: MasterRole = "starting";
  private leader: GridLeader | undefined;
  private readonly emitter = new EventEmitter();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(
    readonly name: string,
    readonly client: ZkClient,
    readonly layout: GridLayout,
    private readonly election: LeaderElection,
    private readonly ownsClient: boolean,
    private readonly log: Logger,
    private readonly metrics: MasterMetrics | undefined,
    private readonly http: { dashboard: Dashboard; observer: GridObserver } | undefined,
    private readonly keepResults: number | undefined,
  ) {
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** The dashboard's address, when this master serves one. */
  get dashboardUrl(): string | undefined {
    return this.http?.dashboard.url;
  }

  /** Joins the election; resolves once this master is a candidate (leader or standby). */
  static async start(options: MasterOptions): Promise<Master> {
    assertWorkerName(options.name);
    if (
      options.keepResults !== undefined &&
      !(Number.isInteger(options.keepResults) && options.keepResults >= 1)
    ) {
      throw new RangeError(`keepResults must be a whole number ≥ 1, got ${options.keepResults}`);
    }
    const log: Logger = options.logger ?? (() => {});
    const layout = gridLayout(options.root ?? "/zkgrid");
    const client =
      options.client ??
      (await connect({
        connectString: options.connectString ?? "127.0.0.1:2181",
        sessionTimeoutMs: options.sessionTimeoutMs ?? 10_000,
        auth: options.auth,
        ...(options.acl === undefined ? {} : { acl: options.acl }),
        logger: log,
      }));
    await client.ensurePath(layout.masters);
    let roleNow: () => string = () => "starting";
    let metrics: MasterMetrics | undefined;
    let http: { dashboard: Dashboard; observer: GridObserver } | undefined;
    if (options.httpPort !== undefined) {
      const m = new MasterMetrics(client, () => roleNow());
      const observer = await observeGrid({ client, root: layout.root });
      const dashboard = await startDashboard({
        observer,
        port: options.httpPort,
        host: options.httpHost ?? "127.0.0.1",
        title: `zkgrid ${options.name}`,
        metrics: () => m.text(),
      });
      metrics = m;
      http = { dashboard, observer };
      log("info", "dashboard listening", { url: dashboard.url });
    }
    const info = encodeMasterInfo({
      v: 1,
      name: options.name,
      host: hostname(),
      pid: process.pid,
      startedAt: Date.now(),
      ...(http ? { httpPort: http.dashboard.port } : {}),
      // Clients set `replyTo` only while every candidate says this (an older leader rejects the key).
      accepts: [ACCEPTS_REPLY_TO],
    });
    const election = client.election(layout.masters, { data: info });
    const master = new Master(
      options.name,
      client,
      layout,
      election,
      !options.client,
      log,
      metrics,
      http,
      options.keepResults,
    );
    roleNow = () => master.role;
    master.loop = master.follow();
    master.setRole(election.isLeader ? "leader" : "standby");
    return master;
  }

  get role(): MasterRole {
    return this.role_;
  }

  /** The master's state: its role in the election (the worker's counterpart is its lifecycle state). */
  get state(): MasterRole {
    return this.role_;
  }

  get isLeader(): boolean {
    return this.role_ === "leader";
  }

  /** The current leader term's counters, while this master leads. */
  stats(): LeaderStats | undefined {
    return this.leader?.stats;
  }

  /** Calls `listener` on every role change; returns an unsubscribe function. */
  onRole(listener: (role: MasterRole) => void): () => void {
    return this.on((event) => {
      if (event.type === "state") listener(event.state);
    });
  }

  /** Calls `listener` on every event; returns an unsubscribe function. */
  on(listener: (event: MasterEvent) => void): () => void {
    const safe = (event: MasterEvent) => {
      try {
        listener(event);
      } catch (err) {
        this.log("error", "an event listener threw", { error: String(err) });
      }
    };
    this.emitter.on("event", safe);
    return () => this.emitter.off("event", safe);
  }

  /** The events from now on, ending after `stopped` (or when `signal` aborts). */
  async *events(options: { signal?: AbortSignal } = {}): AsyncGenerator<MasterEvent> {
    if (this.role_ === "stopped") return;
    const stream = eventsOf(this.emitter, "event", {
      close: ["closed"],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    try {
      for await (const [event] of stream) yield event as MasterEvent;
    } catch (err) {
      if (!options.signal?.aborted) throw err;
    }
  }

  /** Resolves once the master has stopped. */
  closed(): Promise<void> {
    return this.closedPromise;
  }

  /** Resolves once this master leads and has rebuilt the grid's state. */
  async leading(): Promise<void> {
    if (this.role_ === "leader" && this.leader) return;
    await new Promise<void>((resolve) => {
      const off = this.onRole((r) => {
        if (r === "leader") {
          off();
          resolve();
        }
      });
    });
  }

  async stop(): Promise<void> {
    if (this.role_ === "stopped" || this.stopping) return;
    // Before the leader stops: its finished() callback must not start a new term.
    this.stopping = true;
    await this.leader?.stop();
    this.leader = undefined;
    await this.election.stop();
    this.setRole("stopped");
    await this.http?.dashboard.close();
    await this.http?.observer.close();
    if (this.ownsClient) await this.client.close();
    await this.loop?.catch(() => {});
    this.emitter.emit("closed");
    this.resolveClosed();
  }

  private setRole(role: MasterRole): void {
    if (this.role_ === role || this.role_ === "stopped") return;
    this.role_ = role;
    this.log("info", `role: ${role}`);
    this.emit({ type: "state", state: role });
  }

  private emit(event: MasterEvent): void {
    this.emitter.emit("event", event);
  }

  private async follow(): Promise<void> {
    for await (const ev of this.election) {
      if (this.role_ === "stopped") break;
      switch (ev.type) {
        case "elected":
          await this.lead(ev.leadership);
          break;
        case "suspended":
          this.leader?.suspend();
          break;
        case "resumed":
          this.leader?.resume();
          break;
        case "lost":
          await this.leader?.stop();
          this.leader = undefined;
          this.setRole("standby");
          break;
      }
    }
    if (this.role_ !== "stopped" && !this.stopping) {
      // The election gave up by itself: its error (e.g. an ACL that refuses this master's
      // credentials) is logged; a master that cannot be a candidate stops rather than idle.
      this.log("error", "the election ended by itself (its error is logged alongside); stopping");
      void this.stop();
    }
  }

  /** Starts a leader term; a term that ends while leadership holds (a refused write) starts over. */
  private async lead(leadership: Leadership): Promise<void> {
    while (!leadership.signal.aborted && this.role_ !== "stopped") {
      // Every write of the term goes through this view: none can land after the session ends.
      const leader = new GridLeader(
        this.client.boundTo(leadership.sessionId),
        this.layout,
        leadership,
        this.log,
        this.metrics,
        this.keepResults,
      );
      this.leader = leader;
      try {
        await leader.start();
        this.setRole("leader");
        this.emit({ type: "term-started", epoch: leadership.epoch });
        void leader.finished().then(() => this.emit({ type: "term-ended", epoch: leadership.epoch }));
        this.metrics?.leaderTerm();
      } catch (err) {
        if (errors.isSessionExpired(err)) {
          // The session this leadership was won on has ended: the election reports it lost.
          this.log("warn", "takeover stopped: the session it was elected on has ended", {});
          await leader.stop();
          return;
        }
        this.log("error", "takeover failed; retrying", { error: String(err) });
        await leader.stop();
        await sleep(500);
        continue;
      }
      // Returns to the election loop; the term runs on until lost or refused.
      void leader.finished().then(() => {
        if (
          this.leader === leader &&
          !leadership.signal.aborted &&
          this.role_ !== "stopped" &&
          !this.stopping
        ) {
          this.log("warn", "leader term ended while still elected; rebuilding state", {});
          this.leader = undefined;
          void this.lead(leadership);
        }
      });
      return;
    }
  }
}

/** Starts a master (see Master). */
export function startMaster(options: MasterOptions): Promise<Master> {
  return Master.start(options);
}
