"""`mote run`: generate from one prompt on a board (the Linux port as a process, or an
emulated board), streaming the text as the board produces it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mote.boards.runners import RUNNERS, GenerateOptions, run_prompt
from mote.verbs.generate import add_sampling_arguments


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("run", help="generate from a prompt on a board")
    p.add_argument("model", type=Path, help=".mote blob")
    p.add_argument("--board", default="linux", help=f"board kind ({', '.join(sorted(RUNNERS))})")
    p.add_argument("--prompt", "-p", required=True)
    p.add_argument("-n", type=int, default=64, help="new tokens at most")
    add_sampling_arguments(p)
    p.add_argument("--system", metavar="TEXT", help="a chat model's system prompt for this turn "
                   "(\"\": none; default: the blob's)")
    p.add_argument("--threads", type=int, default=1, help="worker threads (linux)")
    p.add_argument("--ctx", type=int, help="context positions (default: the blob's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = GenerateOptions(prompt=args.prompt, n=args.n, temperature=args.temp,
                              top_p=args.top_p, top_k=args.top_k, seed=args.seed,
                              threads=args.threads, ctx=args.ctx, system=args.system)
    stats = run_prompt(args.model, args.board, options)
    print(stats.summary(), file=sys.stderr)
    note = emulated_note(args.board)
    if note:
        print(note(stats), file=sys.stderr)
    return 0


def emulated_note(board_name: str):
    """For an emulated board, a function explaining its stats; None otherwise."""
    from mote.boards.catalog import board_names, load_board
    from mote.boards.qemu import emulated_speed

    if board_name not in board_names():
        return None
    board = load_board(board_name)
    return (lambda stats: emulated_speed(board, stats)) if board.is_qemu else None
