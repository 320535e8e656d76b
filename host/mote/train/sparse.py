"""Activation sparsity inside the training loop (docs/training.md, "Sparse models").

Two things, at the four points the runtime can sparsify (mote.format.sparsity.POINTS):

- thresholds in the loop: at every point named in `drop`, activations of magnitude at
  or below the layer's threshold are set to 0 in the forward pass, exactly as the
  runtime drops them, with a straight-through gradient (the backward pass sees the
  identity, so a dropped activation still learns). Each threshold tracks the quantile
  of |v| that drops the point's fraction, measured on the training batches (an
  exponential average over steps), i.e. the TEAL/CATS calibration redone as the
  model changes; the fractions ramp up from 0 over the first `drop_ramp` of the budget.
- an L1 penalty on the activations at `l1_points` (by default the FFN's activated
  gate, whose zeros CATS skips): the mean |v| per layer, summed over layers, times a
  strength raised in stages (ProSparse).
"""

from __future__ import annotations

import torch

from mote.format.sparsity import POINTS
from mote.train.config import TrainConfig

# |v| values sampled per layer and point for a threshold update: every k-th, so
# that the quantile costs little next to the matrix products
QUANTILE_SAMPLE = 1 << 15
THRESHOLD_MOMENTUM = 0.9


class LoopSparsity:
    """The hook the model calls at every point: `hook(v, layer, point)` returns v with
    the drops applied, and adds v's L1 term to `penalty`."""

    def __init__(self, c: TrainConfig):
        self.c = c
        self.thresholds = torch.zeros(c.n_layers, len(POINTS))
        self.seen = torch.zeros(c.n_layers, len(POINTS), dtype=torch.bool)
        self.ramp = 0.0  # the share of each drop fraction in force now
        self.learning = False  # thresholds follow the batches (training steps only)
        self.penalty = torch.zeros(())
        # the fraction of exact zeros per point and layer since begin(): sums, passes
        self._zeros: dict[str, list[list[float]]] = {}

    @property
    def active(self) -> bool:
        return bool(self.c.drop or self.c.l1)

    def begin(self, progress: float, learning: bool) -> float:
        """Set up for one forward pass at `progress` (0..1) of the budget; returns the
        L1 strength of the stage."""
        c = self.c
        self.ramp = min(1.0, progress / c.drop_ramp)
        self.learning = learning
        self.penalty = torch.zeros(())
        self._zeros = {}
        return c.l1[min(int(progress * len(c.l1)), len(c.l1) - 1)] if c.l1 else 0.0

    def __call__(self, v: torch.Tensor, layer: int, point: str) -> torch.Tensor:
        c = self.c
        if c.l1 and point in c.l1_points and torch.is_grad_enabled():
            self.penalty = self.penalty + v.abs().mean()
        fraction = c.drop.get(point, 0.0) * self.ramp
        if fraction > 0:
            i = POINTS.index(point)
            if self.learning:
                self._learn(v, layer, i, fraction)
            keep = v.abs() > self.thresholds[layer, i]
            v = v + (v * keep - v).detach()  # forward: the drops; backward: identity
        with torch.no_grad():
            sums = self._zeros.setdefault(point, [[0.0, 0] for _ in range(c.n_layers)])[layer]
            sums[0] += float((v == 0).float().mean())
            sums[1] += 1
        return v

    def _learn(self, v: torch.Tensor, layer: int, i: int, fraction: float) -> None:
        with torch.no_grad():
            flat = v.detach().abs().flatten()
            sample = flat[:: max(1, flat.numel() // QUANTILE_SAMPLE)]
            k = min(sample.numel(), max(1, round(fraction * sample.numel())))
            quantile = torch.kthvalue(sample, k).values
            old = self.thresholds[layer, i]
            self.thresholds[layer, i] = (quantile if not self.seen[layer, i]
                                         else THRESHOLD_MOMENTUM * old + (1 - THRESHOLD_MOMENTUM) * quantile)
            self.seen[layer, i] = True

    def state_dict(self) -> dict:
        return {"thresholds": self.thresholds.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.thresholds = state["thresholds"].clone()
        self.seen = state["seen"].clone()

    def zeros(self) -> dict[str, list[float]]:
        """The mean fraction of exact zeros per point and layer since begin()."""
        return {p: [s / n if n else 0.0 for s, n in layers] for p, layers in self._zeros.items()}

    def summary(self) -> dict[str, float]:
        """The same, averaged over layers."""
        return {p: sum(v) / len(v) for p, v in self.zeros().items()}
