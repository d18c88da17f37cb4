import type { LogLevel } from "@zkgrid/core";
import type { TaskStatus } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import { FinishedTally } from "../src/leader/finished-tally.js";

function status(id: string, state: TaskStatus["state"]): TaskStatus {
  return { v: 1, id, state, attempt: 1, worker: "w1", finishedAt: 1 };
}

describe("the leader's count of finished tasks", () => {
  it("logs one info line with the counts by state, then nothing until more finish", () => {
    const lines: Array<{ level: LogLevel; msg: string; fields?: Record<string, unknown> }> = [];
    // A period long enough never to pass during the test: flush() and stop() end it.
    const tally = new FinishedTally((level, msg, fields) => lines.push({ level, msg, fields }), 3_600_000);
    tally.count([status("a", "succeeded"), status("b", "succeeded"), status("c", "failed")]);
    tally.count([status("d", "cancelled")]);
    expect(lines).toEqual([]);
    tally.flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "info",
      msg: "tasks finished",
      fields: { total: 4, succeeded: 2, failed: 1, cancelled: 1 },
    });
    tally.flush();
    expect(lines).toHaveLength(1);
    tally.count([status("e", "timed-out")]);
    tally.stop();
    expect(lines).toHaveLength(2);
    expect(lines[1]?.fields).toMatchObject({ total: 1, "timed-out": 1 });
  });
});
