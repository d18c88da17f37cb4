import {
  decodeScheduleSpec,
  decodeScheduleState,
  encodeScheduleSpec,
  firingTaskId,
  type ScheduleSpec,
  slotsBetween,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import type { Cluster } from "./cluster.js";
import { recordingCommand } from "./ledger.js";

/**
 * Recurring schedules in a chaos run: one every second by interval, one every second by cron (seconds
 * field), both with catch-up `all`, each firing a task that records its execution in the run's ledger.
 * At the end they are paused, and every slot from creation to the last one the leader decided is
 * expected to have fired exactly once: the run's checks then hold each firing to the rules of any
 * accepted task (one final status, backed by one execution per attempt), and a firing of any other
 * slot is a result nobody submitted.
 */
export class ScheduleLedger {
  static readonly NAMES = ["chaos-every", "chaos-cron"] as const;
  private readonly specs = new Map<string, ScheduleSpec>();

  constructor(private readonly c: Cluster) {}

  /** Adds both schedules, as `zkgrid schedule add` would. */
  async install(execDir: string): Promise<void> {
    const zk = await this.c.zk();
    await zk.ensurePath(this.c.layout.schedules);
    const createdAt = Date.now();
    const task = { cmd: recordingCommand(execDir, 0.1), maxAttempts: 3 };
    const common = {
      v: 1,
      task,
      catchUp: "all",
      catchUpMax: 1000,
      overlap: "allow",
      paused: false,
      createdAt,
    } as const;
    const specs: Array<[string, ScheduleSpec]> = [
      ["chaos-every", { ...common, everyMs: 1000 }],
      ["chaos-cron", { ...common, cron: "* * * * * *", tz: "Europe/Paris" }],
    ];
    for (const [name, spec] of specs) {
      await zk.create(this.c.layout.schedule(name), encodeScheduleSpec(spec));
      this.specs.set(name, spec);
    }
  }

  /** Waits until just past a slot of both schedules: a leader killed now dies at a firing. */
  async untilFiring(offsetMs: number): Promise<void> {
    const next = Math.ceil(Date.now() / 1000) * 1000 + offsetMs;
    await new Promise((res) => setTimeout(res, Math.max(0, next - Date.now())));
  }

  /**
   * Pauses both, waits until the leader's record stops moving, and returns every slot's task id in
   * (createdAt, lastSlot]: each must have fired exactly once.
   */
  async pauseAndExpect(): Promise<string[]> {
    const { c } = this;
    const zk = await c.zk();
    for (const name of ScheduleLedger.NAMES) {
      await c.retry(async () => {
        const got = await zk.get(c.layout.schedule(name));
        const decoded = decodeScheduleSpec(got.data);
        if (!decoded.ok) throw decoded.error;
        await zk.set(
          c.layout.schedule(name),
          encodeScheduleSpec({ ...decoded.value, paused: true }),
          got.stat.version,
        );
        return true;
      }, `pausing ${name}`);
    }
    const ids: string[] = [];
    for (const name of ScheduleLedger.NAMES) {
      const spec = this.specs.get(name) as ScheduleSpec;
      let last = -1;
      // The leader may fire a slot or two before it reads the pause: wait until its record is still.
      await waitFor(
        async () => {
          await new Promise((res) => setTimeout(res, 2500));
          const data = await c.read(c.layout.firing(name));
          const state = data ? decodeScheduleState(data) : undefined;
          const lastSlot = state?.ok ? state.value.lastSlot : -1;
          const still = lastSlot === last;
          last = lastSlot;
          return still && lastSlot > 0;
        },
        { timeoutMs: 120_000, intervalMs: 0, message: `${name}'s record to settle` },
      );
      for (const slot of slotsBetween(spec, spec.createdAt, last, 100_000))
        ids.push(firingTaskId(name, slot));
    }
    return ids;
  }
}
