import { markErrorClass, ZkgridError } from "@zkgrid/core";

/** Base class of the observer's errors. */
export class ObserverError extends ZkgridError {
  static {
    markErrorClass(ObserverError, "@zkgrid/observer/ObserverError");
  }
  override readonly name: string = "ObserverError";
}

/** The observer was closed; it answers no more queries. */
export class ObserverClosedError extends ObserverError {
  static {
    markErrorClass(ObserverClosedError, "@zkgrid/observer/ObserverClosedError");
  }
  declare readonly code: "OBSERVER_CLOSED";
  override readonly name = "ObserverClosedError";

  constructor(options?: ErrorOptions) {
    super("the grid observer is closed", "OBSERVER_CLOSED", options);
  }
}
