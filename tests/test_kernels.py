"""Every kernel set equals the reference kernels bit for bit (tests/c/test_kernels.c,
one program on every target): on the host for each x86 instruction-set variant the
CPU has and for the plain-C Cortex-M set (cm: cores without the DSP extension), and on
every emulated board for the set its board file names and every set that one builds on
(firmware/ports/<port> `kernel-test` with KERNELS=<set>, run under QEMU as the board
file says): dsp on the M4, M7, M33 and the STM32F405, mve and dsp on the M55."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cbuild import build_tool
from mote.boards.catalog import all_boards, kernel_set_chain
from mote.boards.images import build_firmware
from mote.boards.qemu import Image, QemuBoard

PASS = re.compile(r"^MOTE-KERNELS-PASS set=(\S+) checks=(\d+)$", re.MULTILINE)

# (name, compiler flags, /proc/cpuinfo flags the variant needs at run time)
X86_VARIANTS = [
    ("avx2", "-mavx2 -mf16c", {"avx2", "f16c"}),
    ("avxvnni", "-mavx2 -mf16c -mavxvnni", {"avx2", "f16c", "avx_vnni"}),
    ("avx512vnni", "-mavx2 -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni",
     {"avx2", "f16c", "avx512bw", "avx512vl", "avx512_vnni"}),
]
EMULATED = [(b, k) for b in all_boards() if b.is_qemu for k in kernel_set_chain(b.kernels)
            if k != "ref"]


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def check_output(text: str, kernels: str) -> None:
    found = PASS.search(text)
    assert found, text[-3000:]
    assert found.group(1) == kernels and int(found.group(2)) > 100000, found.group(0)


def run_host(kernels: str, arch_flags: str | None, build: str) -> str:
    exe = build_tool("test_kernels", kernels, arch_flags=arch_flags, build=build)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 kernels")
@pytest.mark.parametrize("name,flags,needs", X86_VARIANTS, ids=[v[0] for v in X86_VARIANTS])
def test_x86_kernels_match_reference(name: str, flags: str, needs: set[str]):
    missing = needs - cpu_flags()
    if missing:
        pytest.skip(f"CPU lacks {', '.join(sorted(missing))}")
    check_output(run_host("x86", flags, f"build/kernels-x86-{name}"), "x86")


def test_cortex_m_plain_c_kernels_match_reference_on_the_host():
    """The cm set is plain C: the same program checks it here, quickly."""
    check_output(run_host("cm", "", "build/kernels-cm"), "cm")


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or
                    shutil.which("qemu-system-arm") is None, reason="needs the Arm toolchain and QEMU")
@pytest.mark.parametrize("board,kernels", EMULATED, ids=[f"{b.name}-{k}" for b, k in EMULATED])
def test_board_kernels_match_reference(board, kernels):
    elf = build_firmware(board, "kernel-test", kernels=kernels)
    binary = elf.with_suffix(".bin")
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(binary)], check=True)
    import serial

    with QemuBoard(board, flash=[Image(board.flash_base, binary)]) as qb:
        port = serial.serial_for_url(qb.url, timeout=300)
        line = port.readline().decode(errors="replace")
        status = qb.wait(60)
        port.close()
    assert status == 0, line
    check_output(line.strip(), kernels)
