"""`mote flash --board B [MODEL]`: build the board's firmware and write a model into
its model partition. A checkpoint goes through exactly `mote convert`'s path (the same
options and report, the fit checked against the board); a .mote is written as it is,
after the same fit check. Without MODEL the partition keeps what it holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.boards.catalog import board_names, load_board
from mote.boards.images import board_dir, build_firmware, flash_model, model_image
from mote.format import blob as blobfile
from mote.verbs.convert import add_convert_arguments, convert_and_report


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("flash", help="build a board's firmware and write a model into its flash")
    p.add_argument("model", type=Path, nargs="?", help="checkpoint or .mote (default: keep the flashed one)")
    p.add_argument("--board", required=True, help=f"board file ({', '.join(board_names())})")
    add_convert_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    firmware = build_firmware(board)
    print(f"{board.name}: firmware {firmware} ({firmware.stat().st_size} bytes) at 0x{board.flash_base:08X}")
    if args.model is None:
        if not model_image(board).is_file():
            print(f"{board.name}: model partition empty (give MODEL)")
        return 0
    if blobfile.is_blob(args.model):
        data = args.model.read_bytes()
    else:
        data = convert_and_report(args.model, args, board_dir(board) / "model.mote").data
    path = flash_model(board, data)
    print(f"{board.name}: model {path} ({len(data)} bytes, arena {blobfile.load(data).arena_bytes}) "
          f"at 0x{board.model_base:08X}")
    return 0
