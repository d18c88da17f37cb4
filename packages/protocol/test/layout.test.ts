import { describe, expect, test } from "vitest";
import {
  InvalidNameError,
  compareSequentialNames,
  gridLayout,
  isValidTaskId,
  parseReportDirName,
  parseSequence,
  parseSequentialName,
  unnamedTaskId,
} from "../src/index.js";

const UUID = "0f8fad5b-d9cb-469f-a165-70867728950e";

describe("gridLayout", () => {
  test("the default root is /zkgrid and every path sits under it", () => {
    const l = gridLayout();
    expect(l.root).toBe("/zkgrid");
    expect(l.masters).toBe("/zkgrid/masters");
    expect(l.workers).toBe("/zkgrid/workers");
    expect(l.worker("w1")).toBe("/zkgrid/workers/w1");
    expect(l.queue).toBe("/zkgrid/queue");
    expect(l.assignDir).toBe("/zkgrid/assign");
    expect(l.assign("w1")).toBe("/zkgrid/assign/w1");
    expect(l.reports).toBe("/zkgrid/reports");
    expect(l.reportDir("w1", "100000a2b3c0004")).toBe("/zkgrid/reports/w1@100000a2b3c0004");
    expect(l.results).toBe("/zkgrid/results");
    expect([l.masterNodePrefix, l.queueNodePrefix, l.reportNodePrefix, l.resultNodePrefix]).toEqual([
      "n_",
      "q",
      "r",
      "r",
    ]);
    expect(l.dirs).toEqual([
      "/zkgrid",
      "/zkgrid/masters",
      "/zkgrid/workers",
      "/zkgrid/queue",
      "/zkgrid/assign",
      "/zkgrid/reports",
      "/zkgrid/results",
      "/zkgrid/cancel",
      "/zkgrid/inbox",
      "/zkgrid/schedules",
      "/zkgrid/firings",
      "/zkgrid/replies",
    ]);
    expect([l.cancel, l.cancelNodePrefix]).toEqual(["/zkgrid/cancel", "c"]);
    expect(l.inboxDir("w1", "100000a2b3c0004")).toBe("/zkgrid/inbox/w1@100000a2b3c0004");
    expect(l.inboxTask("w1", "100000a2b3c0004", "t-1")).toBe("/zkgrid/inbox/w1@100000a2b3c0004/t-1");
    expect(() => l.inboxTask("w1", "100000a2b3c0004", "../x")).toThrow(InvalidNameError);
    expect(() => l.inboxDir("w/1", "100000a2b3c0004")).toThrow(InvalidNameError);
  });

  test("a nested root and the ZooKeeper root both work", () => {
    expect(gridLayout("/a/b").queue).toBe("/a/b/queue");
    const top = gridLayout("/");
    expect(top.queue).toBe("/queue");
    expect(top.dirs[0]).toBe("/masters");
  });

  test.each([
    ["zkgrid", "must be absolute"],
    ["", "must be absolute"],
    ["/zkgrid/", 'must not end with "/"'],
    ["/a//b", "empty segment"],
    ["/a/./b", '"." segment'],
    ["/a/../b", '".." segment'],
    ["/a\0b", "control characters"],
    ["/zookeeper", "reserves"],
    ["/zookeeper/x", "reserves"],
  ])("the root %j is refused: %s", (root, problem) => {
    expect(() => gridLayout(root)).toThrow(InvalidNameError);
    expect(() => gridLayout(root)).toThrow(problem);
  });

  test("path builders refuse names that would leave their directory", () => {
    const l = gridLayout();
    for (const name of ["../x", "a/b", "", ".", "..", "a\0"]) {
      expect(() => l.worker(name)).toThrow(InvalidNameError);
      expect(() => l.assign(name)).toThrow(InvalidNameError);
      expect(() => l.reportDir(name, "1")).toThrow(InvalidNameError);
    }
    expect(() => l.reportDir("w", "0x1")).toThrow("invalid session id");
    expect(() => l.reportDir("w", "../1")).toThrow(InvalidNameError);
  });

  test("a report dir name splits back into worker and session", () => {
    const l = gridLayout();
    expect(l.parseReportDir("w1@100000a2b3c0004")).toEqual({ worker: "w1", session: "100000a2b3c0004" });
    expect(parseReportDirName("w.1-x@ff")).toEqual({ worker: "w.1-x", session: "ff" });
    for (const bad of ["w1", "w1@", "@ff", "w1@FF", "w1@0ff", "a/b@ff", "w@1@2", "../w@1"]) {
      expect(l.parseReportDir(bad)).toBeUndefined();
    }
  });
});

describe("sequential names", () => {
  test("the sequence is the 10-digit suffix, also behind a protected prefix", () => {
    expect(parseSequence("q0000000042")).toBe(42);
    expect(parseSequence(`_c_${UUID}-q0000000042`)).toBe(42);
    expect(parseSequence(`_c_${UUID}-n_0000000007`)).toBe(7);
    expect(parseSequence("r2147483647")).toBe(2147483647);
    expect(parseSequence(`_c_${UUID}-0000000001`)).toBe(1);
    expect(parseSequence("q1230000000005")).toBe(5);
  });

  test("the parts of a protected name are its uuid, its prefix and its number", () => {
    expect(parseSequentialName(`_c_${UUID}-q0000000042`)).toEqual({
      protectedId: UUID,
      prefix: "q",
      sequence: 42,
    });
    expect(parseSequentialName("r0000000003")).toEqual({ protectedId: undefined, prefix: "r", sequence: 3 });
  });

  test("a counter that overflowed to negative parses as negative", () => {
    expect(parseSequence("r-2147483648")).toBe(-2147483648);
    expect(parseSequence("r-000000005")).toBe(-5);
  });

  test("names without a 10-digit suffix have no sequence", () => {
    for (const name of ["q", "q123", "w1", "", "q000000004x"]) expect(parseSequence(name)).toBeUndefined();
  });

  test("sorting by sequence ignores the protected prefix", () => {
    const names = [
      `_c_${UUID}-q0000000010`,
      "q0000000002",
      `_c_${"f".repeat(8)}-aaaa-bbbb-cccc-${"0".repeat(12)}-q0000000005`,
      "junk",
    ];
    expect([...names].sort(compareSequentialNames).map(parseSequence)).toEqual([2, 5, 10, undefined]);
  });

  test("an unnamed task in a queue node gets a valid id from the node's name and its index", () => {
    const id = unnamedTaskId(`_c_${UUID}-q0000000012`, 3);
    expect(id).toBe("q0000000012.3");
    expect(isValidTaskId(id)).toBe(true);
  });
});
