"""`mote chat`: an interactive console on a board: the Linux port started on a pty
(--board linux MODEL), or any serial URL (--port /dev/ttyACM0, socket://host:port)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.console import MoteConsole, chat
from mote.model import MoteError
from mote.run import RUNNERS, runner_for
from mote.verbs.run import emulated_note


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("chat", help="interactive console on a board or serial port")
    p.add_argument("model", type=Path, nargs="?", help=".mote blob to start the board with")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--board", help=f"start a board ({', '.join(sorted(RUNNERS))})")
    where.add_argument("--port", help="connect to a running board: device path or pyserial URL")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (--port)")
    p.add_argument("--threads", type=int, default=1, help="worker threads (linux)")
    p.add_argument("--ctx", type=int, help="context positions (default: the blob's)")
    p.add_argument("--color", action=argparse.BooleanOptionalAction, default=None,
                   help="colour output (default: when writing to a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.port:
        if args.model is not None:
            raise MoteError("--port talks to a board that already runs its model; drop MODEL")
        with MoteConsole(args.port, baudrate=args.baud) as board:
            return chat(board, color=args.color)
    if args.model is None:
        raise MoteError("give MODEL (with --board, default linux) or --port URL")
    with runner_for(args.board or "linux").console(args.model, args.threads, args.ctx) as board:
        return chat(board, color=args.color, note=emulated_note(args.board or "linux"))
