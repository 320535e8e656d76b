"""`mote serve --board B --tcp PORT`: run an emulated board with the images `mote flash`
wrote, its UART on 127.0.0.1:PORT (pyserial `socket://`), until interrupted. This is
how a board farm's host offers an emulated board: its labgrid exporter exports the port
as a NetworkSerialPort (docs/hil.md), and the HIL suite connects to it like any board."""

from __future__ import annotations

import argparse
import signal
import sys

from mote.boards.catalog import load_board
from mote.boards.qemu import QemuBoard
from mote.model import MoteError


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("serve", help="run an emulated board with its UART on a TCP port")
    p.add_argument("--board", required=True, help="an emulated board (its [qemu] section)")
    p.add_argument("--tcp", type=int, required=True, help="TCP port on 127.0.0.1 for the UART")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.is_qemu:
        raise MoteError(f"{board.name} is not emulated: its serial port is the real board's")
    # SIGTERM (a service manager, a test's cleanup) stops QEMU too, as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with QemuBoard(board, tcp_port=args.tcp, wait_for_client=False) as qb:
        print(f"{board.name}: {board.qemu_machine} running, UART on {qb.url}", file=sys.stderr, flush=True)
        qb.wait(None)
    return 0
