import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import { TAIL_BYTES, tailBytes } from "@zkgrid/protocol";
import type {
  LaunchEnding,
  LaunchListener,
  LaunchRequest,
  TaskLauncher,
  TaskLauncherOptions,
} from "./launcher.js";
import { LAUNCHER_SCRIPT } from "./launcher-script.js";
import { inheritedEnvironment, signalGroup } from "./process-group.js";

interface Pending {
  listener: LaunchListener;
  pid: number | undefined;
  failure: LaunchEnding["failure"];
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

function decodeTail(hex: string | undefined): string | undefined {
  return hex === undefined || hex === "-" ? undefined : tailBytes(Buffer.from(hex, "hex"), TAIL_BYTES);
}

/**
 * The worker's side of the task launcher (see launcher-script.ts), started on first use. If it dies,
 * the tasks it was running end as failed (their process groups are killed) and the next launch starts
 * a new one.
 */
export class PerlLauncher implements TaskLauncher {
  readonly mode = "perl";
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextToken = 1;
  private closing = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly options: TaskLauncherOptions & { perl: string }) {}

  launch(request: LaunchRequest, listener: LaunchListener): void {
    const child = this.child ?? this.startChild();
    const token = this.nextToken++;
    this.pending.set(token, { listener, pid: undefined, failure: undefined });
    const fields = [
      String(token),
      request.outputDir,
      request.cwd,
      request.file,
      String(request.args.length),
      ...request.args,
      String(request.env.length),
      ...request.env.map(([name, value]) => `${name}=${value}`),
    ].join("\0");
    child.stdin?.write(`${Buffer.byteLength(fields)}\n${fields}`);
  }

  /** Ends the launcher once its tasks are done (it kills any still running) and waits for it. */
  close(): Promise<void> {
    this.closing = true;
    this.child?.stdin?.end();
    return this.exited;
  }

  private startChild(): ChildProcess {
    this.closing = false;
    const { killGraceMs, label } = this.options;
    // Every task inherits this environment, as it is when the first task starts.
    const env = inheritedEnvironment();
    // detached: its own process group, so a Ctrl-C meant for the worker (which drains) misses it.
    const child = spawn(
      this.options.perl,
      ["-e", LAUNCHER_SCRIPT, String(killGraceMs), String(TAIL_BYTES), label],
      {
        env,
        detached: true,
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    this.child = child;
    child.stdin?.on("error", () => {}); // its end shows as "exit"
    let rest = "";
    child.stdout?.setEncoding("latin1");
    child.stdout?.on("data", (chunk: string) => {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) this.onMessage(line);
    });
    this.exited = new Promise((resolveExit) => {
      child.once("error", (error) => {
        this.options.logger("error", `could not start the task launcher (perl): ${error.message}`);
      });
      child.once("close", (code, signal) => {
        if (this.child === child) this.child = undefined;
        this.onLauncherGone(code, signal);
        resolveExit();
      });
    });
    return child;
  }

  private onMessage(line: string): void {
    const [kind, tokenText, ...rest] = line.split(" ");
    const token = Number(tokenText);
    const entry = this.pending.get(token);
    if (entry === undefined) return;
    if (kind === "S") {
      entry.pid = Number(rest[0]);
      entry.listener.started(entry.pid);
    } else if (kind === "E") {
      const [stage, code = "", ...text] = rest;
      entry.failure = {
        stage: stage as NonNullable<LaunchEnding["failure"]>["stage"],
        code,
        text: text.join(" "),
      };
      if (stage === "fork") this.finish(token, entry, {});
    } else if (kind === "X") {
      const [, codeText, signalText, stdoutHex, stderrHex] = rest;
      const code = Number(codeText);
      const signal = Number(signalText);
      const ending: LaunchEnding =
        code >= 0 ? { exitCode: code } : { signal: SIGNAL_NAMES.get(signal) ?? `SIG${signal}` };
      const stdoutTail = decodeTail(stdoutHex);
      const stderrTail = decodeTail(stderrHex);
      if (stdoutTail !== undefined) ending.stdoutTail = stdoutTail;
      if (stderrTail !== undefined) ending.stderrTail = stderrTail;
      this.finish(token, entry, ending);
    }
  }

  private finish(token: number, entry: Pending, ending: LaunchEnding): void {
    this.pending.delete(token);
    if (entry.failure !== undefined) ending.failure = entry.failure;
    entry.listener.ended(ending);
  }

  private onLauncherGone(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.pending.size === 0 && this.closing) return;
    const why = `the task launcher exited (${signal ?? `code ${code}`})`;
    this.options.logger("error", `${why}; its ${this.pending.size} running tasks are killed`);
    for (const [token, entry] of this.pending) {
      // Nobody is left to reap them or tell how they end.
      if (entry.pid !== undefined) signalGroup(entry.pid, "SIGKILL");
      this.finish(token, entry, { failure: { stage: "launcher", code: "", text: why } });
    }
  }
}
