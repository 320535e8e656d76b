"""`mote eval`: perplexity of a checkpoint or blob on a text, through the reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mote.eval import load_any, perplexity, tokenizer_of
from mote.model import MoteError
from mote.reference import Runner


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("eval", help="perplexity on a text through the numpy reference")
    p.add_argument("model", type=Path, help=".mote blob or checkpoint")
    p.add_argument("--text", type=Path, required=True, help="UTF-8 text file")
    p.add_argument("--tokenizer", type=Path, help="tokenizer .bin for llama2.c checkpoints")
    p.add_argument("--ctx", type=int, help="window length (default: the model's context)")
    p.add_argument("--max-tokens", type=int, help="evaluate only the first N tokens")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = load_any(args.model, args.tokenizer)
    try:
        text = args.text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MoteError(f"cannot read {args.text} as UTF-8 text: {err}") from None
    runner = Runner(source, args.ctx, exact=False)
    result = perplexity(runner, tokenizer_of(source), text, args.max_tokens, progress=not args.json)
    record = {"model": str(args.model), "text": str(args.text), "quantized": runner.quantized,
              "tokens": result.tokens, "window": result.window,
              "nll": result.nll, "perplexity": result.ppl}
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        kind = "blob (firmware arithmetic)" if runner.quantized else "float32"
        print(f"{args.model} [{kind}] on {args.text}: perplexity {result.ppl:.3f} "
              f"(loss {result.nll:.4f} nats/token, {result.tokens} tokens, window {result.window})")
    return 0
