"""`mote generate`: generate text with the numpy reference (the firmware's oracle)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mote.eval.perplexity import adds_bos, load_any, stop_ids, tokenizer_of
from mote.model import MoteError
from mote.reference.forward import EMPTY_PROMPT, Runner, generate
from mote.reference.sample import Sampler


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("generate", help="generate text through the numpy reference")
    p.add_argument("model", type=Path, help=".mote blob or checkpoint")
    p.add_argument("--prompt", "-p", required=True)
    p.add_argument("-n", type=int, default=64, help="new tokens at most")
    p.add_argument("--tokenizer", type=Path, help="tokenizer .bin for llama2.c checkpoints")
    add_sampling_arguments(p)
    p.add_argument("--ids", action="store_true", help="also print the token ids")
    p.set_defaults(func=run)


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temp", type=float, default=0.0, help="temperature; 0 is greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass to keep")
    p.add_argument("--top-k", type=int, default=0, help="most likely tokens to keep (0: all)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if not args.prompt:
        raise MoteError(EMPTY_PROMPT)
    source = load_any(args.model, args.tokenizer)
    tok = tokenizer_of(source)
    prompt = tok.encode(args.prompt, bos=adds_bos(tok))
    runner = Runner(source)
    sampler = Sampler(args.temp, args.top_p, args.top_k, args.seed)
    ids = generate(runner, prompt, args.n, sampler, stop_ids(tok))
    out = sys.stdout.buffer
    out.write(tok.decode(prompt))
    stream = tok.stream()
    stream.prev = prompt[-1]  # decoding continues after the prompt
    for token in ids:
        out.write(stream.decode(token))
        out.flush()
    out.write(stream.flush() + b"\n")
    if args.ids:
        print(f"prompt ids: {prompt}\ngenerated ids: {ids}")
    return 0
