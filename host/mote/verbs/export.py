"""`mote export MODEL --tflite OUT.tflite`: one decode step for TensorFlow Lite Micro
(needs the optional extra: pip install -e '.[tflite]'; docs/export.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.eval.perplexity import tokenizer_of
from mote.eval.sparsity import calibration_windows
from mote.export import tflite
from mote.fileio import write_atomically
from mote.importers import load_model
from mote.model import MoteError


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "export", help="checkpoint -> .tflite decode step for TensorFlow Lite Micro (optional extra)",
        description="Export one decode step (token and position in, logits out, the KV cache in "
        "resource variables) with int8 weights per output channel and int8 (or int16) "
        f"activations whose ranges are calibrated on text. Needs tflite-micro: {tflite.PIP_COMMAND}")
    p.add_argument("source", type=Path, help="llama2.c .bin, Hugging Face directory or .gguf")
    p.add_argument("--tflite", type=Path, required=True, metavar="OUT.tflite", help="the .tflite file to write")
    p.add_argument("--tokenizer", type=Path, help="tokenizer .bin for llama2.c checkpoints")
    p.add_argument("--ctx", type=int, help="positions the KV cache holds (default: the trained context)")
    p.add_argument("--calib", type=Path, metavar="TEXT",
                   help="UTF-8 text to calibrate activation ranges on (default: text the model samples itself)")
    p.add_argument("--calib-tokens", type=int, default=4096, help="calibrate on this many tokens")
    p.add_argument("--quant", choices=list(tflite.SCHEMES), default="int8",
                   help="int8: int8 weights per output channel and int8 activations (TFLite's full-integer "
                        "scheme); 16x8: the same weights, int16 activations (closer to the float model, "
                        "slower kernels); float32: no quantization")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.calib_tokens < 1:
        raise MoteError(f"--calib-tokens must be at least 1, got {args.calib_tokens}")
    tflite.require()
    model = load_model(args.source, args.tokenizer)
    ctx = tflite.context_length(model, args.ctx)
    windows = None
    if args.calib is not None:
        try:
            text = args.calib.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise MoteError(f"cannot read {args.calib} as UTF-8 text: {err}") from None
        windows = calibration_windows(tokenizer_of(model), text, ctx, args.calib_tokens)
    exported = tflite.export(model, ctx, windows, args.calib_tokens, args.quant)
    # what tflite-micro itself makes of the file, before it is written
    decoder = tflite.MicroDecoder(exported.data)
    decoder.step(0, 0)
    arena = decoder.arena()
    write_atomically(args.tflite, exported.data, inputs=(args.source, args.tokenizer, args.calib))

    c = model.config
    ops = exported.op_counts
    print(f"{args.tflite}: {len(exported.data):,} bytes ({exported.weight_bytes:,} of weights and tables), "
          f"{sum(ops.values())} operators of {len(ops)} kinds")
    print(f"  inputs token int32 [1] and pos int32 [1] (0..{exported.ctx - 1}); output logits float32 "
          f"[1, {c.vocab_size}]")
    print(f"  KV cache: {2 * c.n_layers} resource variables, {exported.cache_bytes:,} bytes "
          f"(float32, {exported.ctx} positions)")
    if exported.quant == "float32":
        print("  no quantization: float32 weights and activations")
    else:
        source = args.calib if args.calib is not None else "text the model sampled itself (temperature 1, seed 0)"
        print(f"  quantization {exported.quant}: int8 weights per output channel, activation ranges calibrated "
              f"on {exported.calibration_tokens:,} tokens of {source}")
    print(f"  tflite-micro arena: {arena.total:,} bytes (persistent {arena.tail:,}, activations {arena.head:,}; "
          f"measured by its x86-64 host interpreter)")
    print("  operators: " + ", ".join(f"{kind} {n}" for kind, n in sorted(ops.items())))
    return 0
