import type { ProtocolError } from "./errors.js";

/** A decoded value, or the reason it could not be decoded. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };
