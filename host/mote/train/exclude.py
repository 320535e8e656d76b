"""Keep held-out text out of training data, by content rather than by file name.

A document is compared with the held-out text through its word 8-grams ("shingles":
lower-cased runs of letters and digits, so line breaks, punctuation, headings and
verse numbers do not matter). A document sharing at least MAX_SHARED of its shingles
with the held-out text is dropped: the held-out documents themselves share all of
theirs (however the corpus formats them), other documents only phrases (on the
default corpus against the reference models' heldout.txt: 28 documents share 99 %
or more, the next one 21 %, a parallel passage, also dropped, and 3,265 share none).
What remains is measured too: the share of held-out shingles still found in the kept
documents (common phrases such as "and it came to pass that"), which the report gives.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from mote.model import MoteError

SHINGLE_WORDS = 8
MAX_SHARED = 0.05


def shingles(text: str) -> set[int]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {zlib.crc32(" ".join(words[i : i + SHINGLE_WORDS]).encode())
            for i in range(len(words) - SHINGLE_WORDS + 1)}


@dataclass
class Exclusion:
    held_out: list[str]  # the held-out files
    held_shingles: int
    dropped: list[tuple[str, float]] = field(default_factory=list)  # (document, share of its shingles)
    kept_documents: int = 0
    leaked: float = 0.0  # share of the held-out shingles found in the kept documents

    def describe(self) -> str:
        return (f"held out by content ({SHINGLE_WORDS}-word shingles of {', '.join(self.held_out)}): "
                f"{len(self.dropped)} documents dropped (sharing >= {MAX_SHARED:.0%} of their shingles), "
                f"{self.kept_documents} kept; {self.leaked:.2%} of the held-out shingles still occur "
                "in the kept documents")


def exclude(docs: list[tuple[str, str]], held_out: list[Path]) -> tuple[list[tuple[str, str]], Exclusion]:
    """The documents of `docs` ((name, text) pairs) that are not held-out text."""
    held: set[int] = set()
    for path in held_out:
        try:
            held |= shingles(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise MoteError(f"cannot read held-out text {path}: {err}") from None
    if not held:
        raise MoteError(f"held-out text {', '.join(map(str, held_out))} has fewer than {SHINGLE_WORDS} words")
    report = Exclusion([str(p) for p in held_out], len(held))
    kept, kept_shingles = [], set()
    for name, text in docs:
        mine = shingles(text)
        share = len(mine & held) / len(mine) if mine else 0.0
        if share >= MAX_SHARED:
            report.dropped.append((name, round(share, 4)))
        else:
            kept.append((name, text))
            kept_shingles |= mine
    report.kept_documents = len(kept)
    report.leaked = len(held & kept_shingles) / len(held)
    if not kept:
        raise MoteError("every document is held-out text: nothing left to train on")
    return kept, report
