"""Counting on the emulated microcontrollers, the reference kernels against each board's
optimized set: instructions per generated token, instructions per weight
multiply-add of the matvec alone, weight bytes read per token, RAM high-water mark,
flash used, and an estimated tok/s.

    python bench/mcu.py [--boards qemu-m4,qemu-m7] [--models stories260K] [--quants int8]
                        [--tokens 128] [--profile]
    python bench/mcu.py --replot     redraw bench/results/mcu.png from its JSON

Writes bench/results/mcu.json and bench/results/mcu.png. How each figure is obtained:
- instructions per token: QEMU runs with -icount shift=0, where virtual time counts
  instructions, and the firmware times generation with SysTick (hal_ticks; the
  calibration image, firmware/ports/cortex-m/calibrate.c, checks instructions per tick on
  each board against loops of known length). One boot generates 1 token and then
  N+1 tokens greedily after PROMPT (each prompt starts from an empty context); the
  difference of the two runs' decode ticks (decode_ticks= of the stats line: the
  prompt's prefill excluded) over the difference of their tokens is the cost of one
  forward pass plus one sampling and decoding step, at the positions the N tokens
  take.
- instructions per weight multiply-add of the matvec: bench/mcu_profile.py counts the
  instructions of the matvec functions (MATVEC) per token from QEMU's execution log (8
  tokens: a matvec does not depend on the position), over the token's multiply-adds
  of dense matrices (the blob's tensor table).
- weight bytes per token: counted by the runtime (read_bytes_per_token= of the stats).
- RAM high-water mark: the arena the runtime carves (what the model needs, plus the
  RoPE table of every position and the activations of the prefill batch /info
  reports: the static arena's spare room) + the
  deepest stack use + the rest of .data/.bss (console state, libc), from /info's port
  line after the run.
- flash used: firmware image + blob.
- estimated tok/s: the board's clock_hz / instructions per token, i.e. one instruction
  per cycle from zero-wait-state memory. An estimate, labelled as one.
- with --profile, the instructions per token of every function for stories260K int8
  with each board's optimized set (bench/mcu_profile.py, N tokens).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from mcu_profile import profile

from mote.boards.catalog import Board, load_board
from mote.boards.images import build_dir, build_firmware, flash_model, images
from mote.boards.qemu import Image, QemuBoard, calibrate_clock
from mote.console.client import MoteConsole
from mote.format import blob as blobfile
from mote.model import MoteError
from mote.pipeline import ConvertOptions, convert

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "bench" / "results"
PROMPT = "Once upon a time"
CTX = 256

# llama2.c's run.c (fp32), compiled -O3 for the same cores and counted the same way
# (difference of a 129- and a 1-token run on stories260K): the figures.
LLAMA2C_FP32 = {"qemu-m4": 2_021_574, "qemu-m7": 1_865_325}

# a checkpoint and its tokenizer, or a packed blob (the default model is kept only as
# its int8 blob: no float checkpoint to requantize)
MODEL_SOURCES = {
    "stories260K": (MODELS / "stories260K.bin", MODELS / "tok512.bin"),
    "mcu-1m-silu": (MODELS / "mcu-1m-silu", None),
    "default": (ROOT / "models" / "default.mote", None),
}

# the functions of the matvec (mote_k_matvec and what it calls, where not inlined) in
# each set: kernels_ref.c, kernels_cm.c, kernels_dsp.c, kernels_mve.c
MATVEC = re.compile(r"^(mote_(ref|cm|dsp|mve)_matvec|(whole_blocks|blocks32|other_groups|block|dot[24]"
                    r"|prepare)_q[48]|groups_c|group_sums_q[48]|(matvec|dot4?)_q4a|mote_ref_act_sum)$")


def blob_for(board: Board, model: str, quant: str) -> bytes:
    """`model` packed with `quant` for `board` (MoteError if it does not fit or exist)."""
    source, tokenizer = MODEL_SOURCES[model]
    if source.suffix == ".mote":
        data = source.read_bytes()
        dtypes = {t.dtype for name, t in blobfile.load(data).tensors.items() if "layers." in name} - {"f32"}
        if dtypes != {"q8" if quant == "int8" else "q4"}:
            raise MoteError(f"{source.name} is kept only as {'/'.join(sorted(dtypes))}, not {quant} "
                            f"(no float checkpoint to requantize)")
        flash_model(board, data)  # checks the fit
        return data
    return convert(source, ConvertOptions(tokenizer=tokenizer, quant=quant, ctx=CTX), board).data


def elf_symbol_size(elf: Path, name: str) -> int:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    raise MoteError(f"{elf}: no symbol {name}")


def dense_macs(blob: blobfile.Blob) -> int:
    """Multiply-adds per token of the matvec: every q8/q4/q4a matrix once (a tied
    classifier is the embedding)."""
    kinds = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
    t = blob.tensors
    total = sum(x.rows * x.cols for name, x in t.items()
                if name.rsplit(".", 1)[-1] in kinds and x.dtype in ("q8", "q4", "q4a"))
    classifier = t.get("classifier", t["tok_embedding"])
    return total + (classifier.rows * classifier.cols if classifier.dtype in ("q8", "q4", "q4a") else 0)


def generate(console: MoteConsole, tokens: int):
    console.set("temp", 0)
    console.set("n", tokens)
    return console.ask(PROMPT)


def run_one(board: Board, kernels: str, model: str, quant: str, tokens: int, per_tick: float) -> dict:
    row: dict = {"board": board.name, "kernels": kernels, "model": model, "quant": quant, "ctx": CTX}
    try:
        data = blob_for(board, model, quant)
    except MoteError as err:
        row.update({"fits": False, "error": str(err)})
        return row
    row["fits"] = True
    blob = blobfile.load(data)
    model_image = flash_model(board, data)
    firmware = build_firmware(board, kernels=kernels)
    static_arena = elf_symbol_size(build_dir(board, kernels) / "firmware.elf", "arena")
    flash = [Image(board.flash_base, firmware), Image(board.model_base, model_image)]
    started = time.monotonic()
    with QemuBoard(board, flash=flash) as qb, MoteConsole(qb.url, timeout=1200) as console:
        console.read_banner(boot_wait=30)
        _, one = generate(console, 1)
        text, many = generate(console, tokens + 1)
        info = console.info()  # after the runs: the stack's high-water mark includes them
    wall = time.monotonic() - started
    if many.ticks_hz != board.tick_hz:
        raise MoteError(f"{board.name}: the firmware counts {many.ticks_hz} ticks/s, "
                        f"the board file says {board.tick_hz}")
    steps = many.tokens - one.tokens
    if steps < 1:
        raise MoteError(f"{board.name} {model} {quant}: generation ended after {many.tokens} tokens")
    instructions = (many.decode_ticks - one.decode_ticks) * per_tick / steps
    stack_used = int(info["stack_high_water"])
    other_static = int(info["static_ram"]) - static_arena
    batch = int(info["prefill_batch"])
    carved = blobfile.arena_bytes(blob.config, blob.ctx_len, blob.group_size,
                                   blob.chat is not None, batch) + int(info["rope_table"])
    row.update({
        "text": text.strip(),
        "tokens": steps,
        "end": many.end,
        "instructions_per_token": round(instructions),
        "dense_macs_per_token": dense_macs(blob),
        "weight_bytes_per_token": many.read_bytes_per_token,  # counted by the runtime
        "ram": {
            "arena": carved,
            "arena_model": blob.arena_bytes,
            "prefill_batch": batch,
            "rope_table": int(info["rope_table"]),
            "stack_high_water": stack_used,
            "other_static": other_static,
            "high_water_total": carved + stack_used + other_static,
            "budget": board.ram_size,
        },
        "flash": {"firmware": firmware.stat().st_size, "blob": len(data),
                  "total": firmware.stat().st_size + len(data)},
        "estimated_tok_s": round(board.clock_hz / instructions, 1),
        "estimate_basis": f"{board.clock_hz / 1e6:g} MHz / instructions per token (1 IPC assumed)",
        "qemu_wall_s": round(wall, 2),
    })
    return row


def matvec_per_mac(board: Board, kernels: str, macs: int) -> tuple[float, dict]:
    """Instructions per multiply-add of the matvec functions, from an 8-token profile of
    the model flashed last; and that profile."""
    prof = profile(board, kernels, 8)
    matvec = sum(n for name, n in prof["functions"].items() if MATVEC.match(name))
    return round(matvec / macs, 3), prof


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["runs"] if r.get("fits")]
    order = {"stories260K": 0, "mcu-1m-silu": 1, "default": 2}
    cases = sorted({(r["model"], r["quant"]) for r in rows}, key=lambda c: (order.get(c[0], 3), c))
    boards = list(dict.fromkeys(r["board"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 4.8), squeeze=False)
    for ax, (model, quant) in zip(axes[0], cases):
        for i, board in enumerate(boards):
            pair = {r["kernels"]: r["instructions_per_token"] for r in rows
                    if (r["model"], r["quant"], r["board"]) == (model, quant, board)}
            ref, opt = pair.get("ref"), next((v for k, v in pair.items() if k not in ("ref", "cm")), None)
            if ref:
                ax.bar(i - 0.2, ref / 1e6, 0.4, color="#bbbbbb", label="reference kernels" if i == 0 else None)
            if opt:
                ax.bar(i + 0.2, opt / 1e6, 0.4, color="#4c72b0", label="optimized set" if i == 0 else None)
            if model == "stories260K" and quant == "int8" and board in LLAMA2C_FP32:
                ax.plot([i - 0.45, i + 0.45], [LLAMA2C_FP32[board] / 1e6] * 2, color="#c44e52",
                        linestyle="--", label="llama2.c run.c fp32" if i == 0 else None)
        ax.set_xticks(range(len(boards)), [b.removeprefix("qemu-") for b in boards])
        ax.set_title(f"{model} {quant}", fontsize=10)
        ax.set_ylabel("million instructions / token")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Mote on emulated Cortex-M (QEMU -icount), {results['tokens']} tokens after "
                 f"\"{PROMPT}\", difference method", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="qemu-m4,qemu-m7,qemu-m33,qemu-m55")
    parser.add_argument("--models", default="stories260K,mcu-1m-silu,default")
    parser.add_argument("--quants", default="int8,int4")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--profile", action="store_true",
                        help="also each function's instructions per token (stories260K int8)")
    parser.add_argument("--output", type=Path, default=RESULTS / "mcu.json")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot of --output")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.output.read_text()), args.output.with_suffix(".png"))
        return 0
    results: dict = {"prompt": PROMPT, "tokens": args.tokens, "ctx": CTX, "calibration": {},
                     "runs": [], "matvec_instructions_per_mac": {}, "profiles": {},
                     "llama2c_fp32_reference": LLAMA2C_FP32}
    for name in args.boards.split(","):
        board = load_board(name)
        cal = calibrate_clock(board)
        results["calibration"][name] = cal
        print(f"{name}: {cal['instructions_per_tick']:.4f} instructions per tick "
              f"(expected {cal['expected_instructions_per_tick']:.4f})", flush=True)
        if not cal["agrees"]:
            raise MoteError(f"{name}: clock calibration disagrees with the board file")
        for model in args.models.split(","):
            for quant in args.quants.split(","):
                # the plain-C Cortex-M set too, once: it was every board's before
                # (the "today")
                sets = ["ref", "cm"] if (model, quant) == ("stories260K", "int8") else ["ref"]
                for kernels in sets + [board.kernels]:
                    row = run_one(board, kernels, model, quant, args.tokens, cal["instructions_per_tick"])
                    results["runs"].append(row)
                    if not row["fits"]:
                        print(f"  {model} {quant}: {row['error']}", flush=True)
                        break
                    if model == "stories260K":
                        per_mac, prof = matvec_per_mac(board, kernels, row["dense_macs_per_token"])
                        row["matvec_instructions_per_mac"] = per_mac
                        results["matvec_instructions_per_mac"][f"{name} {kernels} {quant}"] = per_mac
                    print(f"  {model} {quant} {kernels}: {row['instructions_per_token']:,} instructions/token"
                          + (f" (matvec {row['matvec_instructions_per_mac']} per MAC)"
                             if "matvec_instructions_per_mac" in row else "")
                          + f", {row['weight_bytes_per_token']:,} weight B/token, "
                          f"RAM {row['ram']['high_water_total']:,} B, flash {row['flash']['total']:,} B, "
                          f"~{row['estimated_tok_s']} tok/s (estimate)", flush=True)
        if args.profile:
            flash_model(board, blob_for(board, "stories260K", "int8"))
            results["profiles"][name] = {"kernels": board.kernels, **profile(board, board.kernels, args.tokens)}
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
