import { cpSync, existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

// These tests load the built files (pnpm build), not the sources: the point is two builds, two classes.
const packages = fileURLToPath(new URL("../../", import.meta.url));
const require = createRequire(import.meta.url);

type Core = typeof import("../src/index.js");
type Protocol = typeof import("../../protocol/src/index.js");

function built(pkg: string, file: string): string {
  const path = join(packages, pkg, "dist", file);
  if (!existsSync(path)) throw new Error(`${path} is missing: run pnpm build first`);
  return path;
}

const esm = <T>(pkg: string): Promise<T> => import(pathToFileURL(built(pkg, "index.js")).href) as Promise<T>;
const cjs = <T>(pkg: string): T => require(built(pkg, "index.cjs")) as T;

function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

const temp: string[] = [];
afterAll(() => {
  for (const dir of temp) rmSync(dir, { recursive: true, force: true });
});

describe("errors across the ESM and CommonJS builds", () => {
  it("an error thrown by core's CJS build is an instance of the ESM classes, with its code, and the reverse", async () => {
    const fromEsm = await esm<Core>("core");
    const fromCjs = cjs<Core>("core");
    expect(fromCjs.BadArgumentsError).not.toBe(fromEsm.BadArgumentsError);

    const cjsError = thrownBy(() => fromCjs.parseAcl("nonsense"));
    expect(cjsError).toBeInstanceOf(fromEsm.BadArgumentsError);
    expect(cjsError).toBeInstanceOf(fromEsm.ZkError);
    expect(cjsError).toBeInstanceOf(fromEsm.ZkgridError);
    expect(cjsError).not.toBeInstanceOf(fromEsm.NoNodeError);
    expect((cjsError as InstanceType<Core["ZkError"]>).code).toBe(fromEsm.Code.BAD_ARGUMENTS);
    expect(fromEsm.errors.isBadArguments(cjsError)).toBe(true);

    const esmError = thrownBy(() => fromEsm.readCredentials({ env: { ZKGRID_AUTH: "no-colon" } }));
    expect(esmError).toBeInstanceOf(fromCjs.CredentialsError);
    expect(esmError).toBeInstanceOf(fromCjs.ZkgridError);
    expect(esmError).not.toBeInstanceOf(fromCjs.ZkError);
    expect((esmError as InstanceType<Core["ZkgridError"]>).code).toBe("INVALID_CREDENTIALS");
  });

  it("an error thrown by protocol's CJS build is an instance of the ESM class and of core's base, and the reverse", async () => {
    const fromEsm = await esm<Protocol>("protocol");
    const fromCjs = cjs<Protocol>("protocol");
    const core = await esm<Core>("core");

    const cjsError = thrownBy(() => fromCjs.assertWorkerName("a/b"));
    expect(cjsError).toBeInstanceOf(fromEsm.InvalidNameError);
    expect(cjsError).toBeInstanceOf(core.ZkgridError);
    expect(cjsError).not.toBeInstanceOf(fromEsm.ProtocolError);
    expect((cjsError as InstanceType<Protocol["InvalidNameError"]>).code).toBe("INVALID_NAME");

    const esmError = thrownBy(() => fromEsm.assertWorkerName(""));
    expect(esmError).toBeInstanceOf(fromCjs.InvalidNameError);
    expect((esmError as InstanceType<Protocol["InvalidNameError"]>).code).toBe("INVALID_NAME");
  });

  it("an error from a second copy of a package (and of the base) is an instance of the first copy's classes", async () => {
    // A tree holding its own copies of @zkgrid/protocol and @zkgrid/errors, as two installs would.
    const root = mkdtempSync(join(tmpdir(), "zkgrid-two-copies-"));
    temp.push(root);
    for (const pkg of ["protocol", "errors"]) {
      const into = join(root, "node_modules", "@zkgrid", pkg);
      cpSync(join(packages, pkg, "package.json"), join(into, "package.json"));
      cpSync(dirname(built(pkg, "index.js")), join(into, "dist"), { recursive: true });
    }
    // The protocol's other dependencies are shared, as one install would have them.
    const fromProtocol = createRequire(join(packages, "protocol", "package.json"));
    for (const dependency of ["zod", "croner"]) {
      const dir = dirname(realpathSync(fromProtocol.resolve(`${dependency}/package.json`)));
      symlinkSync(dir, join(root, "node_modules", dependency), "dir");
    }

    const copy = (await import(
      pathToFileURL(join(root, "node_modules", "@zkgrid", "protocol", "dist", "index.js")).href
    )) as Protocol;
    const original = await esm<Protocol>("protocol");
    const core = await esm<Core>("core");
    expect(copy.InvalidNameError).not.toBe(original.InvalidNameError);

    const error = thrownBy(() => copy.assertTaskId(""));
    expect(error).toBeInstanceOf(original.InvalidNameError);
    expect(error).toBeInstanceOf(core.ZkgridError);
    expect((error as InstanceType<Protocol["InvalidNameError"]>).code).toBe("INVALID_NAME");
    expect(thrownBy(() => original.assertTaskId(""))).toBeInstanceOf(copy.InvalidNameError);
  });
});
