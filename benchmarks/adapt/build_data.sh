#!/usr/bin/env bash
# Build the "new camera on new places" benchmark data (issue 11, item 5) from benchmarks/adapt/plan.json:
#
#   benchmarks/adapt/build_data.sh             # render (one core, ~10 min), then write the bags
#   benchmarks/adapt/build_data.sh --dry-run   # list what would be rendered
#
# 1. tools/duckietown/render_all.sh --plan benchmarks/adapt/plan.json -> data/newcam/raw/<sequence>/
#    (320x240 PNG; resumable, complete sequences are skipped)
# 2. leanood dataset build --plan ... -> data/newcam/bags/<name>/ (rosbag2 mcap, CompressedImage
#    JPEG quality 80, labels on /leanood/label) + data/newcam/bags/index.json (docs/dataset.md).
#
# What it makes (measured Dec 2026, one core of this 2-core machine: render 8 min 22 s, bags 25 s;
# raw 369 MB, bags 57 MB): 48 recordings, 5040 frames, maps TTIC_ripltown, robotarium2, MOOC_modcon.
# Per map: <map>_normal_{0..7} (120 frames; 0-1 split train/use fit, 2-3 calib/calib, 4-7
# test/judge) and <map>_{rain,dark,fog,glare,blur,noise,snow,domainrand} (90 frames, ID for
# frames 0-44, the shift from frame 45; split test, role ood).  So `--dataset data/newcam/bags`
# gives fit = 6 recordings (2 per place), calib = 6, and with `--split test` id = 12, ood = 24.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"

"$REPO/tools/duckietown/render_all.sh" --plan "$HERE/plan.json" "$@"
for a in "$@"; do [[ "$a" == "--dry-run" ]] && exit 0; done
cd "$REPO"
"$PY" -m leanood_ros.cli dataset build --plan "$HERE/plan.json" --raw data/newcam/raw \
    --out data/newcam/bags
