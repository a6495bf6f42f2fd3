#!/usr/bin/env bash
# The test suite, from a fresh clone: sets up .venv if needed, runs every test once with pytest
# (the linters included), then part of it again with the newest onnxruntime and on Python 3.10
# and 3.12 (scripts/test_pythons.sh), then builds the package as a ROS workspace would (colcon
# build) and runs only what the colcon install adds: the install checks (-m smoke) and linters.
#   scripts/test.sh            everything
#   scripts/test.sh -k node    extra arguments go to the pytest run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
echo "== pyflakes"
"$PY" -m pyflakes leanood_ros test launch tools/duckietown/*.py
echo "== pytest"
"$PY" -m pytest -q -ra "$@"
if [[ $# -eq 0 ]]; then
  # the node ships with the lightest onnxruntime (requirements/runtime.txt); the bundles,
  # detectors, tooling and a node over DDS must work with the newest one as well
  ORT="$(sed -n 's/^onnxruntime==//p' "$ROOT/requirements/onnxruntime-newest.txt")"
  ORT_DIR="$ROOT/.venv/onnxruntime-newest"
  echo "== pytest with onnxruntime $ORT (bundles, detectors, tooling, one node)"
  [[ -d "$ORT_DIR/onnxruntime-$ORT.dist-info" ]] || { rm -rf "$ORT_DIR"; "$PY" -m pip install -q \
    --no-deps --target "$ORT_DIR" "onnxruntime==$ORT" 2>&1 | grep -v "^WARNING: Location" || true; }
  PYTHONPATH="$ORT_DIR" "$PY" -c \
    "import onnxruntime as o, sys; sys.exit(o.__version__ != '$ORT' and 'not $ORT: ' + o.__file__)"
  PYTHONPATH="$ORT_DIR" "$PY" -m pytest -q -p no:cacheprovider test/test_bundle.py \
    test/test_earlin.py test/test_vae_tooling.py test/test_heads.py test/test_evaluate.py \
    test/test_package.py "test/test_ood_monitor_node.py::test_verdicts_follow_the_stream_with_source_stamps"
  "$ROOT/scripts/test_pythons.sh"   # the runtime core on Python 3.10 and 3.12 (no ROS there)
  echo "== colcon build + colcon test (ament_python workspace)"
  WS="$(mktemp -d)"
  trap 'rm -rf "$WS"' EXIT
  export PATH="$ROOT/.venv/bin:$PATH"
  colcon --log-base "$WS/log" build --base-paths "$ROOT" --build-base "$WS/build" \
    --install-base "$WS/install" >"$WS/build.log" 2>&1 || { cat "$WS/build.log"; exit 1; }
  # colcon test: the installed layout (share/, lib/leanood_ros executables) and the linters, as
  # a ROS build farm runs them; everything else already ran above, against the same code.
  colcon --log-base "$WS/log" test --base-paths "$ROOT" --build-base "$WS/build" \
    --install-base "$WS/install" --return-code-on-test-failure \
    --pytest-args -m "smoke or linter" -q
  colcon --log-base "$WS/log" test-result --test-result-base "$WS/build" --verbose | tail -n 3
fi
