"""Build a board's flash contents: the firmware partition and the model partition.

As on a real part, the two are written separately: `build_firmware` compiles the
firmware for a board file (firmware/ports/<port>/Makefile) and `flash_model` packs a
model for that board and writes it into the model partition, so a new model needs no
firmware rebuild. For QEMU boards the "flash" is one raw image per partition under
build/<board>/, loaded at the partition's address (`images`).
"""

from __future__ import annotations

import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from mote.format import blob as blobfile
from mote.boards import Board, check_fit
from mote.model import MoteError

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / "build"


@dataclass(frozen=True)
class Image:
    """A raw image written at `address` (a partition of the board's flash)."""

    address: int
    path: Path


def board_dir(board: Board) -> Path:
    return BUILD_DIR / board.name


def firmware_image(board: Board) -> Path:
    return board_dir(board) / "firmware.bin"


def model_image(board: Board) -> Path:
    return board_dir(board) / "model.bin"


def build_firmware(board: Board, target: str = "firmware", quiet: bool = True) -> Path:
    """Compile the firmware (or another target of the port's Makefile) for `board`."""
    port_dir = ROOT / "firmware" / "ports" / board.port
    cmd = ["make", "-C", str(port_dir), f"BOARD={board.name}", target]
    if quiet:
        cmd.insert(1, "-s")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise MoteError(f"firmware build for {board.name} failed:\n" + "\n".join(tail))
    if target == "firmware":
        image = firmware_image(board)
        if image.stat().st_size > board.firmware_bytes:
            raise MoteError(f"{image}: larger than the firmware partition ({board.firmware_bytes})")
        return image
    return board_dir(board) / f"{target}.elf"


def pack_for_board(board: Board, source: Path, quant: str = "int8", ctx: int | None = None,
                   group_size: int = 32, tokenizer: Path | None = None) -> bytes:
    """Import `source` (any format `mote convert` reads, or a ready .mote) and return a
    blob that fits `board`, or raise MoteError saying by how much it does not."""
    source = Path(source)
    if blobfile.is_blob(source):
        data = source.read_bytes()
    else:
        from mote.importers import load_model

        data = blobfile.pack(load_model(source, tokenizer), quant, group_size, ctx)
    check_fit(board, len(data), blobfile.load(data).arena_bytes)
    return data


def flash_model(board: Board, data: bytes, check: bool = True) -> Path:
    """Write blob bytes into the board's model partition image. With check=False the
    bytes are written as they are (a test flashing a corrupted model uses that)."""
    if check:
        check_fit(board, len(data), blobfile.load(data).arena_bytes)
    elif len(data) > board.model_size:
        raise MoteError(f"{len(data)} bytes do not fit the model partition ({board.model_size})")
    path = model_image(board)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def erase_model(board: Board) -> None:
    """Leave the model partition empty (the firmware must say it has no model)."""
    model_image(board).unlink(missing_ok=True)


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


def main(argv: list[str] | None = None) -> int:
    """`python -m mote.flash BOARD [MODEL] [--quant Q] [--ctx N] [--tokenizer T]`:
    what `make flash` runs."""
    import argparse
    import sys

    from mote.boards import load_board

    parser = argparse.ArgumentParser(prog="python -m mote.flash", description=main.__doc__)
    parser.add_argument("board")
    parser.add_argument("model", nargs="?", type=Path, help="checkpoint or .mote (default: keep)")
    parser.add_argument("--quant", default="int8")
    parser.add_argument("--ctx", type=int)
    parser.add_argument("--tokenizer", type=Path)
    args = parser.parse_args(argv)
    try:
        board = load_board(args.board)
        firmware = build_firmware(board)
        print(f"{board.name}: firmware {firmware} ({firmware.stat().st_size} bytes) "
              f"at 0x{board.flash_base:08X}")
        if args.model is not None:
            data = pack_for_board(board, args.model, args.quant, args.ctx, tokenizer=args.tokenizer)
            path = flash_model(board, data)
            arena = blobfile.load(data).arena_bytes
            print(f"{board.name}: model {path} ({len(data)} bytes, arena {arena}) "
                  f"at 0x{board.model_base:08X}")
        elif not model_image(board).is_file():
            print(f"{board.name}: model partition empty (pass MODEL=...)")
    except MoteError as err:
        print(f"mote flash: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
