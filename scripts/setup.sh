#!/usr/bin/env bash
# One-time set-up behind `make book` / `make test` / `make lab`: system packages, .venv, spike_lib.
# Safe to re-run: each step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# Debian packages: python3-venv (venv on a bare Debian/Ubuntu) and OpenBLAS (fast BLAS for MLX on Linux)
APT_PACKAGES="libopenblas0-pthread"
BROWSER_PACKAGES="chromium chromium-driver"  # tests/browser only (setup.sh --browser)

say() { printf '[setup] %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "ERROR: $PYTHON not found. Install Python >= 3.10 (Debian/Ubuntu: apt-get install python3 python3-venv)."
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  say "ERROR: $("$PYTHON" --version) is too old; the course needs Python >= 3.10 (set PYTHON=python3.11)."
  exit 1
fi

apt_install() {  # apt_install PKG...: install missing Debian packages when we can, explain when we cannot
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "note: not a Debian/Ubuntu system; install the equivalent of: ${missing[*]}"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      say "note: missing Debian packages ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
      return 0
    fi
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >/dev/null || say "note: apt-get update failed; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || say "note: could not install ${missing[*]}; the course still runs (MLX uses its slower built-in BLAS)"
}

# `setup.sh --browser` (run by `make browser` / `make test`): only Debian's headless Chromium and
# its driver for tests/browser; the tests skip with the package names when they are missing
if [ "${1:-}" = "--browser" ]; then
  if [ "$(uname -s)" = "Linux" ] && command -v dpkg >/dev/null 2>&1; then
    apt_install $BROWSER_PACKAGES
  fi
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    say "note: no headless Chromium; the browser tests will be skipped. Install the Debian packages: $BROWSER_PACKAGES"
  fi
  exit 0
fi

if [ "$(uname -s)" = "Linux" ] && command -v dpkg >/dev/null 2>&1; then
  apt_install $APT_PACKAGES
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python${ver}-venv"
  fi
  say "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi

say "installing requirements.txt and spike_lib (editable) into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m spike_lib kernel --install --json >/dev/null  # jupyter kernel with fast BLAS
# a named kernel that any JupyterLab on this machine lists (make lab uses the .venv's own python3)
blas=$("$VENV/bin/python" -c 'from spike_lib.core.blas import find_openblas; print(find_openblas() or "")')
"$VENV/bin/python" -m ipykernel install --user --name spiking-transformers \
  --display-name "Spiking Transformers (.venv)" ${blas:+--env LD_PRELOAD "$blas"} >/dev/null \
  || say "note: could not install the named Jupyter kernel; use make lab"
touch "$VENV/.installed"
say "done: $VENV is ready"
