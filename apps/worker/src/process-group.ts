/** Environment variables of the worker that a task does not inherit: they hold its credentials. */
const PRIVATE_ENV = ["ZKGRID_AUTH", "ZKGRID_AUTH_FILE"];

/** The environment every task starts from: the worker's own, less its credentials. */
export function inheritedEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PRIVATE_ENV) delete env[name];
  return env;
}

/** Sends `signal` to the process group led by `pid`; a group that is gone already is fine. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
