"""Counting on the emulated microcontrollers: instructions per generated token, weight
bytes read per token, RAM high-water mark, flash used, and an estimated tok/s.

    python bench/mcu.py [--boards qemu-m4,qemu-m7] [--tokens 128]

Writes bench/results/mcu.json and bench/results/mcu.png. How each figure is obtained:
- instructions per token: QEMU runs with -icount shift=0, where virtual time counts
  instructions. The firmware times generation with SysTick (hal_ticks); the
  calibration image (firmware/ports/cortex-m/calibrate.c) measures instructions per tick
  against loops of known length on each board, and the console's stats line gives the
  exact decode ticks (decode_ticks=, the prompt's prefill excluded) of the generated
  tokens.
- weight bytes per token: from the blob's tensor table; in dense mode every weight
  tensor's data and scales are read once per token (a tied classifier reads the whole
  embedding, which covers the looked-up row; an untied one adds one embedding row).
- RAM high-water mark: the arena the model needs (the runtime carves exactly that much
  of the static arena) + the deepest stack use + the rest of .data/.bss (console state,
  libc); the firmware reports stack and static RAM on /info's port line (painted
  stack, linker symbols) after the run.
- flash used: firmware image + blob.
- estimated tok/s: the board's clock_hz / instructions per token, i.e. assuming one
  instruction per cycle from zero-wait-state memory. An estimate, labelled as one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mote.format import blob as blobfile
from mote.boards.catalog import Board, load_board
from mote.console.client import MoteConsole
from mote.boards.images import board_dir, build_firmware, flash_model, images
from mote.model import MoteError
from mote.boards.qemu import QemuBoard, calibrate_clock
from mote.pipeline import ConvertOptions, convert

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "bench" / "results"
PROMPT = "Once upon a time"
CTX = 256

# llama2.c measured here the same way (the figures), for comparison.
LLAMA2C = {
    "run.c fp32": {"qemu-m7": 1_858_195, "qemu-m4": 2_012_849},
    "runq.c int8": {"qemu-m7": 3_555_648},
}

MODEL_SOURCES = {
    "stories260K": (MODELS / "stories260K.bin", MODELS / "tok512.bin"),
    "mcu-1m-silu": (MODELS / "mcu-1m-silu", None),
}

def blob_for(board: Board, model: str, quant: str) -> bytes:
    """`model` packed with `quant` for `board` (MoteError if it does not fit)."""
    source, tokenizer = MODEL_SOURCES[model]
    return convert(source, ConvertOptions(tokenizer=tokenizer, quant=quant, ctx=CTX), board).data


def elf_symbol_size(elf: Path, name: str) -> int:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    raise MoteError(f"{elf}: no symbol {name}")


def run_one(board: Board, model: str, quant: str, tokens: int, per_tick: float) -> dict:
    source, tokenizer = MODEL_SOURCES[model]
    row: dict = {"board": board.name, "model": model, "quant": quant, "ctx": CTX}
    try:
        data = convert(source, ConvertOptions(tokenizer=tokenizer, quant=quant, ctx=CTX), board).data
    except MoteError as err:
        row["fits"] = False
        row["error"] = str(err)
        return row
    row["fits"] = True
    blob = blobfile.load(data)
    flash_model(board, data)
    static_arena = elf_symbol_size(board_dir(board) / "firmware.elf", "arena")
    with QemuBoard(board, flash=images(board)) as qb, MoteConsole(qb.url, timeout=600) as console:
        console.read_banner(boot_wait=10)
        console.set("temp", 0)
        console.set("n", tokens)
        started = time.monotonic()
        text, stats = console.ask(PROMPT)
        wall = time.monotonic() - started
        info = console.info()  # after the run: the stack's high-water mark includes it
    if stats.ticks_hz != board.tick_hz:
        raise MoteError(f"{board.name}: the firmware counts {stats.ticks_hz} ticks/s, "
                        f"the board file says {board.tick_hz}")
    new_tokens = stats.tokens
    instructions = stats.decode_ticks * per_tick / new_tokens
    stack_used = int(info["stack_high_water"])
    other_static = int(info["static_ram"]) - static_arena
    row.update({
        "banner": console.banner.strip(),
        "text": text.strip(),
        "new_tokens": new_tokens,
        "end": stats.end,
        "instructions_per_token": round(instructions),
        "weight_bytes_per_token": stats.read_bytes_per_token,  # counted by the runtime
        "ram": {
            "arena": blob.arena_bytes,
            "stack_high_water": stack_used,
            "other_static": other_static,
            "high_water_total": blob.arena_bytes + stack_used + other_static,
            "budget": board.ram_size,
        },
        "flash": {"firmware": images(board)[0].path.stat().st_size, "blob": len(data),
                  "total": images(board)[0].path.stat().st_size + len(data)},
        "estimated_tok_s": round(board.clock_hz / instructions, 1),
        "estimate_basis": f"{board.clock_hz / 1e6:g} MHz / instructions per token (1 IPC assumed)",
        "qemu_wall_s": round(wall, 2),
    })
    return row


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["runs"] if r.get("fits")]
    labels = [f"{r['board']}\n{r['model']}\n{r['quant']}" for r in rows]
    values = [r["instructions_per_token"] / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.9), 5))
    ax.bar(range(len(rows)), values, color=["#4c72b0" if r["quant"] == "int8" else "#dd8452" for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    lines = sorted((count, f"llama2.c {name} ({board})")
                   for name, per_board in LLAMA2C.items() for board, count in per_board.items())
    for i, (count, label) in enumerate(lines):  # alternate sides so close lines stay legible
        ax.axhline(count / 1e6, linestyle="--", linewidth=0.8, color="gray")
        ax.text(len(rows) - 0.5, count / 1e6, label, fontsize=7, ha="right",
                va="top" if i % 2 == 0 else "bottom")
    ax.set_ylabel("million instructions per generated token")
    ax.set_title(f"Mote on emulated MCUs (QEMU -icount), {results['tokens']} tokens after "
                 f"\"{PROMPT}\", context {CTX}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="qemu-m4,qemu-m7,qemu-m55")
    parser.add_argument("--models", default="stories260K,mcu-1m-silu")
    parser.add_argument("--quants", default="int8,int4")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--output", type=Path, default=RESULTS / "mcu.json")
    args = parser.parse_args()
    results: dict = {"prompt": PROMPT, "tokens": args.tokens, "ctx": CTX, "calibration": {},
                     "runs": [], "llama2c_reference": LLAMA2C}
    for name in args.boards.split(","):
        board = load_board(name)
        build_firmware(board)
        cal = calibrate_clock(board)
        results["calibration"][name] = cal
        print(f"{name}: {cal['instructions_per_tick']:.4f} instructions per tick "
              f"(expected {cal['expected_instructions_per_tick']:.4f})", flush=True)
        if not cal["agrees"]:
            raise MoteError(f"{name}: clock calibration disagrees with the board file")
        for model in args.models.split(","):
            for quant in args.quants.split(","):
                row = run_one(board, model, quant, args.tokens, cal["instructions_per_tick"])
                results["runs"].append(row)
                if row["fits"]:
                    print(f"  {model} {quant}: {row['instructions_per_token']:,} instructions/token, "
                          f"{row['weight_bytes_per_token']:,} weight B/token, "
                          f"RAM {row['ram']['high_water_total']:,} B, flash {row['flash']['total']:,} B, "
                          f"~{row['estimated_tok_s']} tok/s (estimate)", flush=True)
                else:
                    print(f"  {model} {quant}: {row['error']}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.output.with_suffix(".png"))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MoteError as err:
        print(f"bench/mcu.py: error: {err}", file=sys.stderr)
        sys.exit(2)
