"""`mote chat`: an interactive console on a board: the Linux port started on a pty
(--board linux MODEL), an emulated board booted with MODEL or with what `mote flash`
wrote (--board qemu-m4), or any serial URL (--port /dev/ttyACM0, socket://host:port)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mote.boards.catalog import load_board
from mote.boards.qemu import QemuBoard, emulated_speed
from mote.console.client import MoteConsole, chat
from mote.model import MoteError
from mote.boards.runners import RUNNERS, runner_for
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
    p.add_argument("--serial", choices=["socket", "pty"], default="socket",
                   help="emulated boards without MODEL: the UART on a TCP socket or a pty")
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
        if args.board and args.board != "linux":
            return chat_flashed(args)
        raise MoteError("give MODEL (with --board, default linux) or --port URL")
    with runner_for(args.board or "linux").console(args.model, args.threads, args.ctx) as board:
        return chat(board, color=args.color, note=emulated_note(args.board or "linux"))


def chat_flashed(args: argparse.Namespace) -> int:
    """Boot an emulated board with the images `mote flash` wrote and chat with it."""
    board = load_board(args.board)
    if not board.is_qemu:
        raise MoteError(f"{board.name} is not emulated: flash it and use --port")
    with QemuBoard(board, serial=args.serial) as qb:
        print(f"{board.name}: {board.qemu_machine} running, UART on {qb.url}", file=sys.stderr)
        with MoteConsole(qb.url) as client:
            return chat(client, color=args.color, note=lambda stats: emulated_speed(board, stats))
