"""Perplexity through the numpy reference, for float checkpoints and for blobs."""

from __future__ import annotations

import math
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


def perplexity(runner: Runner, tok: Tokenizer, text: str, max_tokens: int | None = None,
               progress: bool = False) -> Perplexity:
    """Cut the text's tokens into consecutive windows of the runner's context and
    score every token from the preceding ones in its window (the first token of a
    window is scored only when BOS precedes it)."""
    ids = tok.encode(text, bos=False)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    bos = adds_bos(tok)
    window = runner.ctx - 1 if bos else runner.ctx
    if len(ids) < 2:
        raise MoteError("text too short to evaluate: fewer than 2 tokens")
    total, count = 0.0, 0
    starts = range(0, len(ids), window)
    for start in tqdm(starts, desc="eval", unit="window", disable=not progress):
        chunk = ids[start : start + window]
        inputs = ([tok.bos_id] + chunk) if bos else chunk
        if len(inputs) < 2:
            continue
        runner.reset()
        logp = log_softmax(runner.forward_batch(inputs[:-1], 0))
        targets = np.asarray(inputs[1:])
        total -= float(logp[np.arange(len(targets)), targets].sum())
        count += len(targets)
    return Perplexity(tokens=count, nll=total / count, window=runner.ctx)
