import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Seconds a file took in a full run (tests/order/durations.json; `node tests/order/durations.mjs` renews it). */
const recorded: Record<string, number> = JSON.parse(
  readFileSync(new URL("durations.json", import.meta.url), "utf8"),
) as Record<string, number>;

/** What a file missing from the table is taken to last: a new file is most often an end-to-end one. */
const UNKNOWN_SECONDS = 10;

/**
 * Starts the longest test files first, so that the run's length is close to the total divided by the
 * workers, not that plus the longest file started last. Vitest's own order needs its results cache,
 * which a fresh clone (CI) lacks, and then goes by file size: the chaos files, small and the longest,
 * started last and set the run's length.
 */
export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const seconds = (spec: TestSpecification): number =>
      recorded[relative(root, spec.moduleId)] ?? UNKNOWN_SECONDS;
    return [...files].sort((a, b) => seconds(b) - seconds(a));
  }
}
