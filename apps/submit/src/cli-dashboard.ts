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
import { connectGrid, type GridClient } from "./grid-client.js";

export const DASHBOARD_USAGE = `Usage: ${PROGRAM} dashboard [--port N] [--host H] [--control [--origin URL]...] [grid options]

Serves a live web page of the grid (masters, workers and their load, queue depth and throughput,
the gate, schedules and their recent firings, running, delayed and recent tasks) until interrupted.
Read-only unless --control. Also serves /metrics (Prometheus), /api/snapshot, /api/tasks,
/api/schedules and /events (server-sent snapshots).

  --port <n>              the port (default 0: any free one; the URL is printed)
  --host <address>        the address to listen on (default 127.0.0.1: this machine only)
  --control               let the page change the grid: pause and resume the grid, a label or a
                          schedule, set and remove a label's start limit. There is no login:
                          ANYONE WHO CAN REACH THE PORT CAN PAUSE THE GRID. Keep the default
                          loopback --host, or put the dashboard behind a proxy that authenticates.
                          Requests must come from the page (a per-process token, and the Origin
                          is checked); without --control every POST is refused (403)
  --origin <url>          with --control: another origin allowed to send control requests, such as
                          the public https://grid.example.com of a proxy in front (repeatable)

${GRID_USAGE}

Exit status: 0 after SIGINT or SIGTERM, 1 when the grid or the port could not be reached, 2 for bad
usage.
`;

export async function runDashboardCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("dashboard", argv, {
    ...GRID_OPTIONS,
    port: { type: "string" },
    host: { type: "string" },
    control: { type: "boolean" },
    origin: { type: "string", multiple: true },
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
  const origins = values.origin ?? [];
  if (origins.length > 0 && !values.control) throw new CliUsageError("--origin: only with --control");
  for (const origin of origins) originCheck(origin);
  const target = gridTarget(values, io);
  const { startDashboard } = await loadDashboard();
  let dashboard: Awaited<ReturnType<typeof startDashboard>>;
  // Control goes through the library's own client: the dashboard writes nothing itself.
  let grid: GridClient | undefined;
  try {
    if (values.control) grid = await connectGrid(target);
    dashboard = await startDashboard({
      ...target,
      port,
      host: values.host ?? "127.0.0.1",
      ...(grid ? { control: grid, controlOrigins: origins } : {}),
    });
  } catch (err) {
    await grid?.close();
    io.stderr.write(`${PROGRAM}: cannot start the dashboard: ${messageOf(err)}\n`);
    return 1;
  }
  io.stdout.write(`dashboard for ${target.root} at ${dashboard.url}\n`);
  if (grid) io.stdout.write("control is on: anyone who can reach this address can pause the grid\n");
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
  await grid?.close();
  return 0;
}

/** An --origin: scheme, host and port only, as a browser sends it. */
function originCheck(text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliUsageError(
      `--origin: expected a URL such as https://grid.example.com, got ${JSON.stringify(text)}`,
    );
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== text.replace(/\/$/, ""))
    throw new CliUsageError(
      `--origin: expected an origin (http or https, host, optional port, no path), got ${JSON.stringify(text)}`,
    );
}
