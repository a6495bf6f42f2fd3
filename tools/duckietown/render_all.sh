#!/usr/bin/env bash
# Render the whole Duckietown dataset plan (tools/duckietown/plan.json).
#
#   tools/duckietown/render_all.sh            # full plan  -> data/duckietown/raw/<sequence>/
#   tools/duckietown/render_all.sh --quick    # smoke test -> data/duckietown/quick/<sequence>/
#   tools/duckietown/render_all.sh --dry-run  # list what would be rendered
#   (further arguments go to render_plan.py, e.g. --only train_udem1_0)
#
# Sets up .venv-sim if needed, then renders one sequence at a time (one CPU core:
# LP_NUM_THREADS=1) under a virtual X server.  Resumable: complete sequences are skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv-sim"

"$HERE/setup_sim_env.sh"

# Do not leak the main venv's ROS-wheel bootstrap variables into the simulator venv.
if [[ -n "${_ROS_WHEELS_BOOTSTRAP_COMPLETE:-}" ]]; then
    unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
fi
unset PYTHONPATH VIRTUAL_ENV || true
export LP_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONUNBUFFERED=1

cd "$REPO"
# -s: 24-bit colour depth for the (unused) root window; rendering goes to an offscreen FBO.
exec xvfb-run -a -s "-screen 0 1024x768x24" \
    "$VENV/bin/python" "$HERE/render_plan.py" "$@" \
    2> >(grep --line-buffered -v -E "^(WARNING|DEBUG)|Gym has been unmaintained|gymnasium|Users of this version of Gym|migration guide|'audio': \(" >&2)
