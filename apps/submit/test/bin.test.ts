import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ZkClient } from "@zkgrid/core";
import { gridLayout, type TaskStatus } from "@zkgrid/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bins, buildIfStale, killAll, type Run, runToEnd } from "./built-bins.js";
import { answerQueue, connectTestClient, finalStatus, randomRoot, readQueue } from "./helpers.js";

let zk: ZkClient;
let scratch: string;
const children = new Set<ChildProcess>();
const leaders: AbortController[] = [];

beforeAll(async () => {
  // The command under test is the built one, as users run it.
  await buildIfStale("apps/submit", "@zkgrid/submit", "bin.js");
  zk = await connectTestClient();
  scratch = await mkdtemp(join(tmpdir(), "zkgrid-submit-"));
});

afterEach(async () => {
  for (const leader of leaders.splice(0)) leader.abort();
  await killAll(children);
});

afterAll(async () => {
  await zk?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Runs the built command against the test ZooKeeper with `root`, feeding it `input` on stdin. */
function runBin(args: string[], root: string, input: string | Buffer = ""): Promise<Run> {
  return runToEnd(bins.submit, args, root, children, input);
}

/** Answers every task submitted under `root` with `decide(task)` until the test ends. */
function leaderFor(root: string, decide: Parameters<typeof answerQueue>[2]): void {
  const controller = new AbortController();
  leaders.push(controller);
  // Says it takes replyTo, as a master of this version does: a waiting run then sets it.
  void answerQueue(zk, gridLayout(root), decide, controller.signal, { acceptsReplyTo: true }).catch(() => {});
}

describe("zkgrid-submit", () => {
  it("--help prints the usage and exits 0", async () => {
    const run = await runBin(["--help"], randomRoot());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: zkgrid-submit/);
    expect(run.stdout).toContain("--wait-timeout <duration>");
  });

  it("--cmd with task flags submits that one task and prints its id", async () => {
    const root = randomRoot();
    const run = await runBin(
      [
        // `pnpm start -- …` passes the "--" on.
        "--",
        "--cmd",
        "convert",
        "--arg",
        "in.png",
        "--arg=-resize",
        "--env",
        "A=1=2",
        "--cwd",
        "work",
        "--timeout",
        "5s",
        "--max-attempts",
        "2",
        "--label",
        "gpu",
        "--label",
        "linux",
        "--priority",
        "-3",
        "--id",
        "img-1",
        "--meta",
        "owner=me",
      ],
      root,
    );
    expect(run).toMatchObject({ code: 0, stdout: "img-1\n", stderr: "" });
    const nodes = await readQueue(zk, gridLayout(root));
    expect(nodes.map((node) => node.tasks)).toEqual([
      [
        {
          id: "img-1",
          cmd: "convert",
          args: ["in.png", "-resize"],
          env: { A: "1=2" },
          cwd: "work",
          timeoutMs: 5000,
          maxAttempts: 2,
          labels: ["gpu", "linux"],
          priority: -3,
          meta: { owner: "me" },
        },
      ],
    ]);
  });

  it("submits piped NDJSON as one batch and prints one id per line", async () => {
    const root = randomRoot();
    const run = await runBin([], root, '{"cmd":"echo 1"}\n\n{"id":"two","cmd":"echo 2"}\n{"cmd":"echo 3"}\n');
    expect(run.code).toBe(0);
    const ids = run.stdout.trimEnd().split("\n");
    expect(ids).toHaveLength(3);
    expect(ids[1]).toBe("two");
    const nodes = await readQueue(zk, gridLayout(root));
    expect(nodes).toHaveLength(1);
    expect(nodes[0]!.tasks.map((task) => [task.id, task.cmd])).toEqual([
      [ids[0], "echo 1"],
      ["two", "echo 2"],
      [ids[2], "echo 3"],
    ]);
  });

  it("refuses NDJSON with an invalid task on line 3, naming the line and field, and writes nothing", async () => {
    const root = randomRoot();
    const run = await runBin(
      [],
      root,
      '{"cmd":"a"}\n{"cmd":"b"}\n{"cmd":"c","timeoutMs":"soon"}\n{"cmd":"d"}\n',
    );
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/^zkgrid-submit: stdin:3: timeoutMs: /);
    expect(await readQueue(zk, gridLayout(root))).toEqual([]);
    expect(await zk.exists(root)).toBeNull();
  });

  it("names file:line for a bad task in a --file, and submits nothing from the other files either", async () => {
    const root = randomRoot();
    const good = join(scratch, "good.ndjson");
    const bad = join(scratch, "bad.json");
    await writeFile(good, '{"cmd":"a"}\n');
    await writeFile(bad, '[\n  {"cmd": "b"},\n  {"cmd": "c", "labels": ["no spaces"]}\n]\n');
    const run = await runBin(["--file", good, "-f", bad], root);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${bad}:3: labels[0]: invalid label`);
    expect(await zk.exists(root)).toBeNull();
  });

  it("refuses two tasks with the same id, naming both lines, and writes nothing", async () => {
    const root = randomRoot();
    const twice = '{"id":"same","cmd":"echo 1"}\n{"cmd":"echo 2"}\n{"id":"same","cmd":"echo 3"}\n';
    const piped = await runBin([], root, twice);
    expect(piped.code).toBe(2);
    expect(piped.stdout).toBe("");
    expect(piped.stderr).toBe('zkgrid-submit: stdin:3: id: "same" is also the id of the task at stdin:1\n');
    const file = join(scratch, "same.ndjson");
    await writeFile(file, '{"id":"same","cmd":"echo 4"}\n');
    const withFlag = await runBin(["--cmd", "echo 5", "--id", "same", "--file", file], root);
    expect(withFlag.code).toBe(2);
    expect(withFlag.stderr).toBe(
      `zkgrid-submit: ${file}:1: id: "same" is also the id of the task given by --id\n`,
    );
    expect(await zk.exists(root)).toBeNull();
  });

  it("refuses bytes that are not UTF-8 on stdin or in a --file, naming the input, line and byte offset, and writes nothing", async () => {
    const root = randomRoot();
    // `printf '{"cmd":"echo \xff\xfe"}\n'` after a good first line: the leader would refuse these bytes too.
    const bytes = Buffer.concat([
      Buffer.from('{"cmd":"ok"}\n{"cmd":"echo '),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}\n'),
    ]);
    const piped = await runBin(["--wait", "--json", "--wait-timeout", "5s"], root, bytes);
    expect(piped.code).toBe(2);
    expect(piped.stdout).toBe("");
    expect(piped.stderr).toBe("zkgrid-submit: stdin:2: invalid UTF-8 at byte offset 26\n");
    const file = join(scratch, "latin1.ndjson");
    await writeFile(file, bytes);
    const fromFile = await runBin(["--file", file], root);
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toBe(`zkgrid-submit: ${file}:2: invalid UTF-8 at byte offset 26\n`);
    // A sequence cut short at the end of the input is refused as well.
    const cut = await runBin(
      [],
      root,
      Buffer.concat([Buffer.from('{"cmd":"x"}\n'), Buffer.from([0xe2, 0x82])]),
    );
    expect(cut.code).toBe(2);
    expect(cut.stderr).toBe("zkgrid-submit: stdin:2: invalid UTF-8 at byte offset 12\n");
    expect(await zk.exists(root)).toBeNull();
  });

  it("exits 2 for an unknown flag, a malformed flag value or JSON that does not parse", async () => {
    const root = randomRoot();
    const unknown = await runBin(["--cmd", "x", "--colour"], root);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--colour'");
    const badNumber = await runBin(["--cmd", "x", "--priority", "high"], root);
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toContain('--priority: expected an integer, got "high"');
    const outOfRange = await runBin(["--cmd", "x", "--priority", "5000"], root);
    expect(outOfRange.code).toBe(2);
    expect(outOfRange.stderr).toMatch(/--priority: expected an integer -1000\.\.1000/);
    const badJson = await runBin([], root, '{"cmd":"a"}\n{"cmd":\n');
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/stdin:2: invalid JSON/);
    expect(await zk.exists(root)).toBeNull();
  });

  it("--wait prints each result and exits 0 when every task succeeded", async () => {
    const root = randomRoot();
    const replyTo: (string | undefined)[] = [];
    leaderFor(root, (task) => {
      replyTo.push(task.replyTo);
      return finalStatus(task.id, "succeeded", { stdoutTail: `ran ${task.cmd}\n` });
    });
    const run = await runBin(["--cmd", "echo hi", "--id", "hello-1", "--wait"], root);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^hello-1 {2}succeeded {2}exit=0 {2}w1 {2}\d+ms\n {2}\| ran echo hi\n$/);
    // A waiting run names a reply dir of its own, and its result came from there, not from R/results.
    expect(replyTo).toEqual([expect.stringMatching(/^[A-Za-z0-9_-]{1,64}$/)]);
    expect(await zk.getChildren(gridLayout(root).results).catch(() => [])).toEqual([]);
  });

  it("--wait --json prints one TaskStatus per line and exits 1 when any task did not succeed", async () => {
    const root = randomRoot();
    leaderFor(root, (task) =>
      task.cmd === "false"
        ? finalStatus(task.id, "failed", { exitCode: 1, stderrTail: "nope\n" })
        : finalStatus(task.id, "succeeded"),
    );
    const run = await runBin(
      ["--wait", "--json"],
      root,
      '{"id":"ok-1","cmd":"true"}\n{"id":"bad-1","cmd":"false"}\n',
    );
    expect(run.code).toBe(1);
    const statuses = run.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as TaskStatus);
    expect(statuses.map((s) => [s.id, s.state]).sort()).toEqual([
      ["bad-1", "failed"],
      ["ok-1", "succeeded"],
    ]);
  });

  it("--wait-timeout gives up with exit 1 and names the tasks still running", async () => {
    const root = randomRoot();
    const run = await runBin(
      ["--cmd", "sleep 100", "--id", "slow-1", "--wait", "--wait-timeout", "300"],
      root,
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/gave up waiting after 300 ms.*keep running.*slow-1/);
    expect((await readQueue(zk, gridLayout(root))).map((node) => node.tasks[0]?.id)).toEqual(["slow-1"]);
  });
});
