/** How every zkgrid command prints a duration (`parseDuration` in @zkgrid/protocol reads them). */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

const pad = (n: number) => String(n).padStart(2, "0");

/**
 * 850ms, 1.2s, 12.3s, 4m05s, 3h12m, 2d4h. Rounded to the unit shown before the form is chosen, so
 * 119,600 ms is 2m00s, never 1m60s.
 */
export function formatDuration(ms: number): string {
  const t = Math.max(0, Math.round(ms));
  if (t < SECOND) return `${t}ms`;
  const tenths = Math.round(t / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s`;
  const seconds = Math.round(t / SECOND);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${pad(seconds % 60)}s`;
  const minutes = Math.round(t / MINUTE);
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)}h${pad(minutes % 60)}m`;
  const hours = Math.round(t / HOUR);
  return `${Math.floor(hours / 24)}d${hours % 24}h`;
}
