import { describe, expect, it } from "vitest";
import { codedErrorClass, hasErrorCode, markErrorClass, ZkgridError } from "../src/index.js";

class QuotaError extends ZkgridError {
  static {
    markErrorClass(QuotaError, "test/QuotaError");
  }
  override name = "QuotaError";
  constructor() {
    super("quota exceeded", "QUOTA");
  }
}

describe("ZkgridError", () => {
  it("a marked subclass's instance is an instance of itself and of the base, with its code and name", () => {
    const error: unknown = new QuotaError();
    expect(error instanceof QuotaError).toBe(true);
    expect(error instanceof ZkgridError).toBe(true);
    expect(error instanceof Error).toBe(true);
    expect((error as ZkgridError).code).toBe("QUOTA");
    expect((error as ZkgridError).name).toBe("QuotaError");
    expect(hasErrorCode(error, "QUOTA")).toBe(true);
    expect(hasErrorCode(error, "OTHER")).toBe(false);
  });

  it("an object carrying the marker of a class with the same id counts as its instance, as a second copy's would", () => {
    // What another copy of the package (or the other build) makes: a distinct class, the same marker.
    class SecondCopy extends ZkgridError {
      static {
        markErrorClass(SecondCopy, "test/QuotaError");
      }
    }
    expect(new SecondCopy("x", "QUOTA") instanceof QuotaError).toBe(true);
    expect(new QuotaError() instanceof SecondCopy).toBe(true);
  });

  it("a plain Error, a base error and values that are not objects are not instances of a subclass", () => {
    expect(new Error("x") instanceof ZkgridError).toBe(false);
    expect(new ZkgridError("x", "X") instanceof QuotaError).toBe(false);
    expect((null as unknown) instanceof ZkgridError).toBe(false);
    expect(("QUOTA" as unknown) instanceof QuotaError).toBe(false);
  });

  it("an unmarked subclass falls back to the prototype chain instead of inheriting its parent's marker", () => {
    class Unmarked extends QuotaError {}
    expect(new QuotaError() instanceof Unmarked).toBe(false);
    expect(new Unmarked() instanceof Unmarked).toBe(true);
    expect(new Unmarked() instanceof QuotaError).toBe(true);
  });
});

describe("codedErrorClass", () => {
  const LimitError = codedErrorClass("test/LimitError", "LIMIT");

  it("makes a class whose instances carry its code, its name, the message and the cause", () => {
    const cause = new Error("under");
    const error: unknown = new LimitError("over the limit", { cause });
    expect(error instanceof LimitError).toBe(true);
    expect(error instanceof ZkgridError).toBe(true);
    const { code, name, message } = error as InstanceType<typeof LimitError>;
    expect([code, name, message, (error as Error).cause]).toEqual([
      "LIMIT",
      "LimitError",
      "over the limit",
      cause,
    ]);
    expect(LimitError.name).toBe("LimitError");
  });

  it("marks the class with its id, so a second copy's class with the same id matches it and another does not", () => {
    const SecondCopy = codedErrorClass("test/LimitError", "LIMIT");
    const Other = codedErrorClass("test/OtherError", "LIMIT");
    expect(new SecondCopy("x") instanceof LimitError).toBe(true);
    expect(new Other("x") instanceof LimitError).toBe(false);
    expect(new QuotaError() instanceof LimitError).toBe(false);
  });
});
