"""Where a generated token's instructions go on an emulated board, function by function.

QEMU logs every translation block it translates (-d in_asm: its instructions) and
every one it executes (-d exec, with nochain so that none is skipped); each executed
block's instructions are counted to the function that holds it (the firmware ELF's
symbols), and a block QEMU rewound part-way (an I/O access under -icount) only up to
where it stopped. Per generated token by the difference method: a run of N+1 tokens
minus a run of 1, divided by N, exactly as bench/mcu.py counts the whole token.
Kernels are separate functions (mote_k_* are calls into kernels_<set>.c), so their
counts are exact; what model.c inlines is counted to model.c's functions.

    python bench/mcu_profile.py --board qemu-m4 [--model stories260K] [--quant int8] [--tokens 16]
    python bench/mcu_profile.py --board qemu-m7 --blob sparse.mote [--tokens 8]
"""

from __future__ import annotations

import argparse
import bisect
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from mote.boards.catalog import Board, load_board
from mote.boards.images import build_dir, build_firmware, flash_model, images
from mote.boards.qemu import Image, QemuBoard
from mote.console.client import MoteConsole
from mote.model import MoteError

PROMPT = "Once upon a time"


class _LoggingQemu(QemuBoard):
    """A QemuBoard whose execution log goes to `log_path` (a FIFO read while it runs)."""

    def __init__(self, board: Board, firmware: Path, log_path: str):
        flash = [Image(board.flash_base, firmware)] + images(board)[1:]
        super().__init__(board, flash=flash)
        self.log_path = log_path

    def command(self) -> list[str]:
        return super().command() + ["-d", "in_asm,exec,nochain", "-D", self.log_path]


def count_log(lines, start: int, stop: int) -> Counter:
    """Instructions executed per translation-block start address, from QEMU's log,
    between the first execution of address `start` and the next of `stop`. A
    block is known by its host code address (blocks cut short for an I/O access under
    -icount share their start with a full one); a translation is logged (IN:) just
    before its first execution, and a later one at the same host address replaces it."""
    blocks: dict[str, list[int]] = {}  # host code address -> the block's instructions
    counts: Counter = Counter()
    translated: list[int] = []  # the block being read from an IN: listing
    reading = False
    last: list[int] = []  # instructions of the last executed block
    last_pc = 0
    counting = False
    continuation = False
    for line in lines:
        if reading:
            if line.startswith("0x"):
                # QEMU's disassembler prints a 32-bit Thumb instruction it does not know
                # (the Armv8.1-M loop instructions: DLS, LE, ...) as two 16-bit lines: the
                # second is no instruction
                if not continuation:
                    translated.append(int(line[2:line.index(":")], 16))
                fields = line.split(None, 3)
                continuation = (not continuation and len(fields) > 2 and fields[2] == ".byte"
                                and int(fields[1], 16) >> 11 in (0x1D, 0x1E, 0x1F))
                continue
            reading = False
            continuation = False
        if line.startswith("Trace "):
            # Trace 0: 0xHOST [cs_base/pc/flags/cflags] symbol
            host = line.split(" ", 3)[2]
            if translated:
                blocks[host], translated = translated, []
            last = blocks[host]
            last_pc = last[0]
            if last_pc == start:
                counting = True
            elif last_pc == stop:
                counting = False
            if counting:
                counts[last_pc] += len(last)
        elif line.startswith("IN:"):
            translated, reading = [], True
        elif line.startswith("cpu_io_recompile: rewound execution of TB to "):
            rewound = int(line.rsplit(" ", 1)[1], 16)
            if counting:
                counts[last_pc] -= sum(1 for a in last if a >= rewound)
    return counts


def functions(elf: Path) -> tuple[list[int], list[str]]:
    """Start addresses (sorted) and names of the ELF's functions."""
    out = subprocess.run(["arm-none-eabi-nm", "-n", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    starts, names = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            starts.append(int(parts[0], 16) & ~1)
            names.append(parts[2])
    return starts, names


def by_function(counts: Counter, starts: list[int], names: list[str]) -> Counter:
    result: Counter = Counter()
    for pc, n in counts.items():
        i = bisect.bisect_right(starts, pc) - 1
        result[names[i] if i >= 0 else "?"] += n
    return result


def run_logged(board: Board, kernels: str | None, tokens: int) -> tuple[Counter, int]:
    """Boot the flashed board (its firmware built with `kernels`) with the log on and
    generate `tokens` greedy tokens after PROMPT. Returns the instructions per function
    from the generation's start (mote_generate) to its end (the decoder's final flush),
    which keeps out the console's idle polling (its length depends on the host's
    timing), and the stats' decode ticks."""
    elf = build_dir(board, kernels) / "firmware.elf"
    starts, names = functions(elf)
    window = [starts[names.index(n)] for n in ("mote_generate", "mote_tok_decode_flush")]
    with tempfile.TemporaryDirectory(prefix="mote-profile-") as tmp:
        fifo = os.path.join(tmp, "log")
        os.mkfifo(fifo)
        result: dict = {}

        def read() -> None:
            with open(fifo, encoding="utf-8", errors="replace") as log:
                result["counts"] = count_log(log, *window)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            firmware = build_dir(board, kernels) / "firmware.bin"
            with _LoggingQemu(board, firmware, fifo) as qb, MoteConsole(qb.url, timeout=1200) as console:
                console.read_banner(boot_wait=60)
                console.set("temp", 0)
                console.set("n", tokens)
                stats = console.ask(PROMPT)[1]
        finally:
            reader.join(600)
        if stats.tokens != tokens:
            raise MoteError(f"{board.name}: generated {stats.tokens} tokens, not {tokens}")
    return by_function(result["counts"], starts, names), stats.decode_ticks


def profile(board: Board, kernels: str | None, tokens: int) -> dict:
    """Instructions per generated token by function (difference of a tokens+1 and a
    1-token run), for the firmware and model already built and flashed for `board`."""
    one, ticks_one = run_logged(board, kernels, 1)
    many, ticks_many = run_logged(board, kernels, tokens + 1)
    per_token = {name: (many[name] - one[name]) / tokens for name in many}
    total = sum(per_token.values())
    from_ticks = (ticks_many - ticks_one) * 1e9 / board.tick_hz / tokens
    return {"tokens": tokens, "total": round(total),
            "total_from_clock": round(from_ticks),  # the console's clock, as bench/mcu.py
            "functions": {k: round(v) for k, v in sorted(per_token.items(), key=lambda kv: -kv[1])
                          if round(v) != 0}}


def main() -> int:
    from mcu import blob_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="qemu-m4")
    parser.add_argument("--model", default="stories260K")
    parser.add_argument("--quant", default="int8")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--kernels", default=None, help="kernel set (default: the board file's)")
    parser.add_argument("--blob", type=Path, default=None,
                        help="profile this .mote file (e.g. a sparse one) instead of --model/--quant")
    args = parser.parse_args()
    board = load_board(args.board)
    build_firmware(board, kernels=args.kernels)
    try:
        blob = args.blob.read_bytes() if args.blob else blob_for(board, args.model, args.quant)
    except OSError as err:
        raise MoteError(f"cannot read {args.blob}: {err.strerror}") from None
    flash_model(board, blob)
    result = profile(board, args.kernels, args.tokens)
    what = args.blob.name if args.blob else f"{args.model} {args.quant}"
    print(f"{board.name} {what}: {result['total']:,} instructions/token "
          f"({result['total_from_clock']:,} by the clock)")
    for name, n in result["functions"].items():
        print(f"  {n:>10,}  {100 * n / result['total']:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MoteError as err:
        print(f"bench/mcu_profile.py: error: {err}", file=sys.stderr)
        sys.exit(2)
