"""`mote convert`: import a checkpoint, quantize, pack a .mote blob, say where it fits."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mote import blob as blobfile
from mote.importers import load_model
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mote import boards

    board = boards.load_board(args.board) if args.board else None
    model = load_model(args.source, args.tokenizer)
    errors: dict[str, float] = {}
    names = blobfile.tensor_order(model.config)
    with tqdm(total=len(names), desc="quantize", unit="tensor", leave=False) as bar:
        data = blobfile.pack(model, args.quant, args.group, args.ctx,
                             progress=lambda name: bar.update(), errors=errors)
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
