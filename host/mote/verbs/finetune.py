"""`mote finetune`: fine-tune a pretrained checkpoint to run sparse (CPU, needs torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.verbs.train import add_sparsity_arguments, sparsity_settings


def register(verbs) -> None:
    from mote.train.config import TrainConfig

    d = TrainConfig()
    p = verbs.add_parser(
        "finetune",
        help="fine-tune a checkpoint with activation sparsity in the loop",
        description="Continue training CHECKPOINT on the CPU with activation sparsity in the loop "
        "(optionally swapping its FFN activation to ReLU), distilling from the original, and write "
        "it back in its own format (docs/training.md, 'Sparse models').",
    )
    p.add_argument("checkpoint", type=Path, help="Hugging Face directory or llama2.c checkpoint")
    p.add_argument("--text", nargs="+", type=Path, required=True, metavar="FILE",
                   help="UTF-8 text files, or directories of .txt/.md files; each file is one document")
    p.add_argument("--exclude", nargs="*", type=Path, default=[], metavar="FILE",
                   help="held-out text (e.g. the model's heldout.txt): documents sharing its content are dropped")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--act", choices=("keep", "silu", "relu"), default="keep",
                   help="the FFN gate activation to train with (relu: ReLU-fication of a SiLU model)")
    budget = p.add_mutually_exclusive_group()  # one is needed, except with --resume
    budget.add_argument("--steps", type=int, default=0, help="train for N optimizer steps")
    budget.add_argument("--minutes", type=float, default=0.0, help="train for M minutes of wall time")
    p.add_argument("--ctx", type=int, default=0, help="training window (default: the model's, at most 256)")
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    p.add_argument("--distill", type=float, default=d.distill,
                   help="weight of the KL divergence from the original model (the rest: cross-entropy)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--eval-every", type=int, default=50, help="steps between validation estimates and checkpoints")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="CPU threads (0: torch's default; 1 gives bit-reproducible runs)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in DIR from its last checkpoint (same --text and --exclude)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sparsity_arguments(p, d)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mote.importers import load_model
    from mote.train.finetune import finetune, shape_config

    config = None
    if not args.resume:
        source = load_model(args.checkpoint)
        act = source.config.activation if args.act == "keep" else args.act
        config = shape_config(
            source, init=str(args.checkpoint), activation=act, steps=args.steps, minutes=args.minutes,
            ctx=args.ctx or min(256, source.config.max_seq_len), batch=args.batch, lr=args.lr,
            distill=args.distill, seed=args.seed, val_fraction=args.val_fraction, eval_every=args.eval_every,
            threads=args.threads, **sparsity_settings(args))
    record = finetune(config, args.text, args.exclude, args.out, resume=args.resume, progress=not args.quiet)
    print(f"{args.out}: {record['steps']} steps in {record['train_time_s']:.0f} s "
          f"({record['train_cpu_s']:.0f} s CPU); validation loss {record['val_loss_at_start']} -> "
          f"{record['val_loss']:.4f}; {record['data']['held_out']}")
    return 0
