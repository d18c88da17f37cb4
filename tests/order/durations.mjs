#!/usr/bin/env node
// Writes tests/order/durations.json from a vitest JSON report: each test file's wall time in seconds,
// which tests/order/longest-first.ts uses to start the longest files first.
// Usage: node tests/order/durations.mjs [.vitest-report.json]   (after a full `pnpm test`)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const reportPath = process.argv[2] ?? ".vitest-report.json";
const report = JSON.parse(readFileSync(reportPath, "utf8"));
// The report is written at the root of the checkout that ran it (which may be another clone).
const ranIn = dirname(resolve(reportPath));
const seconds = {};
for (const file of report.testResults ?? []) {
  if (typeof file.startTime !== "number" || typeof file.endTime !== "number") continue;
  seconds[relative(ranIn, file.name)] = Math.round((file.endTime - file.startTime) / 100) / 10;
}
const sorted = Object.fromEntries(
  Object.entries(seconds).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1)),
);
const out = fileURLToPath(new URL("durations.json", import.meta.url));
writeFileSync(out, `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`durations: ${Object.keys(sorted).length} files from ${reportPath} -> ${relative(root, out)}`);
