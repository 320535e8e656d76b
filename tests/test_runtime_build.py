"""firmware/Makefile: the core builds warning-free, uses no heap, and the fuzz
harness builds and runs (briefly; CI runs `make -C firmware fuzz` for longer)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(FIRMWARE), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("kernels", ["ref", "x86"])
def test_core_builds_without_heap(tmp_path, kernels):
    run = make("core", f"KERNELS={kernels}", f"BUILD={tmp_path}")
    assert run.returncode == 0, run.stderr
    objects = sorted((tmp_path / "core").glob("*.o"))
    assert {p.stem for p in objects} >= {"blob", "model", "kernels_ref", "sample"}
    undefined = subprocess.run(["nm", "-u", *map(str, objects)], capture_output=True, text=True,
                               check=True).stdout.split()
    assert not {"malloc", "calloc", "realloc", "free"} & set(undefined)


def test_heap_check_catches_malloc(tmp_path):
    """check-no-malloc fails on a core object that calls malloc."""
    core = tmp_path / "core"
    core.mkdir()
    (core / "leaky.o").write_bytes(b"")  # replaced below by a real object
    src = tmp_path / "leaky.c"
    src.write_text("#include <stdlib.h>\nvoid *leaky(void);\nvoid *leaky(void) { return malloc(4); }\n")
    subprocess.run(["cc", "-c", str(src), "-o", str(core / "leaky.o")], check=True)
    bad = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "check-no-malloc", f"BUILD={tmp_path}",
                          f"CORE_OBJ={core / 'leaky.o'}"], capture_output=True, text=True)
    assert bad.returncode != 0 and "heap" in bad.stderr


@pytest.mark.skipif(shutil.which("clang-14") is None, reason="needs clang-14 (libFuzzer)")
def test_fuzzer_runs(tmp_path):
    run = make("fuzz", "FUZZ_SECONDS=5")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
