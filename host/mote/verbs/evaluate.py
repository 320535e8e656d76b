"""`mote eval`: perplexity of a checkpoint or blob on a text, through the reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mote.eval.perplexity import load_any, perplexity, tokenizer_of
from mote.model import MoteError
from mote.reference.forward import Runner


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("eval", help="perplexity on a text through the numpy reference")
    p.add_argument("model", type=Path, help=".mote blob or checkpoint")
    p.add_argument("--text", type=Path, required=True, help="UTF-8 text file")
    p.add_argument("--tokenizer", type=Path, help="tokenizer .bin for llama2.c checkpoints")
    p.add_argument("--ctx", type=int, help="window length (default: the model's context)")
    p.add_argument("--max-tokens", type=int, help="evaluate only the first N tokens")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--reference", type=Path, metavar="DENSE",
                   help="also give the mean KL divergence from this model's next-token "
                        "distribution (default for a blob with a sparsity section: itself, run dense)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = load_any(args.model, args.tokenizer)
    try:
        text = args.text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MoteError(f"cannot read {args.text} as UTF-8 text: {err}") from None
    runner = Runner(source, args.ctx)
    if args.reference is not None or getattr(source, "sparsity", None) is not None:
        return run_compare(args, source, runner, text)
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


def run_compare(args: argparse.Namespace, source, runner: Runner, text: str) -> int:
    """Perplexity and mean KL(reference || model) on the same windows."""
    from mote.eval import sparsity

    if args.reference is not None:
        dense = Runner(load_any(args.reference), args.ctx or runner.ctx)
        reference = str(args.reference)
    else:
        dense = Runner(source, args.ctx)
        dense.sparsity = None
        reference = f"{args.model} run dense"
    if dense.config != runner.config:
        raise MoteError(f"{reference} is not the same model shape as {args.model}")
    result = sparsity.compare(runner, dense, tokenizer_of(source), text, args.max_tokens,
                              progress=not args.json)
    record = {"model": str(args.model), "text": str(args.text), "reference": reference,
              "tokens": result.tokens, "window": runner.ctx, "nll": result.nll,
              "perplexity": result.ppl, "reference_perplexity": result.dense_ppl,
              "perplexity_increase": result.ppl / result.dense_ppl - 1, "mean_kl": result.kl}
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"{args.model} on {args.text}: perplexity {result.ppl:.3f} vs {result.dense_ppl:.3f} "
              f"({100 * record['perplexity_increase']:+.2f} %) for {reference}; mean KL "
              f"{result.kl:.5f} nats/token ({result.tokens} tokens, window {runner.ctx})")
    return 0
