# Mote: the top-level targets. Board-specific targets live in boards.mk, the default
# model's recipe in models.mk.
#
#   make chat        set up, build, flash the default model onto the default board, chat
#   make test        the whole test suite (what CI runs)
#   make setup       Debian packages (root or sudo) + the Python environment in .venv
#   make linux       the Linux port: firmware/build/linux/mote-linux
#   make bench       benchmarks: bench/results/*.json and plots
#   make micropython `import mote` for MicroPython, as native .mpy modules and in the
#                    unix and qemu ports (MICROPYTHON=tree; docs/micropython.md)

VENV := .venv
# Everything runs in the environment `make setup` creates (override: PYTHON=python3).
PYTHON ?= $(abspath $(VENV))/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
BOARD ?= qemu-m4
DEFAULT_MODEL := models/default.mote
FUZZ_SECONDS ?= 60
HIL_BOARDS ?= qemu-m4 qemu-m7 qemu-m33 qemu-m55 stm32f405

.PHONY: setup test test-host test-hil fuzz linux bench micropython

setup: $(VENV)/.setup-done
$(VENV)/.setup-done: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

linux: setup
	$(MAKE) -C firmware linux

# The blob-parser fuzzer; host tests, golden C-vs-reference tests and the Linux port's
# protocol tests; then the hardware-in-the-loop suite on every emulated board.
test: setup
	$(MAKE) fuzz test-host test-hil
test-host:
	$(PYTHON) -m pytest tests --ignore=tests/hil
test-hil:
	set -e; for board in $(HIL_BOARDS); do $(PYTHON) -m pytest tests/hil --board $$board; done
fuzz:
	$(MAKE) -C firmware fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

micropython: setup
	$(MAKE) -C bindings/micropython all PYTHON=$(PYTHON)

bench: setup
	$(PYTHON) bench/host.py
	$(PYTHON) bench/mcu.py

include boards.mk
include models.mk

flash model: setup
