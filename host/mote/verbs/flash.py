"""`mote flash --board B [MODEL]`: build the board's firmware and write a model into
its model partition. A checkpoint goes through exactly `mote convert`'s path (the same
options and report, the fit checked against the board); a .mote is written as it is
after the same fit check, or repacked for the largest context the board's RAM holds
(only its header changes). Without MODEL the partition keeps what it holds.

The images land in build/<board>/, which is the flash of an emulated board. A real
part is written with `--via METHOD` (one of its board file's [flasher] methods; the
default for a board that is not emulated is its first), firmware and model separately;
`--dry-run` prints the exact commands instead."""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.boards import flashers
from mote.boards.catalog import Board, board_names, load_board
from mote.boards.images import board_dir, build_firmware, flash_model, model_image, uf2_image
from mote.format import blob as blobfile
from mote.model import MoteError
from mote.pipeline import pack_for_board
from mote.verbs.convert import add_convert_arguments, convert_and_report


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("flash", help="build a board's firmware and write a model into its flash")
    p.add_argument("model", type=Path, nargs="?", help="checkpoint or .mote (default: keep the flashed one)")
    p.add_argument("--board", required=True, help=f"board file ({', '.join(board_names())})")
    p.add_argument("--via", help="write the real board with this method of its [flasher] "
                                 "('none': build the images only; default: none for an emulated "
                                 "board, else its first method)")
    p.add_argument("--port", help="the board's serial port (esptool)")
    p.add_argument("--drive", type=Path, help="the mounted UF2 drive (default: found by its INFO_UF2.TXT)")
    p.add_argument("--model-only", action="store_true", help="leave the firmware as it is")
    p.add_argument("--dry-run", action="store_true", help="print the commands that write the board")
    add_convert_arguments(p)
    p.set_defaults(func=run)


def default_via(board: Board) -> str:
    return "none" if board.is_qemu or not board.flash_methods else board.flash_methods[0]


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    via = args.via or default_via(board)
    if via != "none" and via not in board.flash_methods:
        known = ", ".join(board.flash_methods) or "none: it exists only emulated"
        raise MoteError(f"{board.name} is not written with {via} (its methods: {known})")
    firmware = None
    if args.model_only:
        pass
    elif board.port == "espidf":
        if via == "none":
            raise MoteError(f"{board.name}: its firmware is built by PlatformIO (--via esptool), "
                            "or pass --model-only")
        firmware = Path(f"<pio run -e {board.name}>")  # built and written by the upload step
    else:
        firmware = build_firmware(board)
        print(f"{board.name}: firmware {firmware} ({firmware.stat().st_size} bytes) at 0x{board.flash_base:08X}")
    model = None
    if args.model is not None:
        model = write_model(board, args)
    elif via == "none" and not model_image(board).is_file():
        print(f"{board.name}: model partition empty (give MODEL)")
    if via == "none":
        return 0
    images = _images(via, firmware, model)
    if images.firmware is None and images.model is None:
        raise MoteError(f"{board.name}: nothing to write (give MODEL, or drop --model-only)")
    if args.dry_run:
        for argv in flashers.commands(board, via, images, args.port, args.drive):
            print(" ".join(argv))
        return 0
    flashers.write(board, via, images, args.port, args.drive)
    print(f"{board.name}: written with {via}")
    return 0


def write_model(board: Board, args: argparse.Namespace) -> Path:
    if blobfile.is_blob(args.model):
        data, notes = pack_for_board(args.model.read_bytes(), board)
        for line in notes:
            print(f"{board.name}: {line}")
    else:
        data = convert_and_report(args.model, args, board_dir(board) / "model.mote").data
    path = flash_model(board, data)
    print(f"{board.name}: model {path} ({len(data)} bytes, arena {blobfile.load(data).arena_bytes}) "
          f"at 0x{board.model_base:08X}")
    return path


def _images(via: str, firmware: Path | None, model: Path | None) -> flashers.Images:
    """The files a method writes: the UF2 twins for UF2 methods, else the raw images."""
    if via in ("uf2", "picotool"):
        return flashers.Images(firmware and uf2_image(firmware), model and uf2_image(model))
    return flashers.Images(firmware, model)
