"""What each matrix costs at 4 bits, measured: the mean KL divergence of the
next-token distribution from the all-q8 model's when that one matrix is q4 (or q4a)
(mote.quant.precision chooses from these costs for `mote convert --quant auto`)."""

from __future__ import annotations

import numpy as np

from mote.eval.perplexity import log_softmax
from mote.format.blob import Blob, BlobTensor
from mote.reference.forward import Runner


class _Recorder(Runner):
    """Keeps the residual stream entering each layer (and leaving the last one)."""

    def _layer(self, x, layer, pos, cos, sin):
        self.entering[layer] = x
        out = super()._layer(x, layer, pos, cos, sin)
        self.entering[layer + 1] = out
        return out


def _first_layer(name: str, n_layers: int) -> int | None:
    """The first layer a tensor changes: None for the embedding (everything), the
    layer count for an untied classifier (the head alone)."""
    if name == "tok_embedding":
        return None
    return int(name.split(".")[1]) if name.startswith("layers.") else n_layers


def matrix_costs(q8: Blob, variants: dict[str, BlobTensor], windows: list[list[int]]) -> dict[str, float]:
    """Mean KL(all-q8 || one matrix replaced) per position of the windows, per matrix
    in `variants` (its 4-bit form). Each variant runs only from the first layer it changes, from the residual
    stream the all-q8 model had there."""
    recorder = _Recorder(q8)
    base = []
    for ids in windows:
        recorder.reset()
        recorder.entering = {}
        logp = log_softmax(recorder.forward_batch(ids, 0))
        base.append((recorder.entering, logp.astype(np.float32), np.exp(logp).astype(np.float32)))
    positions = sum(len(ids) for ids in windows)
    runner = Runner(q8)
    costs = {}
    for name, tensor in variants.items():
        runner.set_tensor(tensor)
        first = _first_layer(name, q8.config.n_layers)
        kl = 0.0
        for ids, (entering, logp, p) in zip(windows, base):
            runner.reset()
            logits = runner.forward_batch(ids, 0) if first is None else runner.run_layers(entering[first], 0, first)
            kl += float(np.sum(p * (logp - log_softmax(logits)), dtype=np.float64))
        costs[name] = kl / positions
        runner.set_tensor(q8.tensors[name])
    return costs
