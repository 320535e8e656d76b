"""The x86 kernel set equals the reference kernels bit for bit (tests/c/test_kernels.c),
built once per instruction-set variant the kernels choose between at compile time."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "firmware" / "core"

# (name, compiler flags, /proc/cpuinfo flags the variant needs at run time)
VARIANTS = [
    ("avx2", ["-mavx2", "-mf16c"], {"avx2", "f16c"}),
    ("avxvnni", ["-mavx2", "-mf16c", "-mavxvnni"], {"avx2", "f16c", "avx_vnni"}),
    ("avx512vnni", ["-mavx2", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"],
     {"avx2", "f16c", "avx512bw", "avx512vl", "avx512_vnni"}),
]


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 kernels")
@pytest.mark.parametrize("name,flags,needs", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_x86_kernels_match_reference(tmp_path: Path, name: str, flags: list[str], needs: set[str]):
    missing = needs - cpu_flags()
    if missing:
        pytest.skip(f"CPU lacks {', '.join(sorted(missing))}")
    cc = shutil.which("gcc") or shutil.which("cc")
    exe = tmp_path / f"test_kernels_{name}"
    subprocess.run(
        [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
         "-fno-math-errno", *flags, "-DMOTE_KERNELS_X86", f"-I{CORE}",
         str(CORE / "kernels_ref.c"), str(CORE / "kernels_x86.c"),
         str(ROOT / "tests" / "c" / "test_kernels.c"), "-o", str(exe), "-lm"],
        check=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_kernels: PASS" in run.stdout
