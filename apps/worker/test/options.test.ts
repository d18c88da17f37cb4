import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileWorkerOptions } from "../src/worker-options.js";

describe("worker options", () => {
  it("are filled with their defaults in one place", () => {
    const compiled = compileWorkerOptions({ name: "w1", cwd: "rel/dir" });
    expect(compiled).toMatchObject({
      name: "w1",
      connection: { connectString: "127.0.0.1:2181", root: "/zkgrid" },
      sessionTimeoutMs: 10_000,
      baseDir: resolve("rel/dir"),
      concurrency: availableParallelism(),
      prefetch: { kind: "adaptive", max: Math.max(availableParallelism(), 32) },
      labels: [],
      handlers: {},
      graceMs: 30_000,
      killGraceMs: 5_000,
      nameWaitMs: 20_000,
      cutoffStopMs: 2_500,
      perl: "perl",
      answers: { host: undefined, port: 0 },
      signal: undefined,
    });
    expect(compiled.freezeGapMs).toBeCloseTo(10_000 / 3);
  });

  it("derive what depends on other options, and keep what is given", () => {
    const logged: unknown[] = [];
    const compiled = compileWorkerOptions({
      name: "w1",
      concurrency: 4,
      prefetch: 20,
      labels: ["gpu", "gpu", "linux"],
      sessionTimeoutMs: 3_000,
      perl: false,
      logger: (level, msg, fields) => logged.push({ level, msg, fields }),
    });
    expect(compiled).toMatchObject({
      prefetch: { kind: "fixed", tasks: 20 },
      labels: ["gpu", "linux"],
      nameWaitMs: 6_000,
      cutoffStopMs: 750,
      freezeGapMs: 1_000,
      perl: false,
    });
    compiled.log("info", "hello", { task: "t1" });
    expect(compileWorkerOptions({ name: "w1", cutoffStopMs: 0 }).cutoffStopMs).toBeUndefined();
    expect(compileWorkerOptions({ name: "w1", cutoffStopMs: false }).cutoffStopMs).toBeUndefined();
    expect(compileWorkerOptions({ name: "w1", cutoffStopMs: 800 }).cutoffStopMs).toBe(800);
    expect(() => compileWorkerOptions({ name: "w1", cutoffStopMs: -1 })).toThrow(/cutoffStopMs/);
    expect(logged).toEqual([{ level: "info", msg: "hello", fields: { worker: "w1", task: "t1" } }]);
  });

  it("adapt the prefetch up to concurrency (at least 32) unless a number fixes it, 0 included", () => {
    expect(compileWorkerOptions({ name: "w1", concurrency: 100 }).prefetch).toEqual({
      kind: "adaptive",
      max: 100,
    });
    expect(compileWorkerOptions({ name: "w1", concurrency: 2 }).prefetch).toEqual({
      kind: "adaptive",
      max: 32,
    });
    // Within MAX_CAPACITY (100 000) in all.
    expect(compileWorkerOptions({ name: "w1", concurrency: 99_990 }).prefetch).toEqual({
      kind: "adaptive",
      max: 10,
    });
    expect(compileWorkerOptions({ name: "w1", prefetch: 0 }).prefetch).toEqual({ kind: "fixed", tasks: 0 });
  });

  it("take the answer stream's address, or none, and refuse a bad one naming the option", () => {
    const answers = (answerAddress: string | false) =>
      compileWorkerOptions({ name: "w1", answerAddress }).answers;
    expect(answers("10.1.2.3:7000")).toEqual({ host: "10.1.2.3", port: 7000 });
    expect(answers(":7000")).toEqual({ host: undefined, port: 7000 });
    expect(answers("[fd00::1]")).toEqual({ host: "fd00::1", port: 0 });
    expect(answers(false)).toBeUndefined();
    expect(() => answers("h:70000")).toThrow(
      /answerAddress.*"h:70000": the port must be an integer 0\.\.65535/,
    );
    expect(() => answers("a/b")).toThrow(/answerAddress.*the host must be an IP address or a host name/);
  });
});
