/** Base class of the observer's errors. */
export class ObserverError extends Error {
  override readonly name: string = "ObserverError";
}

/** The observer was closed; it answers no more queries. */
export class ObserverClosedError extends ObserverError {
  override readonly name = "ObserverClosedError";

  constructor(options?: ErrorOptions) {
    super("the grid observer is closed", options);
  }
}
