import { describe, expect, it } from "vitest";
import { parseWorkerArgs, UsageError } from "../src/cli.js";
import { DEFAULT_GRACE_MS, VERSION } from "../src/index.js";

const usageError = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
  try {
    parseWorkerArgs(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`no UsageError for ${argv.join(" ")}`);
};

describe("command line", () => {
  it("takes the name, flags and the environment, with defaults for the rest", () => {
    expect(parseWorkerArgs(["w1"], {})).toEqual({
      kind: "run",
      name: "w1",
      connectString: "127.0.0.1:2181",
      root: "/zkgrid",
      concurrency: undefined,
      prefetch: undefined,
      labels: [],
      cwd: undefined,
      graceMs: DEFAULT_GRACE_MS,
      cutoffStopMs: undefined,
      handlers: undefined,
      sessionTimeoutMs: 10_000,
      auth: undefined,
      acl: undefined,
      perl: undefined,
      answerAddress: undefined,
      metricsPort: undefined,
      metricsHost: "127.0.0.1",
      logLevel: "info",
    });
    const env = { ZKGRID_CONNECT: "zk1:2181", ZKGRID_ROOT: "/grid", ZKGRID_AUTH: "u:p" };
    expect(
      parseWorkerArgs(
        [
          "w1",
          "--concurrency",
          "4",
          "--prefetch",
          "12",
          "--labels",
          "gpu, linux",
          "--grace",
          "1.5s",
          "--session-timeout",
          "4000ms",
        ],
        env,
      ),
    ).toMatchObject({
      connectString: "zk1:2181",
      root: "/grid",
      auth: ["u:p"],
      concurrency: 4,
      prefetch: 12,
      labels: ["gpu", "linux"],
      graceMs: 1500,
      sessionTimeoutMs: 4000,
    });
    expect(parseWorkerArgs(["w1", "--connect", "zk2:2181", "--root", "/other"], env)).toMatchObject({
      connectString: "zk2:2181",
      root: "/other",
    });
  });

  it("takes --cutoff-stop as a duration, with 0 and off turning the stop off", () => {
    expect(parseWorkerArgs(["w1", "--cutoff-stop", "1.5s"], {})).toMatchObject({ cutoffStopMs: 1500 });
    expect(parseWorkerArgs(["w1", "--cutoff-stop", "off"], {})).toMatchObject({ cutoffStopMs: false });
    expect(parseWorkerArgs(["w1", "--cutoff-stop", "0"], {})).toMatchObject({ cutoffStopMs: false });
    expect(usageError(["w1", "--cutoff-stop", "soon"])).toContain("--cutoff-stop: expected a duration");
  });

  it("accepts the '--' that `pnpm start -- worker1` passes on", () => {
    expect(parseWorkerArgs(["--", "worker1", "--concurrency", "2"], {})).toMatchObject({
      name: "worker1",
      concurrency: 2,
    });
  });

  it("answers --help and --version", () => {
    expect(parseWorkerArgs(["--help"], {})).toEqual({ kind: "help" });
    expect(parseWorkerArgs(["-V"], {})).toEqual({ kind: "version", version: VERSION });
  });

  it("takes --answer-address as host:port, host, :port or off, also from the environment", () => {
    const address = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const command = parseWorkerArgs(["w1", ...args], env);
      return command.kind === "run" ? command.answerAddress : "not run";
    };
    expect(address(["--answer-address", "10.0.0.5:7000"])).toBe("10.0.0.5:7000");
    expect(address(["--answer-address", "[::1]:7000"])).toBe("[::1]:7000");
    expect(address(["--answer-address", "grid-host-3"])).toBe("grid-host-3");
    expect(address(["--answer-address", ":7000"])).toBe(":7000");
    expect(address(["--answer-address", "off"])).toBe(false);
    expect(address([], { ZKGRID_ANSWER_ADDRESS: "off" })).toBe(false);
    expect(address([])).toBeUndefined();
    expect(usageError(["w1", "--answer-address", "host:99999"])).toContain(
      '--answer-address: "host:99999": the port must be an integer 0..65535',
    );
    expect(usageError(["w1", "--answer-address", "bad host:1"])).toContain(
      "the host must be an IP address or a host name",
    );
    expect(usageError(["w1", "--answer-address", ""])).toContain("--answer-address");
  });

  it("refuses an unknown flag, a bad value or a bad name with a message naming it", () => {
    expect(usageError(["w1", "--bogus"])).toContain("--bogus");
    expect(usageError(["w1", "--concurrency", "0"])).toContain("--concurrency");
    expect(usageError(["w1", "--prefetch", "-1"])).toContain("--prefetch");
    expect(usageError(["w1", "--prefetch", "many"])).toContain("--prefetch: expected an integer ≥ 0");
    expect(usageError(["w1", "--concurrency", "60000", "--prefetch", "60000"])).toContain(
      "--prefetch: with --concurrency, at most 100000",
    );
    expect(usageError(["w1", "--grace", "soon"])).toContain("--grace");
    expect(usageError(["w1", "--grace"])).toContain("--grace");
    expect(usageError(["w1", "--session-timeout", "0"])).toContain("--session-timeout");
    expect(usageError(["w1", "--metrics-port", "70000"])).toContain("--metrics-port");
    expect(usageError(["w1", "--log-level", "loud"])).toContain("--log-level");
    expect(usageError(["w1", "--labels", "a b"])).toContain("--labels");
    expect(usageError(["w1", "--root", "zkgrid"])).toContain("--root");
    expect(usageError(["../x"])).toContain("worker name");
    expect(usageError([])).toContain("<name>");
    expect(usageError(["w1", "w2"])).toContain("one <name>");
  });
});
