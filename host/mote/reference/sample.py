"""Token sampling, step for step the same as firmware/core/sample.c (docs/sampling.md),
so one seed gives one generation on every port and in the reference."""

from __future__ import annotations

import numpy as np

from mote.reference.mathf import expf_mote, sum_in_order

_MASK64 = (1 << 64) - 1
_DEFAULT_STATE = 0x9E3779B97F4A7C15


class Sampler:
    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0):
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        self.temperature = np.float32(temperature)
        self.top_p = np.float32(top_p)
        self.top_k = int(top_k)
        self.state = (seed & _MASK64) or _DEFAULT_STATE

    def random_u32(self) -> int:
        """xorshift64*, as llama2.c's sampler."""
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & _MASK64
        x ^= x >> 27
        self.state = x
        return ((x * 0x2545F4914F6CDD1D) & _MASK64) >> 32

    def random_f32(self) -> np.float32:
        return np.float32(self.random_u32() >> 8) / np.float32(16777216.0)

    def sample(self, logits: np.ndarray) -> int:
        logits = np.asarray(logits, np.float32)
        if self.temperature == 0:
            return int(np.argmax(logits))  # first maximum, no draw
        scaled = logits / self.temperature
        e = expf_mote(scaled - scaled.max())
        probs = e / sum_in_order(e)
        coin = self.random_f32()
        n = probs.shape[0]
        filter_k = 0 < self.top_k < n
        filter_p = 0 < self.top_p < 1
        if not (filter_k or filter_p):
            return _pick(np.cumsum(probs, dtype=np.float32), coin, np.arange(n))
        # by probability descending, ties by index ascending (a stable sort)
        order = np.argsort(-probs, kind="stable")
        if filter_k:
            order = order[: self.top_k]
        kept = probs[order]
        if filter_p:
            cdf = np.cumsum(kept, dtype=np.float32)
            reach = np.nonzero(cdf >= self.top_p)[0]
            cut = int(reach[0]) + 1 if reach.size else len(order)
            order, kept = order[:cut], kept[:cut]
        cdf = np.cumsum(kept, dtype=np.float32)
        return _pick(cdf, coin * cdf[-1], order)


def _pick(cdf: np.ndarray, r: np.float32, ids: np.ndarray) -> int:
    """First id whose cumulative probability exceeds r; the last one if none does."""
    hit = np.nonzero(r < cdf)[0]
    return int(ids[hit[0]] if hit.size else ids[-1])
