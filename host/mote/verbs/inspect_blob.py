"""`mote inspect`: what a .mote blob holds, as text or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mote.format import blob as blobfile
from mote.eval.sparsity import describe
from mote.tokenizer import Tokenizer
from mote.verbs.report import fit_rows, print_fit, print_summary, summary


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("inspect", help="show a .mote blob's header, tensors and fit")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    blob = blobfile.load(args.file)
    tok = Tokenizer.from_section(blob.tokenizer_section)
    tensors = [
        {"name": t.name, "dtype": t.dtype, "rows": t.rows, "cols": t.cols}
        for t in blob.tensors.values()
    ]
    tokenizer = {"kind": {1: "llama2c", 2: "bytelevel"}[tok.kind], "vocab_size": tok.vocab_size,
                 "bos_id": tok.bos_id, "eos_id": tok.eos_id, "bytes": len(blob.tokenizer_section)}
    sparsity = None if blob.sparsity is None else {
        "points": list(blob.sparsity.points), "target": blob.sparsity.target,
        "thresholds": blob.sparsity.thresholds.tolist(),
    }
    if args.json:
        info = summary(blob) | {"tensors": tensors, "tokenizer": tokenizer, "sparsity": sparsity,
                                "boards": fit_rows(blob.total_bytes, blob.arena_bytes)}
        print(json.dumps(info, indent=2))
        return 0
    print_summary(blob, args.file)
    print(f"  tokenizer: {tokenizer['kind']}, {tokenizer['vocab_size']} tokens, "
          f"{tokenizer['bytes']:,} bytes")
    if blob.sparsity is None:
        print("  sparsity: none (runs dense)")
    else:
        print(f"  sparsity (calibrated for {blob.sparsity.target:.3g}): {describe(blob.sparsity, blob.config)}")
    for t in tensors:
        print(f"    {t['name']:24s} {t['dtype']:4s} {t['rows']:6d} x {t['cols']}")
    print_fit(blob.total_bytes, blob.arena_bytes)
    return 0
