import { messageOf } from "@zkgrid/core";
import type { startDashboard } from "@zkgrid/dashboard";
import type { CliIo } from "./cli.js";
import {
  CliUsageError,
  GRID_OPTIONS,
  GRID_USAGE,
  gridTarget,
  loadDashboard,
  PROGRAM,
  parseCommand,
  positiveInt,
} from "./cli-common.js";

export const DASHBOARD_USAGE = `Usage: ${PROGRAM} dashboard [--port N] [--host H] [grid options]

Serves a live, read-only web page of the grid (masters, workers and their load, queue depth and
throughput, running and recent tasks) until interrupted. Also serves /metrics (Prometheus),
/api/snapshot, /api/tasks and /events (server-sent snapshots).

  --port <n>              the port (default 0: any free one; the URL is printed)
  --host <address>        the address to listen on (default 127.0.0.1: this machine only)

${GRID_USAGE}

Exit status: 0 after SIGINT or SIGTERM, 1 when the grid or the port could not be reached, 2 for bad
usage.
`;

export async function runDashboardCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("dashboard", argv, {
    ...GRID_OPTIONS,
    port: { type: "string" },
    host: { type: "string" },
  });
  if (values.help) {
    io.stdout.write(DASHBOARD_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    io.stderr.write(`${PROGRAM}: unexpected argument ${JSON.stringify(positionals[0])}\n`);
    return 2;
  }
  const port = values.port === "0" ? 0 : (positiveInt("port", values.port) ?? 0);
  if (port > 65_535) throw new CliUsageError(`--port: expected 0..65535, got ${port}`);
  const target = gridTarget(values, io);
  const { startDashboard } = await loadDashboard();
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  try {
    dashboard = await startDashboard({ ...target, port, host: values.host ?? "127.0.0.1" });
  } catch (err) {
    io.stderr.write(`${PROGRAM}: cannot start the dashboard: ${messageOf(err)}\n`);
    return 1;
  }
  io.stdout.write(`dashboard for ${target.root} at ${dashboard.url}\n`);
  await new Promise<void>((resolve) => {
    if (io.signal) {
      if (io.signal.aborted) return resolve();
      io.signal.addEventListener("abort", () => resolve(), { once: true });
      return;
    }
    // Only this command turns the signals into a clean stop; elsewhere they keep their default.
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  await dashboard.close();
  return 0;
}
