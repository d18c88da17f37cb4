import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ZkClient } from "@zkgrid/core";
import { type Master, startMaster } from "@zkgrid/master";
import { encodeSubmitBatch, type GridLayout, gridLayout, type TaskSpec } from "@zkgrid/protocol";
import { silentLogger, startWorker, type Worker } from "@zkgrid/worker";

/**
 * A grid in this process on a real ZooKeeper under a random root: masters and workers from their
 * libraries, tasks written to the queue as the protocol says. `close()` stops everything it started.
 */
export class InProcessGrid {
  readonly root = `/test-${randomUUID()}`;
  readonly layout: GridLayout = gridLayout(this.root);
  readonly masters: Master[] = [];
  readonly workers: Worker[] = [];
  zk!: ZkClient;
  cwd!: string;

  constructor(readonly connectString: string) {}

  static async create(connectString: string): Promise<InProcessGrid> {
    const grid = new InProcessGrid(connectString);
    grid.zk = await connect({ connectString, sessionTimeoutMs: 4_000 });
    grid.cwd = await mkdtemp(join(tmpdir(), "zkgrid-dashboard-"));
    return grid;
  }

  async master(name: string): Promise<Master> {
    const master = await startMaster({
      name,
      connectString: this.connectString,
      root: this.root,
      sessionTimeoutMs: 4_000,
    });
    this.masters.push(master);
    return master;
  }

  async worker(name: string, concurrency = 2): Promise<Worker> {
    const worker = await startWorker({
      name,
      connectString: this.connectString,
      root: this.root,
      cwd: this.cwd,
      concurrency,
      sessionTimeoutMs: 4_000,
      logger: silentLogger,
    });
    this.workers.push(worker);
    return worker;
  }

  /** Writes the tasks as one queue node, as a submitter does. */
  async submit(tasks: TaskSpec[]): Promise<void> {
    await this.zk.ensurePath(this.layout.queue);
    await this.zk.createProtected(
      `${this.layout.queue}/${this.layout.queueNodePrefix}`,
      encodeSubmitBatch({ v: 1, batchId: `b-${randomUUID()}`, submittedAt: Date.now(), tasks }),
      "persistent-sequential",
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.stop({ graceMs: 0 }).catch(() => {})));
    await Promise.all(this.masters.splice(0).map((m) => m.stop().catch(() => {})));
    if (this.zk) {
      await this.zk.deleteRecursive(this.root).catch(() => {});
      await this.zk.close();
    }
    if (this.cwd) await rm(this.cwd, { recursive: true, force: true });
  }
}
