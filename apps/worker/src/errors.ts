import { markErrorClass, ZkgridError, type ZkgridErrorOptions } from "@zkgrid/core";

/** Base class of every error the worker raises itself; `code` says which (`"WORKER_ERROR"` when none). */
export class WorkerError extends ZkgridError {
  static {
    markErrorClass(WorkerError, "@zkgrid/worker/WorkerError");
  }
  constructor(message: string, code = "WORKER_ERROR", options?: ZkgridErrorOptions) {
    super(message, code, options);
    this.name = "WorkerError";
  }
}

/** A thrown value as an Error, for the paths that take one (a non-Error becomes its string). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Who holds a worker name in ZooKeeper, as read from its registration. */
export interface NameHolder {
  host?: string;
  pid?: number;
  session: string;
}

/** Another live worker (another ZooKeeper session) is registered under this name. */
export class WorkerNameTakenError extends WorkerError {
  static {
    markErrorClass(WorkerNameTakenError, "@zkgrid/worker/WorkerNameTakenError");
  }
  declare readonly code: "WORKER_NAME_TAKEN";
  constructor(
    readonly worker: string,
    readonly holder: NameHolder,
  ) {
    const who = [
      holder.host === undefined ? undefined : `host ${holder.host}`,
      holder.pid === undefined ? undefined : `pid ${holder.pid}`,
      `session ${holder.session}`,
    ].filter((s) => s !== undefined);
    super(`worker name "${worker}" is in use by a live worker (${who.join(", ")})`, "WORKER_NAME_TAKEN");
    this.name = "WorkerNameTakenError";
  }
}

/** Another process on this machine runs a worker with this name in the same working directory. */
export class WorkerLockedError extends WorkerError {
  static {
    markErrorClass(WorkerLockedError, "@zkgrid/worker/WorkerLockedError");
  }
  declare readonly code: "WORKER_LOCKED";
  constructor(
    readonly lockFile: string,
    readonly pid: number,
  ) {
    super(`another worker (pid ${pid}) holds ${lockFile}`, "WORKER_LOCKED");
    this.name = "WorkerLockedError";
  }
}

/** An option given to startWorker is invalid. */
export class WorkerOptionError extends WorkerError {
  static {
    markErrorClass(WorkerOptionError, "@zkgrid/worker/WorkerOptionError");
  }
  declare readonly code: "INVALID_OPTION";
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`${option}: ${message}`, "INVALID_OPTION");
    this.name = "WorkerOptionError";
  }
}

/** The worker was stopped before it could finish starting. */
export class WorkerStoppedError extends WorkerError {
  static {
    markErrorClass(WorkerStoppedError, "@zkgrid/worker/WorkerStoppedError");
  }
  declare readonly code: "WORKER_STOPPED";
  constructor(message = "the worker was stopped") {
    super(message, "WORKER_STOPPED");
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
