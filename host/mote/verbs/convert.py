"""`mote convert`: import a checkpoint, quantize, pack a .mote blob, say where it fits."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mote.format import blob as blobfile
from mote.importers import load_model
from mote import sparsity as sparse
from mote.model import MoteError
from mote.quant import SCHEMES
from mote.verbs.report import print_fit, print_summary


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("convert", help="checkpoint -> .mote blob (quantize and pack)")
    p.add_argument("source", type=Path, help="llama2.c .bin, Hugging Face directory or .gguf")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .mote file to write")
    p.add_argument("--tokenizer", type=Path, help="tokenizer .bin for llama2.c checkpoints")
    p.add_argument("--quant", choices=list(SCHEMES), default="int8",
                   help="int8: all q8; int4: q4 but q8 embedding; mixed: q8 attention, q4 FFN")
    p.add_argument("--group", type=int, default=32, help="quantization group length (even)")
    p.add_argument("--ctx", type=int, help="context length to size the arena for (default: trained)")
    p.add_argument("--board", help="refuse unless the model fits this board")
    p.add_argument("--sparsity", metavar="S|natural",
                   help="dynamic activation sparsity: drop a fraction S (0..0.9) of activations, "
                        "thresholds calibrated on --calib; 'natural' (ReLU models): the gate's own zeros")
    p.add_argument("--calib", type=Path, metavar="TEXT", help="UTF-8 calibration text for --sparsity S")
    p.add_argument("--calib-tokens", type=int, default=4096, help="calibrate on this many tokens of --calib")
    p.add_argument("--sparse-points", default=",".join(sparse.POINTS),
                   help=f"activation points to sparsify (default: all of {','.join(sparse.POINTS)})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mote import boards

    board = boards.load_board(args.board) if args.board else None
    if args.sparsity is not None and args.quant != "int8":
        raise MoteError("--sparsity lays out q8 matrices: use --quant int8")
    if args.sparsity not in (None, "natural") and args.calib is None:
        raise MoteError("--sparsity S needs --calib TEXT to calibrate the thresholds on")
    model = load_model(args.source, args.tokenizer)
    errors: dict[str, float] = {}
    names = blobfile.tensor_order(model.config)
    with tqdm(total=len(names), desc="quantize", unit="tensor", leave=False) as bar:
        data = blobfile.pack(model, args.quant, args.group, args.ctx,
                             progress=lambda name: bar.update(), errors=errors)
    blob = blobfile.load(data)
    if args.sparsity is not None:
        data = add_sparsity(model, blob, args, errors)
        blob = blobfile.load(data)
    if board is not None:
        boards.check_fit(board, len(data), blob.arena_bytes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print_summary(blob, args.output)
    worst = max(errors, key=errors.get)
    print(f"quantization error (relative RMS, per tensor): mean {sum(errors.values()) / len(errors):.4f}, "
          f"worst {errors[worst]:.4f} ({worst})")
    for name, err in errors.items():
        print(f"  {name:24s} {blob.tensors[name].dtype}  {err:.4f}")
    print_fit(len(data), blob.arena_bytes)
    return 0


def add_sparsity(model, dense, args: argparse.Namespace, errors: dict[str, float]) -> bytes:
    """Calibrate thresholds on the dense blob and pack again with the sparse layouts."""
    from mote.eval import tokenizer_of

    natural = args.sparsity == "natural"
    target = 0.0
    if not natural:
        try:
            target = float(args.sparsity)
        except ValueError:
            raise MoteError(f"--sparsity must be a fraction 0..0.9 or 'natural', not {args.sparsity!r}") from None
    windows = []  # natural: thresholds are 0 by definition; --calib only measures sparsity
    if args.calib is not None:
        try:
            text = args.calib.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise MoteError(f"cannot read {args.calib} as UTF-8 text: {err}") from None
        windows = sparse.calibration_windows(tokenizer_of(dense), text, dense.ctx_len, args.calib_tokens)
    points = tuple(p for p in args.sparse_points.split(",") if p)
    sp, dropped = sparse.calibrate(dense, windows, target, points, natural=natural)
    data = blobfile.pack(model, args.quant, args.group, args.ctx, errors=errors, sparsity=sp)
    what = "natural (ReLU zeros, threshold 0)" if natural else f"S = {target:g}"
    print(f"sparsity {what}: {sparse.describe(sp, dense.config)}")
    if windows:
        print(f"  {'measured' if natural else 'calibrated'} on {sum(len(w) for w in windows)} tokens of {args.calib}")
    for p in dropped:
        label = "measured gate zeros" if natural else "dropped on the calibration text"
        print(f"  {p:8s} {label} per layer: " + " ".join(f"{v:.3f}" for v in dropped[p]))
    return data
