#!/usr/bin/env bash
# The main job, from a fresh clone: sets up .venv if needed, then plays the shipped sample
# recording (Duckietown lane driving, then rain) through ood_monitor with the vae_lean detector
# on the CPU and prints the verdict timeline.  Extra arguments go to `leanood demo`
# (e.g. --model earlin_lite0, --recording my.bag, --shift fog).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m leanood_ros.cli demo "$@"
