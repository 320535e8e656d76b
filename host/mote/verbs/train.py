"""`mote train`: train a tiny Llama and its tokenizer on your text (CPU, needs torch)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(verbs) -> None:
    from mote.train.config import TrainConfig

    d = TrainConfig()
    p = verbs.add_parser(
        "train",
        help="train a tiny model on text files",
        description="Train a byte-level BPE tokenizer and a Llama model on the CPU and write a "
        "Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json, README.md).",
    )
    p.add_argument("--text", nargs="+", type=Path, required=True, metavar="FILE",
                   help="UTF-8 text files, or directories of .txt/.md files; each file is one document")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--layers", type=int, default=d.n_layers)
    p.add_argument("--heads", type=int, default=d.n_heads)
    p.add_argument("--kv-heads", type=int, default=d.n_kv_heads)
    p.add_argument("--hidden", type=int, default=d.hidden_dim, help="FFN inner width")
    p.add_argument("--vocab", type=int, default=d.vocab_size)
    p.add_argument("--ctx", type=int, default=d.ctx, help="context length (training window)")
    p.add_argument("--act", choices=("silu", "relu"), default=d.activation)
    budget = p.add_mutually_exclusive_group()  # one is needed, except with --resume
    budget.add_argument("--steps", type=int, default=0, help="train for N optimizer steps")
    budget.add_argument("--minutes", type=float, default=0.0, help="train for M minutes of wall time")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch", type=int, default=d.batch, help="windows per step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="steps between validation estimates and checkpoints")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="CPU threads (0: torch's default; 1 gives bit-reproducible runs)")
    p.add_argument("--data-license", default="", help="license of the training text, for the model card")
    add_sparsity_arguments(p, d)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in DIR from its last checkpoint (same --text)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_sparsity_arguments(p: argparse.ArgumentParser, d) -> None:
    """Activation sparsity in the loop (shared with `mote finetune`)."""
    from mote.format.sparsity import POINTS

    g = p.add_argument_group("activation sparsity (docs/training.md, 'Sparse models')")
    g.add_argument("--l1", default="", metavar="L[,L...]",
                   help="L1 penalty on the activations at --l1-points, one strength per stage "
                        "(stages split the budget equally), e.g. 3e-5,1e-4,3e-4")
    g.add_argument("--l1-points", default=",".join(d.l1_points), metavar="POINTS",
                   help=f"where the L1 penalty applies (of {','.join(POINTS)})")
    g.add_argument("--drop", default="", metavar="POINT=F[,...]",
                   help="thresholds in the loop: drop this fraction of each point's activations "
                        "(calibrated on the batches, straight-through gradient), e.g. gate=0.6,ffn_in=0.3")
    g.add_argument("--drop-ramp", type=float, default=d.drop_ramp, metavar="SHARE",
                   help="share of the budget over which the --drop fractions ramp up from 0")


def sparsity_settings(args: argparse.Namespace) -> dict:
    from mote.train.config import parse_drop, parse_l1

    return {"l1": parse_l1(args.l1), "l1_points": tuple(p for p in args.l1_points.split(",") if p),
            "drop": parse_drop(args.drop), "drop_ramp": args.drop_ramp}


def run(args: argparse.Namespace) -> int:
    from mote.train.loop import TrainConfig, train

    config = TrainConfig(
        dim=args.dim, n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.kv_heads,
        hidden_dim=args.hidden, vocab_size=args.vocab, ctx=args.ctx, activation=args.act,
        steps=args.steps, minutes=args.minutes, batch=args.batch, lr=args.lr, seed=args.seed,
        val_fraction=args.val_fraction, eval_every=args.eval_every, threads=args.threads,
        **sparsity_settings(args),
    )
    record = train(config, args.text, args.out, resume=args.resume,
                   data_license=args.data_license, progress=not args.quiet)
    print(
        f"{args.out}: {record['params']:,} parameters, {record['steps']} steps in "
        f"{record['train_time_s']:.0f} s; validation loss {record['val_loss']:.4f}, "
        f"perplexity {record['val_ppl']:.2f}, {record['val_bits_per_byte']:.3f} bits/byte"
    )
    return 0
