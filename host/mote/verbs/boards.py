"""`mote boards [NAME] [--make-vars]`: the board files, one line each; one board's
Make variables and C defines (what the firmware build includes)."""

from __future__ import annotations

import argparse
import sys

from mote.boards.catalog import all_boards, load_board, make_vars


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("boards", help="list the board files, or one board's build variables")
    p.add_argument("name", nargs="?", help="one board")
    p.add_argument("--make-vars", action="store_true", help="print the board's Make variables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.make_vars:
        if not args.name:
            raise SystemExit("mote boards: --make-vars needs a board NAME")
        sys.stdout.write(make_vars(load_board(args.name)))
        return 0
    for board in [load_board(args.name)] if args.name else all_boards():
        print(f"{board.name:10} {board.description}")
    return 0
