import { execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { sharedConnectString } from "./helpers.js";

// Each case installs the built @zkgrid/core (pnpm build) into a scratch tree, with the zookeeper addon
// missing, unbuilt, built without zkgrid's fix or with it, and runs a real program there.
const packages = fileURLToPath(new URL("../../", import.meta.url));
const addonDir = dirname(
  realpathSync(createRequire(join(packages, "core", "package.json")).resolve("zookeeper/package.json")),
);
const addonRequire = createRequire(join(addonDir, "package.json"));

const trees: string[] = [];
afterAll(() => {
  for (const dir of trees) rmSync(dir, { recursive: true, force: true });
});

type Addon = "missing" | "unbuilt" | "unpatched" | "patched";

/** `layout: "pnpm"` puts the addon where pnpm does, in `node_modules/.pnpm/`, behind a symlink. */
function treeWith(addon: Addon, layout: "flat" | "pnpm" = "flat"): string {
  const root = mkdtempSync(join(tmpdir(), `zkgrid-addon-${addon}-`));
  trees.push(root);
  const modules = join(root, "node_modules");
  for (const pkg of ["core", "errors"]) {
    const dist = join(packages, pkg, "dist");
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run pnpm build first`);
    cpSync(join(packages, pkg, "package.json"), join(modules, "@zkgrid", pkg, "package.json"));
    cpSync(dist, join(modules, "@zkgrid", pkg, "dist"), { recursive: true });
  }
  if (addon === "missing") return root;
  const zookeeper =
    layout === "flat"
      ? join(modules, "zookeeper")
      : join(modules, ".pnpm", "zookeeper@7.3.0", "node_modules", "zookeeper");
  cpSync(join(addonDir, "package.json"), join(zookeeper, "package.json"));
  if (layout === "pnpm") symlinkSync(zookeeper, join(modules, "zookeeper"), "dir");
  cpSync(join(addonDir, "lib"), join(zookeeper, "lib"), { recursive: true });
  for (const dep of ["async", "node-gyp-build"]) {
    symlinkSync(dirname(addonRequire.resolve(`${dep}/package.json`)), join(modules, dep), "dir");
  }
  if (addon === "unbuilt") return root;
  const release = join(zookeeper, "build", "Release");
  mkdirSync(release, { recursive: true });
  cpSync(join(addonDir, "build", "Release", "zookeeper.node"), join(release, "zookeeper.node"));
  if (addon === "patched") writeFileSync(join(release, ".zkgrid-resolution-patch"), "test\n");
  return root;
}

interface Outcome {
  imported: boolean;
  before: { loaded: boolean; patched: boolean; packageDir?: string };
  after: { loaded: boolean; patched: boolean; error?: string };
  error?: { name: string; code: string; message: string; isAddonError: boolean };
  warnings: string[];
}

/** Imports @zkgrid/core in `root` (ESM or CommonJS), connects and does one write and one read. */
function run(root: string, format: "esm" | "cjs"): Outcome {
  const body = `
    const outcome = { imported: true, before: core.addonStatus(), warnings: [] };
    const logger = (level, msg) => { if (level === "warn") outcome.warnings.push(msg); };
    try {
      const zk = await core.connect({ connectString: ${JSON.stringify(sharedConnectString())}, connectTimeoutMs: 20000, logger, root: "/addon-test" });
      await zk.ensurePath("/n");
      await zk.set("/n", "x");
      await zk.get("/n");
      await zk.close();
    } catch (e) {
      outcome.error = { name: e.name, code: e.code, message: e.message, isAddonError: e instanceof core.AddonUnavailableError };
    }
    outcome.after = core.addonStatus();
    console.log(JSON.stringify(outcome));`;
  const file = join(root, format === "esm" ? "main.mjs" : "main.cjs");
  writeFileSync(
    file,
    format === "esm"
      ? `import * as core from "@zkgrid/core";\n${body}`
      : `const core = require("@zkgrid/core");\n(async () => {${body}})();`,
  );
  // Without NODE_PATH (pnpm sets one pointing into the workspace), the scratch tree is all there is.
  const env = { ...process.env, NODE_PATH: "" };
  const out = execFileSync(process.execPath, [file], { cwd: root, env, encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out.trim().split("\n").at(-1) ?? "") as Outcome;
}

const HOW_TO_BUILD = [
  /pnpm approve-builds/,
  /onlyBuiltDependencies/,
  /npm rebuild zookeeper/,
  /C compiler/,
  /Python/,
];

describe("the zookeeper native addon", () => {
  it.each(["esm", "cjs"] as const)(
    "without the addon installed, @zkgrid/core imports (%s) and connect() rejects saying how to build it",
    (format) => {
      const outcome = run(treeWith("missing"), format);
      expect(outcome.imported).toBe(true);
      expect(outcome.before).toEqual({ loaded: false, patched: false }); // no packageDir: nothing to find
      expect(outcome.error).toMatchObject({
        name: "AddonUnavailableError",
        code: "ADDON_UNAVAILABLE",
        isAddonError: true,
      });
      expect(outcome.error?.message).toMatch(/not installed/);
      for (const hint of HOW_TO_BUILD) expect(outcome.error?.message).toMatch(hint);
      expect(outcome.after.loaded).toBe(false);
    },
  );

  it("with the addon installed but not built, connect() passes on node-gyp-build's words and says how to build it", () => {
    const outcome = run(treeWith("unbuilt"), "esm");
    expect(outcome.imported).toBe(true);
    expect(outcome.error).toMatchObject({ name: "AddonUnavailableError", code: "ADDON_UNAVAILABLE" });
    expect(outcome.error?.message).toMatch(/No native build was found/);
    for (const hint of HOW_TO_BUILD) expect(outcome.error?.message).toMatch(hint);
    expect(outcome.after).toMatchObject({ loaded: false, patched: false });
    expect(outcome.after.error).toMatch(/No native build was found/);
  });

  it.each(["esm", "cjs"] as const)(
    "an addon built without zkgrid's fix loads on the first connection and the client warns once, naming the cost (%s)",
    (format) => {
      const outcome = run(treeWith("unpatched"), format);
      expect(outcome.error).toBeUndefined();
      expect(outcome.before).toMatchObject({ loaded: false, patched: false });
      expect(outcome.after).toMatchObject({ loaded: true, patched: false });
      expect(outcome.warnings).toHaveLength(1);
      expect(outcome.warnings[0]).toMatch(/hosts-once fix/);
      expect(outcome.warnings[0]).toMatch(/13 µs of CPU per reply/);
      expect(outcome.warnings[0]).toMatch(/rebuild @zkgrid\/core/);
    },
  );

  it("an unpatched addon installed by pnpm warns with pnpm's fix: approve, rebuild @zkgrid/core, no side-effects cache", () => {
    const flat = run(treeWith("unpatched"), "esm");
    const pnpm = run(treeWith("unpatched", "pnpm"), "esm");
    expect(pnpm.error).toBeUndefined();
    expect(pnpm.after).toMatchObject({ loaded: true, patched: false });
    expect(pnpm.warnings).toHaveLength(1);
    expect(pnpm.warnings[0]).toMatch(/hosts-once fix/);
    expect(pnpm.warnings[0]).toMatch(/side-effects cache/);
    expect(pnpm.warnings[0]).toMatch(/onlyBuiltDependencies/);
    expect(pnpm.warnings[0]).toMatch(/`pnpm rebuild @zkgrid\/core`/);
    expect(pnpm.warnings[0]).toMatch(/side-effects-cache=false/);
    expect(flat.warnings[0]).toMatch(/`npm rebuild @zkgrid\/core`/);
    expect(flat.warnings[0]).not.toMatch(/pnpm/);
  });

  it("an addon carrying the fix's stamp is reported patched and the client does not warn", () => {
    const outcome = run(treeWith("patched"), "esm");
    expect(outcome.error).toBeUndefined();
    expect(outcome.after).toMatchObject({ loaded: true, patched: true });
    expect(outcome.warnings).toEqual([]);
  });
});
