#!/usr/bin/env bash
# Create (or verify) the isolated simulator venv <repo>/.venv-sim for the Duckietown renderer.
#
#   tools/duckietown/setup_sim_env.sh            # idempotent; ~1 s when already set up
#   PYTHON=/path/to/python3.11 tools/duckietown/setup_sim_env.sh
#   tools/duckietown/setup_sim_env.sh --force    # rebuild from scratch
#
# * Pins: tools/duckietown/requirements-sim.txt (every package, exact versions).
# * Fast path: .venv-sim/.sim_env_stamp holds a sha256 of the pin list + interpreter version;
#   when it matches (and the key imports work) nothing is installed.
# * System packages (Debian): xvfb, xauth and Mesa's software OpenGL. Installed with apt-get
#   only when missing and running as root; otherwise the command to run is printed.
# * Never touches the main project venv (<repo>/.venv).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv-sim"
REQ="$HERE/requirements-sim.txt"
STAMP="$VENV/.sim_env_stamp"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { echo "[setup_sim_env] $*"; }

# The ROS 2 PyPI wheels of the main venv re-exec Python with these set; a different
# venv must not inherit them.
if [[ -n "${_ROS_WHEELS_BOOTSTRAP_COMPLETE:-}" ]]; then
    unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
fi
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true

# ---------------------------------------------------------------- system packages
APT_PKGS=(xvfb xauth libgl1 libgl1-mesa-dri libglu1-mesa)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
        log "installing system packages: ${missing[*]}"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; then
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
        fi
    else
        log "missing system packages: ${missing[*]}"
        log "install them with:  sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
fi

# ---------------------------------------------------------------- interpreter
pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then "$PYTHON" -c 'import sys; print(sys.executable)'; return; fi
    local c
    for c in python3.11 /root/.pyenv/versions/3.11*/bin/python3.11 /usr/bin/python3.11; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info[:2]==(3,11)' 2>/dev/null; then
            "$c" -c 'import sys; print(sys.executable)'; return
        fi
    done
    echo ""
}

want_hash() {
    local pyver="$1"
    { cat "$REQ"; echo "python=$pyver"; } | sha256sum | cut -d' ' -f1
}

if [[ $FORCE == 0 && -x "$VENV/bin/python" && -f "$STAMP" ]]; then
    pyver="$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
    if [[ "$(cat "$STAMP")" == "$(want_hash "$pyver")" ]] &&
        "$VENV/bin/python" -c 'import numpy, cv2, pyglet, gym_duckietown.simulator' >/dev/null 2>&1; then
        log "up to date: $VENV (python $pyver)"
        exit 0
    fi
    log "stamp mismatch or broken venv: rebuilding $VENV"
fi

PY="$(pick_python)"
if [[ -z "$PY" ]]; then
    log "need Python 3.11 (set PYTHON=/path/to/python3.11)"
    exit 1
fi
pyver="$("$PY" -c 'import platform; print(platform.python_version())')"
log "python: $PY ($pyver)"

# Refuse to ever point at the main venv.
case "$VENV" in
    "$REPO/.venv" | "$REPO/.venv/"*) log "refusing to touch $REPO/.venv"; exit 1 ;;
esac

rm -rf "$VENV"
"$PY" -m venv "$VENV"
t0=$(date +%s)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null 2>&1 || log "warning: pip check reports problems (see '$VENV/bin/python -m pip check')"
"$VENV/bin/python" -c 'import numpy, cv2, pyglet, gym_duckietown.simulator' 2>/dev/null ||
    { log "import check failed"; exit 1; }
want_hash "$pyver" >"$STAMP"
log "installed $(grep -c '==' "$REQ") pinned packages into $VENV in $(($(date +%s) - t0)) s"
