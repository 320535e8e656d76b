"""Perplexity through the numpy reference, for float checkpoints and for blobs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mote.format import blob as blobfile
from mote.format.blob import Blob
from mote.importers import load_model
from mote.model import Model, MoteError
from mote.reference.forward import Runner
from mote.tokenizer import KIND_LLAMA2C, Tokenizer


def load_any(source: Path, tokenizer: Path | None = None) -> Model | Blob:
    """A .mote blob, or any checkpoint the importers read."""
    source = Path(source)
    if blobfile.is_blob(source):
        if tokenizer is not None:
            raise MoteError(f"{source}: a .mote blob carries its own tokenizer; drop --tokenizer")
        return blobfile.load(source)
    return load_model(source, tokenizer)


def tokenizer_of(source: Model | Blob) -> Tokenizer:
    if isinstance(source, Blob):
        return Tokenizer.from_section(source.tokenizer_section)
    return Tokenizer.from_data(source.tokenizer)


def adds_bos(tok: Tokenizer) -> bool:
    """llama2.c models see BOS first; the Hugging Face models here were trained on
    plain text (their tokenizer.json adds no special token), so they get none."""
    return tok.kind == KIND_LLAMA2C


def stop_ids(tok: Tokenizer) -> set[int]:
    """Generation ends at EOS, and at BOS, which llama2.c's models emit between stories."""
    return {i for i in (tok.bos_id, tok.eos_id) if i >= 0}


@dataclass
class Perplexity:
    tokens: int  # tokens scored
    nll: float  # mean negative log-likelihood, nats per token
    window: int

    @property
    def ppl(self) -> float:
        return math.exp(self.nll)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def windows(tok: Tokenizer, ids: list[int], ctx: int) -> Iterator[list[int]]:
    """The text's tokens cut into consecutive windows of the context, BOS first for
    llama2.c models: within a window every token is scored from the ones before it
    (the first token of a window only when BOS precedes it)."""
    bos = adds_bos(tok)
    length = ctx - 1 if bos else ctx
    for start in range(0, len(ids), length):
        inputs = ([tok.bos_id] if bos else []) + ids[start : start + length]
        if len(inputs) >= 2:
            yield inputs


# Positions run through the reference at a time: bounds the logits held (positions x
# vocabulary, in float64 for the softmax) for long windows and large vocabularies.
POSITIONS_PER_CALL = 128


def log_probs(runner: Runner, inputs: list[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(log-probabilities (n, vocab) float64, next tokens (n,)) for the positions of one
    window, a chunk of positions at a time; the runner's cache carries the window."""
    runner.reset()
    for begin in range(0, len(inputs) - 1, POSITIONS_PER_CALL):
        end = min(len(inputs) - 1, begin + POSITIONS_PER_CALL)
        yield log_softmax(runner.forward_batch(inputs[begin:end], begin)), np.asarray(inputs[begin + 1 : end + 1])


def perplexity(runner: Runner, tok: Tokenizer, text: str, max_tokens: int | None = None,
               progress: bool = False) -> Perplexity:
    """Perplexity over the text's windows (`windows`), every window scored from
    scratch."""
    ids = tok.encode(text, bos=False)[:max_tokens]
    if len(ids) < 2:
        raise MoteError("text too short to evaluate: fewer than 2 tokens")
    total, count = 0.0, 0
    for inputs in tqdm(list(windows(tok, ids, runner.ctx)), desc="eval", unit="window", disable=not progress):
        for logp, targets in log_probs(runner, inputs):
            total -= float(logp[np.arange(len(targets)), targets].sum())
            count += len(targets)
    return Perplexity(tokens=count, nll=total / count, window=runner.ctx)
