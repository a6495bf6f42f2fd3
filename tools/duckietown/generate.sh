#!/usr/bin/env bash
# The whole dataset with one command: render every sequence of plan.json in the isolated
# simulator venv (.venv-sim), then write the labelled rosbag2 recordings, the shifted test and
# validation sequences and the index with the main venv (.venv):
#
#   tools/duckietown/generate.sh        # ~30 min rendering + ~6 min writing (2 cores): 5.6 GB PNG + 1.5 GB bags
#
# Resumable: finished sequences and recordings are skipped.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
"$HERE/render_all.sh"
"$REPO/scripts/setup_env.sh"
cd "$REPO"
exec "$REPO/.venv/bin/python" -m leanood_ros.cli dataset build "$@"
