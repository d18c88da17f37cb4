import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type BrowserContext, chromium } from "playwright-core";

/** Debian's chromium package puts the browser here. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

const run = promisify(execFile);

/**
 * Makes sure Debian's chromium is installed, installing it with apt-get when it is missing and we
 * are root. Resolves with undefined when it is there, or with the reason it cannot be.
 */
export async function ensureChromium(): Promise<string | undefined> {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  if (process.getuid?.() !== 0)
    return `${CHROMIUM_PATH} is missing, and installing it with apt-get needs root`;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    // Another apt-get (an unattended upgrade, a parallel install) may hold the dpkg lock: wait for it.
    const lock = ["-o", "DPkg::Lock::Timeout=120"];
    await run("apt-get", [...lock, "update"], { env, timeout: 300_000 });
    await run("apt-get", [...lock, "install", "-y", "--no-install-recommends", "chromium"], {
      env,
      timeout: 600_000,
    });
  } catch (err) {
    return `apt-get install chromium failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `apt-get installed chromium but ${CHROMIUM_PATH} is still missing`;
}

/** A headless chromium with a fresh profile; `close()` removes the profile too. */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = await mkdtemp(join(tmpdir(), "zkgrid-chromium-"));
  // launchPersistentContext is how Playwright takes a --user-data-dir: a fresh one per run.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}
