/** Base class of every error the worker raises itself. */
export class WorkerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WorkerError";
  }
}

/** Who holds a worker name in ZooKeeper, as read from its registration. */
export interface NameHolder {
  host?: string;
  pid?: number;
  session: string;
}

/** Another live worker (another ZooKeeper session) is registered under this name. */
export class WorkerNameTakenError extends WorkerError {
  readonly worker: string;
  readonly holder: NameHolder;
  constructor(worker: string, holder: NameHolder) {
    const who = [
      holder.host === undefined ? undefined : `host ${holder.host}`,
      holder.pid === undefined ? undefined : `pid ${holder.pid}`,
      `session ${holder.session}`,
    ].filter((s) => s !== undefined);
    super(`worker name "${worker}" is in use by a live worker (${who.join(", ")})`);
    this.name = "WorkerNameTakenError";
    this.worker = worker;
    this.holder = holder;
  }
}

/** Another process on this machine runs a worker with this name in the same working directory. */
export class WorkerLockedError extends WorkerError {
  readonly lockFile: string;
  readonly pid: number;
  constructor(lockFile: string, pid: number) {
    super(`another worker (pid ${pid}) holds ${lockFile}`);
    this.name = "WorkerLockedError";
    this.lockFile = lockFile;
    this.pid = pid;
  }
}

/** An option given to startWorker is invalid. */
export class WorkerOptionError extends WorkerError {
  readonly option: string;
  constructor(option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = "WorkerOptionError";
    this.option = option;
  }
}

/** The worker was stopped before it could finish starting. */
export class WorkerStoppedError extends WorkerError {
  constructor(message = "the worker was stopped") {
    super(message);
    this.name = "WorkerStoppedError";
  }
}

/** Collects the worker's error classes, like `errors` in @zkgrid/core. */
export const errors = {
  WorkerError,
  WorkerNameTakenError,
  WorkerLockedError,
  WorkerOptionError,
  WorkerStoppedError,
};
