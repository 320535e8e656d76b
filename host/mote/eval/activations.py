"""Activation statistics on calibration text, for activation-aware quantization
(mote.quant): what each matrix of the float model sees at its input."""

from __future__ import annotations

import numpy as np

from mote.model import Model
from mote.reference.forward import Runner

# Longest window the statistics are gathered over: attention over longer contexts
# changes little in what the matrices see, and the cost grows with the window.
MAX_WINDOW = 256


def input_grams(model: Model, windows: list[list[int]]) -> dict[str, np.ndarray]:
    """For every matrix (tensor name; the tied classifier is tok_embedding), the mean
    over the calibration positions of x x^T, x its input: float64 (cols, cols). Its
    diagonal is each input channel's mean square."""
    sums: dict[str, np.ndarray] = {}
    count = 0
    last: list = [None, None]  # wq, wk, wv (w_gate, w_up) see the same input: one product

    class Recorder(Runner):
        def _matmul(self, x, name):
            if x is not last[0]:
                x64 = x.astype(np.float64)
                last[:] = [x, x64.T @ x64]
            sums[name] = sums.get(name, 0.0) + last[1]
            return super()._matmul(x, name)

    runner = Recorder(model)
    for ids in windows:
        runner.reset()
        runner.forward_batch(ids, 0)
        count += len(ids)
    return {name: total / count for name, total in sums.items()}
