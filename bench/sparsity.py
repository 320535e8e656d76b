"""Dynamic activation sparsity: quality against speed-up, per model and sparsity level.

    python bench/sparsity.py [--models ref-11m-silu,ref-11m-relu,mcu-1m-silu,stories260K]
                             [--levels 0,0.25,0.4,0.5,0.6] [--qemu-board qemu-m7]

Writes bench/results/sparsity.json and bench/results/sparsity.png (perplexity against
speed-up in instructions). Every configuration is measured against the dense int8 blob
of the same model in the same run, all on the reference kernels (the sparse kernels
exist only as reference C, which every port runs; comparing them with the AVX2 dense
kernels would measure SIMD, not sparsity). How each figure is obtained:

- calibration / evaluation text: the HF models calibrate on the first 20 % of their
  heldout.txt and are evaluated on tokens of the remaining 80 %; stories260K (trained
  on TinyStories, of which no text is available here) calibrates and is evaluated on
  stories the dense model itself samples (temperature 1, different seeds for the two).
- perplexity and mean KL(dense || sparse) of the next-token distributions: the numpy
  reference (`mote eval`), over --eval-tokens tokens, windows of the context.
- instructions per token: callgrind on the Linux port (firmware/build/linux-ref/
  mote-linux, one-shot), instructions inside mote_forward divided by its calls, over a
  short prompt and --callgrind-tokens generated tokens.
- weight bytes, rows and columns read per token, and greedy agreement with dense over
  --tokens generated tokens: the runtime's own counters (tests/c/mote_dump.c --reads).
- tok/s: median of 3 one-shot runs of mote-linux (reference kernels, 1 thread).
- QEMU: instructions per generated token on --qemu-board (-icount), as bench/mcu.py
  measures them, for the models that fit the board.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mote.format import blob as blobfile
from mote.eval import sparsity
from mote.format import sparsity as layouts
from mote.eval.perplexity import tokenizer_of
from mote.importers import load_model
from mote.model import MoteError
from mote.reference.forward import Runner

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "bench" / "results"
LINUX = ROOT / "firmware" / "build" / "linux-ref" / "mote-linux"
SOURCES = {
    "ref-11m-silu": (MODELS / "ref-11m-silu", None),
    "ref-11m-relu": (MODELS / "ref-11m-relu", None),
    "mcu-1m-silu": (MODELS / "mcu-1m-silu", None),
    "stories260K": (MODELS / "stories260K.bin", MODELS / "tok512.bin"),
}
PROMPTS = {"stories260K": "Once upon a time"}
DEFAULT_PROMPT = "And it came to pass"
CTX = 256


def build_tools() -> Path:
    """mote-linux and tests/c/mote_dump.c with the reference kernels, by firmware/Makefile
    (both land next to each other in LINUX's build directory)."""
    subprocess.run(["make", "-C", str(ROOT / "firmware"), "linux", "tools", "KERNELS=ref"], check=True,
                   capture_output=True)
    return LINUX.parent / "mote_dump"


def texts(name: str, dense_path: Path, work: Path) -> tuple[str, str]:
    """(calibration text, evaluation text)."""
    if name != "stories260K":
        heldout = (MODELS / name / "heldout.txt").read_text(encoding="utf-8")
        cut = len(heldout) // 5
        return heldout[:cut], heldout[cut:]

    def stories(seeds) -> str:
        out = []
        for seed in seeds:
            run = subprocess.run([str(LINUX), str(dense_path), "--prompt", PROMPTS[name], "-n", "250",
                                  "--temp", "1.0", "--seed", str(seed)], capture_output=True, text=True,
                                 check=True)
            out.append(PROMPTS[name] + run.stdout)
        return "\n".join(out)

    return stories(range(1, 9)), stories(range(101, 121))


def dump_run(dump: Path, blob: Path, prompt_ids: list[int], tokens: int) -> tuple[list[int], dict]:
    run = subprocess.run([str(dump), str(blob), "--tokens", ",".join(map(str, prompt_ids)), "-n",
                          str(tokens), "--reads"], capture_output=True, text=True, check=True)
    reads = []
    generated = []
    for line in run.stdout.splitlines():
        head, *rest = line.split()
        if head == "reads" and int(rest[0]) >= len(prompt_ids):
            reads.append([int(v) for v in rest[1:]])
        elif head == "tokens":
            generated = [int(v) for v in rest]
    mean = np.mean(reads, axis=0)
    return generated, {"rows": float(mean[0]), "cols": float(mean[1]), "bytes": float(mean[2])}


def callgrind(blob: Path, prompt: str, tokens: int, work: Path) -> float:
    """Instructions inside mote_forward per call (callgrind, collecting only there)."""
    out = work / "callgrind.out"
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          "--collect-atstart=no", "--toggle-collect=mote_forward", str(LINUX), str(blob),
                          "--prompt", prompt, "-n", str(tokens), "--temp", "0"],
                         check=True, capture_output=True, text=True)
    total = int(re.search(r"^totals:\s+(\d+)", out.read_text(), re.M).group(1))
    stats = dict(re.findall(r"(\w+)=(\w+)", run.stderr[run.stderr.index("[stats]"):]))
    # the console runs every prompt token, then each sampled token but the last one
    # (which it does not run when the generation ends by length)
    calls = int(stats["prompt"]) + int(stats["tokens"]) - (stats["end"] == "length")
    return total / calls


def tok_s(blob: Path, prompt: str, tokens: int) -> float:
    rates = []
    for _ in range(3):
        run = subprocess.run([str(LINUX), str(blob), "--prompt", prompt, "-n", str(tokens), "--temp", "0"],
                             capture_output=True, text=True, check=True)
        rates.append(float(re.search(r"tok_s=([\d.]+)", run.stderr).group(1)))
    return statistics.median(rates)


def qemu_instructions(board_name: str, data: bytes, prompt: str, tokens: int) -> float:
    """Instructions per generated token on an emulated board, as bench/mcu.py counts
    them: the console's decode ticks times the calibrated instructions per tick."""
    from mote.boards.catalog import load_board
    from mote.console.client import MoteConsole
    from mote.boards.images import build_firmware, flash_model, images
    from mote.boards.qemu import QemuBoard, calibrate_clock

    board = load_board(board_name)
    if not hasattr(qemu_instructions, "per_tick"):
        build_firmware(board)
        qemu_instructions.per_tick = calibrate_clock(board)["instructions_per_tick"]
    flash_model(board, data)
    with QemuBoard(board, flash=images(board)) as qb, MoteConsole(qb.url, timeout=900) as console:
        console.read_banner(boot_wait=10)
        console.set("temp", 0)
        console.set("n", tokens)
        _, stats = console.ask(prompt)
    return stats.decode_ticks * qemu_instructions.per_tick / stats.tokens


QUALITY = ("perplexity", "dense_perplexity", "eval_tokens", "perplexity_increase", "mean_kl")


def quality(args, row: dict, runner: Runner, dense_runner: Runner, tok, text: str) -> dict:
    """Perplexity and KL: measured, or with --quality-from taken from an earlier run
    of the same model, configuration and points (they depend on the thresholds, which
    calibration computes deterministically, not on the kernels)."""
    if args.quality_from:
        for old in json.loads(args.quality_from.read_text())["runs"]:
            if all(old[k] == row[k] for k in ("model", "config", "points")):
                return {k: old[k] for k in QUALITY} | {"quality_from": str(args.quality_from)}
        raise MoteError(f"{args.quality_from} has no {row['model']} {row['config']} run")
    cmp = sparsity.compare(runner, dense_runner, tok, text, args.eval_tokens)
    return dict(zip(QUALITY, (cmp.ppl, cmp.dense_ppl, cmp.tokens, cmp.ppl / cmp.dense_ppl - 1, cmp.kl)))


def run_model(name: str, args, dump: Path, work: Path) -> list[dict]:
    source, tokenizer = SOURCES[name]
    model = load_model(source, tokenizer)
    ctx = min(CTX, model.config.max_seq_len)
    dense_bytes = blobfile.pack(model, "int8", 32, ctx)
    dense = blobfile.load(dense_bytes)
    dense_path = work / f"{name}-dense.mote"
    dense_path.write_bytes(dense_bytes)
    calib_text, eval_text = texts(name, dense_path, work)
    tok = tokenizer_of(dense)
    windows = sparsity.calibration_windows(tok, calib_text, ctx, args.calib_tokens)
    prompt = PROMPTS.get(name, DEFAULT_PROMPT)
    prompt_ids = ([tok.bos_id] if tok.kind == 1 else []) + tok.encode(prompt, bos=False)

    configs: list[tuple[str, float | None, bool]] = [("dense", None, False)]
    configs += [(f"S={s:g}", s, False) for s in args.levels]
    if model.config.activation == "relu":
        configs.append(("natural", 0.0, True))
    dense_runner = Runner(dense)
    rows = []
    dense_row = None
    for label, level, natural in configs:
        started = time.monotonic()
        if level is None:
            path, blob = dense_path, dense
        else:
            sp, dropped = sparsity.calibrate(dense, windows, level, args.points.split(","), natural=natural)
            path = work / f"{name}-{label}.mote"
            path.write_bytes(blobfile.pack(model, "int8", 32, ctx, sparsity=sp))
            blob = blobfile.load(path)
        generated, reads = dump_run(dump, path, prompt_ids, args.tokens)
        row = {"model": name, "config": label, "sparsity": level, "natural": natural,
               "points": list(blob.sparsity.points) if blob.sparsity else []}
        row.update(quality(args, row, Runner(blob), dense_runner, tok, eval_text))
        row.update({"reads_per_token": reads,
               "instructions_per_token": callgrind(path, prompt, args.callgrind_tokens, work),
               "tok_s": tok_s(path, prompt, args.tokens)})
        if level is not None:
            row["dropped_on_calibration"] = {p: [round(v, 4) for v in f] for p, f in dropped.items()}
        if dense_row is None:
            dense_row, dense_tokens = row, generated
        row["greedy_agreement"] = float(np.mean([a == b for a, b in zip(generated, dense_tokens)]))
        row["greedy_prefix"] = next((i for i, (a, b) in enumerate(zip(generated, dense_tokens)) if a != b),
                                    len(generated))
        row["speedup_instructions"] = dense_row["instructions_per_token"] / row["instructions_per_token"]
        row["bytes_reduction"] = dense_row["reads_per_token"]["bytes"] / reads["bytes"]
        row["speedup_tok_s"] = row["tok_s"] / dense_row["tok_s"]
        if args.qemu_board and name in args.qemu_models.split(","):
            try:
                row["qemu_instructions_per_token"] = qemu_instructions(
                    args.qemu_board, path.read_bytes(), prompt, args.qemu_tokens)
                row["qemu_speedup"] = dense_row["qemu_instructions_per_token"] / row["qemu_instructions_per_token"]
            except (MoteError, OSError, subprocess.CalledProcessError, KeyError) as err:
                row["qemu_error"] = str(err)
        row["bench_seconds"] = round(time.monotonic() - started, 1)
        print(f"{name:13s} {label:8s} ppl {row['perplexity']:8.3f} ({100 * row['perplexity_increase']:+6.2f} %) "
              f"KL {row['mean_kl']:.4f}  instr {row['instructions_per_token'] / 1e6:7.2f} M "
              f"(x{row['speedup_instructions']:.2f})  bytes x{row['bytes_reduction']:.2f}  "
              f"{row['tok_s']:.1f} tok/s  greedy {row['greedy_agreement']:.2f}"
              + (f"  qemu x{row['qemu_speedup']:.2f}" if "qemu_speedup" in row else ""), flush=True)
        rows.append(row)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name and not r["natural"]]
        ax.plot([r["speedup_instructions"] for r in mine], [100 * r["perplexity_increase"] for r in mine],
                marker="o", label=name)
        for r in mine:
            ax.annotate(r["config"], (r["speedup_instructions"], 100 * r["perplexity_increase"]), fontsize=7)
        for r in (r for r in rows if r["model"] == name and r["natural"]):
            ax.plot(r["speedup_instructions"], 100 * r["perplexity_increase"], marker="*", markersize=12,
                    linestyle="none", label=f"{name} natural ReLU")
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=-0.3)  # no configuration improves on dense
    ax.set_xlabel("speed-up in instructions per token vs dense int8 (callgrind, reference kernels)")
    ax.set_ylabel("perplexity increase over dense int8 (%)")
    ax.set_title("Dynamic activation sparsity: quality against speed-up")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SOURCES))
    parser.add_argument("--levels", default="0,0.25,0.4,0.5,0.6")
    parser.add_argument("--points", default=",".join(layouts.POINTS))
    parser.add_argument("--tokens", type=int, default=128, help="greedy tokens for agreement and reads")
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--calib-tokens", type=int, default=4096)
    parser.add_argument("--callgrind-tokens", type=int, default=8)
    parser.add_argument("--qemu-board", default="qemu-m7", help="empty to skip QEMU")
    parser.add_argument("--qemu-models", default="stories260K,mcu-1m-silu")
    parser.add_argument("--qemu-tokens", type=int, default=64)
    parser.add_argument("--output", type=Path, default=RESULTS / "sparsity.json")
    parser.add_argument("--quality-from", type=Path, metavar="JSON",
                        help="reuse perplexity and KL of an earlier run (speed figures only)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the output file's runs of the models not measured now")
    args = parser.parse_args()
    args.levels = [float(v) for v in args.levels.split(",") if v]
    rows: list[dict] = []
    if args.keep and args.output.exists():
        measured = set(args.models.split(","))
        rows = [r for r in json.loads(args.output.read_text())["runs"] if r["model"] not in measured]
    with tempfile.TemporaryDirectory(prefix="mote-sparsity-") as tmp:
        work = Path(tmp)
        dump = build_tools()
        for name in args.models.split(","):
            rows += run_model(name, args, dump, work)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps({"settings": {k: v for k, v in vars(args).items()
                                                            if k not in ("output", "keep", "quality_from")}, "runs": rows},
                                              indent=2, default=str) + "\n")
    plot(rows, args.output.with_suffix(".png"))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MoteError as err:
        print(f"bench/sparsity.py: error: {err}", file=sys.stderr)
        sys.exit(2)
