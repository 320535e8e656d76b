"""Build a board's flash contents: the firmware partition and the model partition.

As on a real part, the two are written separately: `build_firmware` compiles the
firmware for a board file (firmware/ports/<port>/Makefile) and `flash_model` writes a
packed model into the model partition, so a new model needs no firmware rebuild. The
"flash" is one raw image per partition under build/<board>/, which QEMU loads at the
partition's address (`images`) and the board's flash tool writes to a real part
(mote.boards.flashers); a board written through UF2 also gets firmware.uf2 and
model.uf2 beside them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from mote.format import blob as blobfile
from mote.boards.catalog import CORTEX_M_PORTS, ROOT, Board, check_fit
from mote.boards.uf2 import to_uf2
from mote.fileio import write_atomically
from mote.model import MoteError

BUILD_DIR = ROOT / "build"
# the compiler of the Cortex-M ports, and the Debian packages that bring it and its libc
ARM_GCC = "arm-none-eabi-gcc"
ARM_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"


@dataclass(frozen=True)
class Image:
    """A raw image written at `address` (a partition of the board's flash)."""

    address: int
    path: Path


def board_dir(board: Board) -> Path:
    return BUILD_DIR / board.name


def build_dir(board: Board, kernels: str | None = None) -> Path:
    """Where the port's Makefile builds for `board` with a kernel set (None: the board
    file's); the model partition's image stays in board_dir."""
    if kernels is None or kernels == board.kernels:
        return board_dir(board)
    return board_dir(board) / f"kernels-{kernels}"


def firmware_image(board: Board, kernels: str | None = None) -> Path:
    return build_dir(board, kernels) / "firmware.bin"


def model_image(board: Board) -> Path:
    return board_dir(board) / "model.bin"


def uf2_image(image: Path) -> Path:
    return image.with_suffix(".uf2")


def _write_uf2(board: Board, image: Path, address: int, family_key: str) -> None:
    """The UF2 twin of a raw partition image, for boards written through UF2."""
    if board.flasher and family_key in board.flasher:
        write_atomically(uf2_image(image), to_uf2(image.read_bytes(), address, board.flasher[family_key]))


def build_firmware(board: Board, target: str = "firmware", quiet: bool = True,
                   kernels: str | None = None) -> Path:
    """Compile the firmware (or another target of the port's Makefile) for `board`,
    with the board file's kernel set or `kernels`."""
    if board.port == "espidf":
        raise MoteError(f"{board.name} is built by PlatformIO with ESP-IDF, not here: "
                        f"pio run -e {board.name} (mote flash --board {board.name} runs it)")
    if board.port in CORTEX_M_PORTS and shutil.which(ARM_GCC) is None:
        raise MoteError(f"{ARM_GCC} not found, needed to build {board.name} (apt-get install {ARM_PACKAGES})")
    port_dir = ROOT / "firmware" / "ports" / board.port
    # the build runs host code (the board's Make variables): with this interpreter, so
    # that it works from any venv, activated or not
    cmd = ["make", "-C", str(port_dir), f"BOARD={board.name}", f"PYTHON={sys.executable}", target]
    if kernels is not None:
        cmd.append(f"KERNELS={kernels}")
    if quiet:
        cmd.insert(1, "-s")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise MoteError(f"firmware build for {board.name} failed:\n" + "\n".join(tail))
    if target == "firmware":
        image = firmware_image(board, kernels)
        if image.stat().st_size > board.firmware_bytes:
            raise MoteError(f"{image}: larger than the firmware partition ({board.firmware_bytes})")
        _write_uf2(board, image, board.flash_base, "uf2_family")
        return image
    return build_dir(board, kernels) / f"{target}.elf"



def flash_model(board: Board, data: bytes, check: bool = True) -> Path:
    """Write blob bytes into the board's model partition image. With check=False the
    bytes are written as they are (a test flashing a corrupted model uses that)."""
    if check:
        check_fit(board, len(data), blobfile.load(data).arena_bytes)
    elif len(data) > board.model_size:
        raise MoteError(f"{len(data)} bytes do not fit the model partition ({board.model_size})")
    path = model_image(board)
    write_atomically(path, data)
    _write_uf2(board, path, board.model_base, "uf2_model_family")
    return path



def corrupt(data: bytes) -> bytes:
    """The blob with one byte of its tensor data flipped: header intact, CRC wrong."""
    middle = len(data) // 2
    bad = bytearray(data)
    bad[middle] ^= 0xFF
    assert zlib.crc32(bad[16:]) != zlib.crc32(data[16:])
    return bytes(bad)


def images(board: Board) -> list[Image]:
    """What is in the board's flash: the firmware, and the model if one was flashed."""
    firmware = firmware_image(board)
    if not firmware.is_file():
        raise MoteError(f"no firmware built for {board.name} (run: make flash BOARD={board.name})")
    found = [Image(board.flash_base, firmware)]
    if model_image(board).is_file():
        found.append(Image(board.model_base, model_image(board)))
    return found
