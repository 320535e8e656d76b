"""`mote convert`: import a checkpoint, quantize, pack a .mote blob, say where it fits."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mote.boards.catalog import load_board
from mote.chat import NAMES
from mote.fileio import write_atomically
from mote.format.sparsity import POINTS
from mote.pipeline import DEFAULT_CTX_MAX, QUANT_CHOICES, ConvertOptions, Converted, convert
from mote.verbs.report import print_fit, print_summary


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the convert path (shared by `mote convert` and `mote flash`)."""
    p.add_argument("--tokenizer", type=Path, help="tokenizer .bin for llama2.c checkpoints")
    p.add_argument("--quant", choices=QUANT_CHOICES, default="int8",
                   help="int8: all q8; int4: q4 but q8 embedding; int4a: as int4 with q4a (4-bit codes "
                        "with a scale and an offset per group); mixed: q8 attention, q4 FFN; "
                        "auto: q8 or q4 per matrix by its measured cost, to fit --budget or --board "
                        "(needs --calib)")
    p.add_argument("--budget", type=int, metavar="BYTES", help="--quant auto: the blob's size at most")
    p.add_argument("--group", type=int, default=32, help="quantization group length (even)")
    p.add_argument("--ctx", type=int, help="context length to size the arena for (default: the trained "
                                           f"context, at most {DEFAULT_CTX_MAX})")
    p.add_argument("--sparsity", metavar="F|kl=K|natural|trained",
                   help="dynamic activation sparsity for a budget: skip a fraction F (0..0.9) of the weight "
                        "bytes per token, or stay within a mean KL divergence K (nats/token) from dense; "
                        "thresholds per layer and point chosen by measured KL per byte on --calib; "
                        "'natural' (ReLU models): the gate's own zeros; 'trained': the thresholds a "
                        "`mote train`/`mote finetune --drop` run ended with (its train_meta.json)")
    p.add_argument("--calib", type=Path, metavar="TEXT",
                   help="UTF-8 calibration text: quantizes every matrix by GPTQ error feedback against "
                        "what its inputs are on it, measures --quant auto's costs, calibrates a --sparsity "
                        "budget")
    p.add_argument("--calib-tokens", type=int, default=4096, help="calibrate on this many tokens of --calib")
    p.add_argument("--sparse-points", default=",".join(POINTS),
                   help=f"activation points to sparsify (default: all of {','.join(POINTS)})")
    p.add_argument("--chat-template", choices=NAMES,
                   help="the chat template the console runs (default: the model's own, from its "
                        "tokenizer.chat_template or tokenizer_config.json; none: completion)")
    p.add_argument("--system-prompt", metavar="TEXT", help="the default system prompt of a chat model "
                   "(default: the one its chat template adds, if any)")


def options_from(args: argparse.Namespace) -> ConvertOptions:
    return ConvertOptions(tokenizer=args.tokenizer, quant=args.quant, budget=args.budget, group=args.group,
                          ctx=args.ctx,
                          sparsity=args.sparsity, calib=args.calib, calib_tokens=args.calib_tokens,
                          sparse_points=tuple(p for p in args.sparse_points.split(",") if p),
                          chat_template=args.chat_template, system_prompt=args.system_prompt)


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("convert", help="checkpoint -> .mote blob (quantize and pack)")
    p.add_argument("source", type=Path, help="llama2.c .bin, Hugging Face directory or .gguf")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .mote file to write")
    p.add_argument("--board", help="refuse unless the model fits this board")
    add_convert_arguments(p)
    p.set_defaults(func=run)


def convert_and_report(source: Path, args: argparse.Namespace, output: Path) -> Converted:
    """Convert `source` with the parsed convert options, write `output`, print the report."""
    board = load_board(args.board) if args.board else None
    with tqdm(desc="quantize", unit="tensor", leave=False) as bar:
        result = convert(source, options_from(args), board, progress=lambda name: bar.update())
    write_atomically(output, result.data, inputs=(source, args.tokenizer, args.calib))
    for line in result.notes:
        print(line)
    print_summary(result.blob, output)
    errors, sources = result.errors, result.source_types
    worst = max(errors, key=errors.get)
    against = " against the checkpoint's dequantized values" if sources else ""
    print(f"quantization error (relative RMS per tensor{against}): mean "
          f"{sum(errors.values()) / len(errors):.4f}, worst {errors[worst]:.4f} ({worst})")
    for name, err in errors.items():
        stored = f"{sources[name]} -> " if name in sources else ""
        print(f"  {name:24s} {stored}{result.blob.tensors[name].dtype}  {err:.4f}")
    print_fit(len(result.data), result.blob.arena_bytes)
    return result


def run(args: argparse.Namespace) -> int:
    convert_and_report(args.source, args, args.output)
    return 0
