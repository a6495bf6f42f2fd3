#!/usr/bin/env bash
# The runtime core's unit tests on the other Pythons the package supports: 3.10 (Jetson, ROS 2
# Humble) and 3.12, each in a venv of its own (.venv-py3.X, from requirements/core-pythons.txt):
# no ROS (its PyPI wheels are for 3.11 only), no torch.  An interpreter this machine lacks is
# reported and left out.  Called by scripts/test.sh; extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$ROOT/requirements/core-pythons.txt"
# detectors, bundles and their checks, decision, monitor core, image decoding, parameters, memory
TESTS=()
for name in bundle heads cameras decision gate image_conversion memory monitor_core parameters \
            stats reliability_decode launch_config; do
  TESTS+=("test/test_$name.py")
done
find_python() {   # a pyenv install, else on PATH (a pyenv shim there may not run)
  local cand
  for cand in "$HOME"/.pyenv/versions/"$1".*/bin/python"$1" "$(command -v "python$1" || true)"; do
    if [[ -x "$cand" ]] && "$cand" -c 'import venv' >/dev/null 2>&1; then
      echo "$cand"; return
    fi
  done
}
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
cd "$ROOT"
for version in 3.10 3.12; do
  PY="$(find_python "$version")"
  if [[ -z "$PY" ]]; then
    echo "== Python $version: no interpreter on this machine, not tested"
    continue
  fi
  VENV="$ROOT/.venv-py$version"
  want="$(sha256sum "$REQ" | cut -d' ' -f1)"
  if [[ ! -f "$VENV/.requirements.sha256" || "$(cat "$VENV/.requirements.sha256")" != "$want" ]]; then
    echo "== Python $version: creating $VENV"
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -r "$REQ" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import numpy, onnxruntime, cv2, onnx, sklearn" \
      || { echo "test_pythons: the Python $version venv is incomplete" >&2; exit 1; }
    echo "$want" > "$VENV/.requirements.sha256"
  fi
  echo "== pytest, runtime core on $("$VENV/bin/python" --version)"
  PYTHONPATH="$ROOT" "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
done
