import { defineConfig } from "tsup";

export default defineConfig({
  entry: [
    "src/run.ts",
    "src/handlers.ts",
    "src/bullmq-worker.ts",
    "src/spawn-ceiling.ts",
    "src/relay-station.ts",
    "src/inbox-station.ts",
    "src/lone-trace.ts",
    "src/scale-workers.ts",
    "src/submitter.ts",
    "src/profile-window.ts",
    "src/zk-request-cpu.ts",
  ],
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node20",
});
