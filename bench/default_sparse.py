"""The default model rebuilt sparse (issue 12): instructions per token on qemu-m4, weight
bytes per token and held-out int8 perplexity of sparse blobs against models/default.mote,
all in one run.

    python bench/default_sparse.py --corpus build/model/corpus \
        [--blobs LABEL=PATH.mote,...] [--bounds] [--tokens 16]

Writes bench/results/default-sparse.json. How each figure is obtained:
- instructions per token: qemu-m4 (its board set, `dsp`), QEMU -icount shift=0; one boot
  generates 1 token and then N+1 tokens greedily after PROMPT, and the difference of the
  two runs' decode ticks over N is one forward pass and sampling step (bench/real_boards.py).
- weight bytes per token: the board's own counter (read_bytes_per_token of the N+1 run).
- perplexity: `mote eval`'s computation (the numpy reference, the firmware's arithmetic,
  a blob's sparsity thresholds applied) on the first 40,000 tokens of the validation
  documents `mote train --seed 1` held out of CORPUS, as models/MODEL_CARD.md scores.
- bounds (--bounds): models/default.mote itself with thresholds that drop a fixed
  fraction of the activations at each point (calibrated on `mote corpus calib`'s
  training documents; 1 drops every activation there). Their perplexity is not the
  point and is not measured: they bound what the runtime's skipping can save on this
  shape on qemu-m4, whatever a sparse training achieves.
- profile (--profile): where the instructions of a token go, function by function
  (bench/mcu_profile.py, 4 tokens), for the default blob and the last bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from mote.boards.catalog import load_board
from mote.boards.images import flash_model
from mote.eval import sparsity
from mote.eval.perplexity import perplexity, tokenizer_of
from mote.fileio import write_atomically
from mote.format import blob as blobfile
from mote.format.sparsity import POINTS, Sparsity
from mote.reference.forward import Runner
from mote.train.corpus import calibration_text, validation_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from real_boards import count_decode  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BOARD = "qemu-m4"
PROMPT = "KING HENRY"
EVAL_TOKENS = 40_000
# drop fractions per point for --bounds (quality ignored)
BOUNDS = ["gate=0.9", "gate=1", "gate=0.9,attn_in=0.6,attn_out=0.6,ffn_in=0.6",
          "gate=0.9,attn_in=0.9,attn_out=0.9,ffn_in=0.9", "gate=1,attn_in=0.8,attn_out=0.8,ffn_in=0.8",
          "gate=1,attn_in=0.9,attn_out=0.9,ffn_in=0.9"]


def per_token(board, data: bytes, tokens: int, work: Path) -> tuple[float, int]:
    """Instructions and weight bytes per generated token on the emulated board."""
    instructions, stats, _ = count_decode(board, data, tokens, PROMPT, work)
    return instructions, stats.read_bytes_per_token


def bound_blob(dense: blobfile.Blob, windows: list[list[int]], spec: str) -> bytes:
    """`dense` (a freshly loaded blob: its sparsity is set) with thresholds dropping the fractions of `spec` (point=F,...) at each point."""
    fractions = {p: float(f) for p, f in (item.split("=") for item in spec.split(","))}
    thresholds = np.zeros((dense.config.n_layers, len(POINTS)), np.float32)
    for point, fraction in fractions.items():
        i = POINTS.index(point)
        if fraction >= 1.0:
            thresholds[:, i] = np.finfo(np.float32).max  # every activation dropped
        else:
            thresholds[:, i] = sparsity.calibrate(dense, windows, fraction, points=(point,))[0].thresholds[:, i]
    dense.sparsity = Sparsity(tuple(p for p in POINTS if p in fractions), thresholds, 0.0)
    return blobfile.serialize(dense)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the `mote corpus build` folder make model trains on")
    parser.add_argument("--blobs", default="", help="LABEL=PATH.mote,... measured beside models/default.mote")
    parser.add_argument("--bounds", action="store_true", help="also the fixed-fraction bounds on the default blob")
    parser.add_argument("--profile", action="store_true", help="also profile the default blob and the last bound")
    parser.add_argument("--tokens", type=int, default=16, help="N of the difference method")
    parser.add_argument("--output", type=Path, default=RESULTS / "default-sparse.json")
    args = parser.parse_args()
    board = load_board(BOARD)
    work = ROOT / "build" / "bench-default-sparse"
    work.mkdir(parents=True, exist_ok=True)
    text = validation_text(args.corpus, 1, 0.02)
    blobs = {"default (dense int8)": ROOT / "models" / "default.mote"}
    blobs |= {label: Path(path) for label, path in (item.split("=", 1) for item in args.blobs.split(",") if item)}
    rows = []
    for label, path in blobs.items():
        blob = blobfile.load(path)
        result = perplexity(Runner(blob), tokenizer_of(blob), text, EVAL_TOKENS)
        instructions, read = per_token(board, path.read_bytes(), args.tokens, work)
        rows.append({"label": label, "blob": str(path), "activation": blob.config.activation,
                     "points": list(blob.sparsity.points) if blob.sparsity else [],
                     "perplexity": round(result.ppl, 3), "nll": round(result.nll, 4), "tokens": result.tokens,
                     "instructions_per_token": round(instructions), "bytes_per_token": read})
        print(json.dumps(rows[-1]), flush=True)
    dense = blobfile.load(blobs["default (dense int8)"])
    windows = sparsity.calibration_windows(tokenizer_of(dense), calibration_text(args.corpus, 1, 0.02),
                                           dense.ctx_len, 2048)
    bounds, profiles = [], {}
    for spec in BOUNDS if args.bounds or args.profile else []:
        data = bound_blob(blobfile.load(blobs["default (dense int8)"]), windows, spec)
        instructions, read = per_token(board, data, args.tokens, work)
        bounds.append({"drops": spec, "instructions_per_token": round(instructions), "bytes_per_token": read})
        print(json.dumps(bounds[-1]), flush=True)
    if args.profile:
        from mcu_profile import profile

        for label, data in (("default (dense int8)", blobs["default (dense int8)"].read_bytes()),
                            (f"bound {BOUNDS[-1]}", data)):
            flash_model(board, data)
            result = profile(board, None, 4)
            profiles[label] = {"total": result["total"], "functions": dict(list(result["functions"].items())[:14])}
            print(label, json.dumps(profiles[label]), flush=True)
    base = rows[0]
    for row in rows + bounds:
        row["speedup_instructions"] = round(base["instructions_per_token"] / row["instructions_per_token"], 3)
        row["speedup_bytes"] = round(base["bytes_per_token"] / row["bytes_per_token"], 3)
    record = {"board": BOARD, "kernels": board.kernels, "prompt": PROMPT, "tokens": args.tokens,
              "eval_tokens": EVAL_TOKENS, "load": os.getloadavg()[0], "rows": rows, "bounds": bounds,
              "profiles": profiles}
    write_atomically(args.output, (json.dumps(record, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
