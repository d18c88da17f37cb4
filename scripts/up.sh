#!/usr/bin/env bash
# One command on a fresh machine: install what is missing, build, and run a local grid (ZooKeeper, a
# master and a worker) until Ctrl-C. Extra arguments go to `pnpm grid` (see `pnpm grid --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
pnpm build
exec node scripts/grid.mjs "$@"
