"""The `mote` command line: thin argparse verbs over importable functions.

Every verb turns a MoteError into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from mote.model import MoteError
from mote.verbs import convert, evaluate, generate, inspect_blob
from mote.verbs import finetune as finetune_verb, train as train_verb
from mote.verbs import boards as boards_verb, chat as chat_verb, corpus as corpus_verb
from mote.verbs import flash as flash_verb, run as run_verb, serve as serve_verb
from mote.verbs import export as export_verb


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mote", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    # Each verb module registers itself: register(verbs) adds a subparser whose
    # `func` default takes the parsed args and returns an exit status.
    # --- verbs (one line each) ---
    convert.register(verbs)
    inspect_blob.register(verbs)
    evaluate.register(verbs)
    generate.register(verbs)
    train_verb.register(verbs)
    finetune_verb.register(verbs)
    run_verb.register(verbs)
    chat_verb.register(verbs)
    flash_verb.register(verbs)
    boards_verb.register(verbs)
    serve_verb.register(verbs)
    corpus_verb.register(verbs)
    export_verb.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MoteError as err:
        print(f"mote {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`mote inspect x | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
