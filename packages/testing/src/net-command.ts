import { execFile, execFileSync } from "node:child_process";

/** An `ip`, `nft` or `tc` command (or a command run on a test host) failed; names the command and its stderr. */
export class NetCommandError extends Error {
  override readonly name = "NetCommandError";
  readonly command: readonly string[];
  readonly stderr: string;
  readonly exitCode: number | null;

  constructor(command: readonly string[], stderr: string, exitCode: number | null, options?: ErrorOptions) {
    super(`\`${command.join(" ")}\` failed (exit ${exitCode}): ${stderr.trim() || "(no stderr)"}`, options);
    this.command = command;
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command after this long; default 30 000. */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
}

/** Runs `command args` and resolves with its output; rejects with NetCommandError on a non-zero exit. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  const argv = [command, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) resolve({ stdout, stderr });
        else {
          const code = typeof error.code === "number" ? error.code : null;
          const why = error.killed ? `${stderr}\n(killed after ${options.timeoutMs ?? 30_000} ms)` : stderr;
          reject(new NetCommandError(argv, why || error.message, code, { cause: error }));
        }
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** Synchronous and silent: for exit hooks and sweeps, where a failure only means "already gone". */
export function runCommandQuietly(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 }).toString();
  } catch {
    return "";
  }
}
