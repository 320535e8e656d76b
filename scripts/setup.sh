#!/usr/bin/env bash
# One-time set-up for Mote on Debian/Ubuntu: the Debian packages the firmware and the
# tests need (installing them needs root: run as root or have sudo), and a Python
# virtual environment in .venv with Mote and its test dependencies. Safe to re-run:
# present packages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi  # the emulated boards
  gcc make valgrind                                          # Linux port, callgrind counts
  time                                                       # peak RSS in bench/linux.py
  clang libclang-rt-14-dev                                   # libFuzzer for the blob parser
  dfu-util stlink-tools                                      # writing an STM32 (and their "no board" lines)
  python3-venv
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating the Python environment in .venv"
  python3 -m venv .venv
fi
# torch==2.13.0 is pinned in the extras: the CPU build this machine kind provides. The
# farm extra (labgrid) is part of the test environment: tests/test_farm.py runs the HIL
# suite through it, and must run (not skip) under CI.
.venv/bin/python -m pip install -q --upgrade pip
# The tflite extra too: its tests run under CI (mote export --tflite, tflite-micro).
.venv/bin/python -m pip install -q -e '.[test,farm,tflite]'
echo "setup: done (activate with: . .venv/bin/activate)"
