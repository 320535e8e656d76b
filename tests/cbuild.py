"""Host C tools through firmware/Makefile, the one build description: tests and
benchmarks ask make for a target and read the result from make's build directory
(`make -C firmware print-build`), never compile the core themselves."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"


def make_args(kernels: str | None = None, sanitize: bool = False,
              arch_flags: str | None = None, build: str | None = None) -> list[str]:
    args = [f"SANITIZE={int(sanitize)}"]
    if kernels is not None:
        args.append(f"KERNELS={kernels}")
    if arch_flags is not None:
        args.append(f"ARCH_FLAGS={arch_flags}")
    if build is not None:
        args.append(f"BUILD={build}")
    return args


def build_tool(name: str, kernels: str | None = None, sanitize: bool = False,
               arch_flags: str | None = None, build: str | None = None) -> Path:
    """Build tests/c/<name>.c (mote_dump, tok_driver, test_kernels) with the core and
    return the executable. kernels None is the Makefile's default set."""
    args = make_args(kernels, sanitize, arch_flags, build)
    done = subprocess.run(["make", "-s", "-C", str(FIRMWARE), *args, "tools"], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"make tools {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    where = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), *args,
                            "print-build"], capture_output=True, text=True, check=True)
    return FIRMWARE / where.stdout.strip() / name
