/**
 * `@zkgrid/errors`: the base of every error a zkgrid package throws. Each error has a `code` and a
 * `name`, and `instanceof` holds across the ESM and CommonJS builds of a package and across two copies
 * of it in one tree, because it checks a `Symbol.for` marker rather than the prototype chain.
 *
 * @example
 * ```ts
 * import { markErrorClass, ZkgridError } from "@zkgrid/errors";
 *
 * class QuotaExceededError extends ZkgridError {
 *   static {
 *     markErrorClass(QuotaExceededError, "my-app/QuotaExceededError");
 *   }
 *   override name = "QuotaExceededError";
 *   constructor(readonly quota: number) {
 *     super(`quota of ${quota} exceeded`, "QUOTA_EXCEEDED");
 *   }
 * }
 *
 * const error: unknown = new QuotaExceededError(3);
 * console.log(error instanceof ZkgridError, (error as ZkgridError).code); // true "QUOTA_EXCEEDED"
 * ```
 *
 * @module
 */

/** The key, on a marked class, of the symbol its instances carry. */
const MARKER = Symbol.for("zkgrid.error.marker");

// biome-ignore lint/suspicious/noExplicitAny: any constructor's parameters
type ErrorClass = abstract new (...args: any[]) => Error;

/**
 * Makes `instanceof errorClass` recognise its instances (and its subclasses' instances) by the marker
 * `Symbol.for("zkgrid.error:" + id)` on their prototype, not by the identity of the class: an instance
 * made by the CommonJS build, or by another copy of the package, carries the same marker. `id` names
 * the class uniquely in the project: `"<package>/<ClassName>"`. Call it once per class, in a
 * `static { … }` block; a subclass that is not marked falls back to the ordinary prototype check.
 */
export function markErrorClass(errorClass: ErrorClass, id: string): void {
  const marker = Symbol.for(`zkgrid.error:${id}`);
  Object.defineProperty(errorClass, MARKER, { value: marker });
  Object.defineProperty(errorClass.prototype, marker, { value: true });
}

/** What every zkgrid error may be given besides its message and code. */
export interface ZkgridErrorOptions {
  cause?: unknown;
}

/**
 * The base of every zkgrid error. `code` identifies the condition: a ZooKeeper return code (a number)
 * for `@zkgrid/core`'s ZooKeeper errors, an upper-case string such as `"WORKER_NAME_TAKEN"` otherwise.
 */
export class ZkgridError extends Error {
  static {
    markErrorClass(ZkgridError, "@zkgrid/errors/ZkgridError");
  }

  // `this` is the class right of `instanceof` (a subclass inherits this method), not ZkgridError.
  static override [Symbol.hasInstance](this: ErrorClass, value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class being tested, often a subclass
    // biome-ignore lint/complexity/noUselessThisAlias: named for what it is
    const errorClass = this;
    const marker: unknown = Object.hasOwn(errorClass, MARKER)
      ? (errorClass as unknown as Record<symbol, unknown>)[MARKER]
      : undefined;
    if (typeof marker !== "symbol") return Function.prototype[Symbol.hasInstance].call(errorClass, value);
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[marker] === true;
  }

  override name = "ZkgridError";
  readonly code: string | number;

  constructor(message: string, code: string | number, options?: ZkgridErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The class of a condition that needs nothing but a message: its `code` is fixed, its `name` is the
 * last part of `id` (`"<package>/<ClassName>"`), and it is marked with `id` like `markErrorClass`.
 * Export it as a value and its instance type under the same name:
 * `export const CredentialsError = codedErrorClass("@zkgrid/core/CredentialsError", "INVALID_CREDENTIALS");`
 * `export type CredentialsError = InstanceType<typeof CredentialsError>;`
 */
export function codedErrorClass<const Code extends string>(id: string, code: Code) {
  const name = id.slice(id.lastIndexOf("/") + 1);
  class CodedError extends ZkgridError {
    override name = name;
    declare readonly code: Code;
    constructor(message: string, options?: ZkgridErrorOptions) {
      super(message, code, options);
    }
  }
  Object.defineProperty(CodedError, "name", { value: name });
  markErrorClass(CodedError, id);
  return CodedError;
}

/** True when `error` is a zkgrid error with this `code`. */
export function hasErrorCode(error: unknown, code: string | number): error is ZkgridError {
  return error instanceof ZkgridError && error.code === code;
}

export type { ErrorClass };
