"""Instructions per token on the emulated stand-ins of the real boards, and the tok/s
they imply at each real part's clock (an estimate), for the README's "Real boards" table.

    python bench/real_boards.py [--tokens 128]

Writes bench/results/real_boards.json. Each real board is measured where its core and
kernels run emulated: stm32f405 as itself (QEMU netduinoplus2 runs its image), pico2 on
qemu-m33 (the same Cortex-M33 flags and kernel set); esp32s3 has no emulator here. The
count is the difference method: QEMU runs with -icount shift=0 (one instruction, one
nanosecond of virtual time), the board's stats line gives the decode ticks of a 1-token
and an N+1-token greedy generation after the same prompt, and their difference over N
is the instructions of one forward pass and sampling step. The estimate assumes one
instruction a cycle (no flash wait states): an upper bound for a real part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mote.boards.catalog import load_board
from mote.boards.images import Image, build_firmware
from mote.boards.qemu import QemuBoard
from mote.console.client import MoteConsole
from mote.pipeline import ConvertOptions, convert, pack_for_board

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "bench" / "results"
PROMPT = "Once upon a time"
STAND_INS = {"stm32f405": "stm32f405", "pico2": "qemu-m33"}  # real board -> emulated board


def blobs(board) -> dict[str, bytes]:
    """The models of the table, packed for the real board (its RAM decides the context)."""
    stories = ConvertOptions(tokenizer=MODELS / "tok512.bin", quant="int8", ctx=256)
    default, _ = pack_for_board((ROOT / "models" / "default.mote").read_bytes(), board)
    return {"stories260K int8": convert(MODELS / "stories260K.bin", stories, board).data,
            "default int8": default}


def count_decode(board, blob: bytes, tokens: int, prompt: str, work: Path):
    """Instructions per generated token on an emulated board, greedy: the difference of
    a (tokens + 1)- and a 1-token run's decode ticks (-icount shift=0: one tick per
    instruction), over tokens. Returns them with the longer run's stats and the banner."""
    model = work / f"{board.name}-model.bin"
    model.write_bytes(blob)
    flash = [Image(board.flash_base, build_firmware(board)), Image(board.model_base, model)]
    with QemuBoard(board, flash=flash) as qb, MoteConsole(qb.url, timeout=1200) as console:
        console.read_banner(boot_wait=60)
        console.set("temp", 0)
        runs = {}
        for n in (1, tokens + 1):
            console.set("n", n)
            _, stats = console.ask(prompt)
            if stats.tokens != n:
                raise SystemExit(f"{board.name}: the model stopped after {stats.tokens} of {n} tokens")
            runs[n] = stats
    instructions = (runs[tokens + 1].decode_ticks - runs[1].decode_ticks) * 1e9 / board.tick_hz / tokens
    return instructions, runs[tokens + 1], console.banner


def ctx_of(banner: str) -> str:
    return dict(f.split("=", 1) for f in banner.split() if "=" in f)["ctx"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--output", type=Path, default=RESULTS / "real_boards.json")
    args = parser.parse_args()
    tmp = ROOT / "build" / "bench-real-boards"
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    for real_name, emulated_name in STAND_INS.items():
        real, emulated = load_board(real_name), load_board(emulated_name)
        for model, blob in blobs(real).items():
            instructions, _, banner = count_decode(emulated, blob, args.tokens, PROMPT, tmp)
            ctx = int(ctx_of(banner))
            rows.append({"board": real.name, "measured_on": emulated.name, "model": model, "ctx": ctx,
                         "instructions_per_token": round(instructions),
                         "clock_hz": real.clock_hz,
                         "estimated_tok_s": round(real.clock_hz / instructions, 1)})
            print(f"{real.name:10} ({emulated.name:9}) {model:17} ctx {ctx:3}: "
                  f"{instructions:12,.0f} instructions/token, about {rows[-1]['estimated_tok_s']} tok/s "
                  f"at {real.clock_hz / 1e6:g} MHz (estimate)", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"tokens": args.tokens, "prompt": PROMPT, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
