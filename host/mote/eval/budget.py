"""Sparsity thresholds per layer and per point, chosen for a budget by measured KL
divergence per byte saved (docs/blob-format.md, "Sparsity section"; README, "Dynamic
activation sparsity").

A budget is either a fraction of the dense model's weight bytes per token to skip
(`0.4`, or `bytes=0.4`) or a mean KL divergence from the dense model in nats per
token (`kl=0.02`), both on the calibration text. The thresholds are chosen in three
steps, all on the quantized model through the reference (exactly the firmware's
arithmetic):

1. Curves. For every layer and point alone, and every drop level (the fraction of
   that point's calibration activations at or below the threshold: LEVELS, or the
   levels given), measure the weight bytes per token it saves (counted as the
   runtime counts them: zero activation codes after quantization skip their
   columns, dropped neurons their bundles) and the KL divergence of the next-token
   distribution from the dense model's (the pass restarts at that layer from the
   saved residual stream).
2. Allocation. For a price lambda, every layer and point takes the level minimising
   KL - lambda x bytes saved (a Lagrangian relaxation: the best mix of levels on the
   lower convex hull of all the curves); lambda is bisected until the predicted
   bytes (or KL) meet the budget.
3. Check. The chosen thresholds run together; their KL and bytes are measured, and
   the allocation is redone with the budget corrected by the shortfall (the curves
   are one point at a time, the model runs them all at once), and at least past the
   last prediction when short, a few times.

A ReLU model's gate keeps its exact zeros at no cost (threshold 0, "natural"), and
its levels are counted from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from mote.eval.perplexity import log_softmax
from mote.eval.sparsity import counting_runner
from mote.format.sparsity import POINTS, Sparsity
from mote.model import MoteError
from mote.quant.groups import n_groups, quantize_activations
from mote.reference.forward import Runner
from mote.reference.sparse import drop

LEVELS = (0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9)  # fractions of a point's activations dropped
CHECKS = 4  # allocation rounds corrected by the measured result


@dataclass
class Budget:
    kind: str  # "bytes": fraction of dense weight bytes per token skipped; "kl": nats per token
    value: float

    def __str__(self) -> str:
        return f"{self.value:g} of the weight bytes" if self.kind == "bytes" else f"KL {self.value:g} nats/token"


def parse_budget(spec: str) -> Budget:
    kind, _, value = spec.rpartition("=")
    kind = kind or "bytes"
    try:
        amount = float(value)
    except ValueError:
        amount = float("nan")
    if kind == "bytes" and 0 < amount <= 0.9:
        return Budget(kind, amount)
    if kind == "kl" and amount > 0:
        return Budget(kind, amount)
    raise MoteError(f"--sparsity must be a fraction of weight bytes to skip (0 < F <= 0.9, or bytes=F), "
                    f"a KL budget kl=NATS (> 0), or 'natural'; not {spec!r}")


@dataclass
class Curve:
    """One layer and point alone: per level, its threshold, bytes saved and KL."""

    layer: int
    point: str
    fractions: list[float]  # of the point's activations dropped (level 0: none, or ReLU's zeros)
    thresholds: list[float]
    saved: list[float]  # weight bytes per token saved against the dense model
    kl: list[float]  # mean KL(dense || this point sparse) in nats per token


@dataclass
class Allocation:
    sparsity: Sparsity
    budget: Budget
    dense_bytes: float  # weight bytes per token of the dense model
    bytes: float  # measured with the chosen thresholds on the calibration text
    kl: float
    levels: dict[str, list[float]]  # point -> fraction dropped per layer
    curves: list[Curve] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)  # each check: target, predicted, measured

    @property
    def skipped(self) -> float:
        return 1 - self.bytes / self.dense_bytes


def _column_bytes(v: np.ndarray, group: int, rows: int) -> np.ndarray:
    """Per position: the bytes a column kernel reads for input v (T, n) in a matrix of
    `rows` rows: one column per nonzero code, one scales block per active group."""
    codes = quantize_activations(v, group)[0] != 0
    return (codes.sum(axis=(1, 2)) + 2 * codes.any(axis=2).sum(axis=1)) * rows


class _Recorder(Runner):
    """The dense pass: each layer's input, each point's activations and the FFN's up
    projection (for what a dropped neuron saves of w_down)."""

    def __init__(self, blob):
        super().__init__(blob)
        self.sparsity = None
        self.record: dict = {}

    def _layer(self, x, layer, pos, cos, sin):
        self.record[("x", layer)] = x
        return super()._layer(x, layer, pos, cos, sin)

    def _drop(self, v, layer, point):
        self.record[(point, layer)] = v
        return v

    def _matmul(self, x, name):
        y = super()._matmul(x, name)
        if name.endswith("w_up"):
            self.record[("up", int(name.split(".")[1]))] = y
        return y


class _Windows:
    """The dense pass over the calibration windows, kept for the curves."""

    def __init__(self, blob, windows: list[list[int]]):
        self.blob, self.windows = blob, windows
        rec = _Recorder(blob)
        self.records, self.logp = [], []
        for ids in windows:
            rec.reset()
            rec.record = {}
            self.logp.append(log_softmax(rec.forward_batch(ids, 0)))
            self.records.append(rec.record)
        self.positions = sum(len(ids) for ids in windows)

    def values(self, key) -> np.ndarray:
        return np.concatenate([r[key] for r in self.records])


def _kl(logp_dense: np.ndarray, logp: np.ndarray) -> float:
    return float((np.exp(logp_dense) * (logp_dense - logp)).sum())


class Calibrator:
    """The dense pass over calibration windows, the curves it gives (measured once,
    on first use, unless given: curves measured earlier on the same blob and windows)
    and allocations of them for any number of budgets."""

    def __init__(self, blob, windows: list[list[int]], points: tuple[str, ...] = POINTS, progress: bool = False,
                 curves: list[Curve] | None = None, levels: tuple[float, ...] = LEVELS):
        unknown = set(points) - set(POINTS)
        if unknown:
            raise MoteError(f"unknown sparsity point(s) {sorted(unknown)}; choose from {', '.join(POINTS)}")
        if not windows:
            raise MoteError("calibration needs text")
        self.blob, self.c, self.group = blob, blob.config, blob.group_size
        self.points = tuple(p for p in POINTS if p in points)
        self.natural = blob.config.activation == "relu"
        self.progress = progress
        self.data = _Windows(blob, windows)
        self.runner = Runner(blob)
        self._curves = curves
        self.levels = levels  # fewer levels: cheaper curves, coarser choice

    # ---------------------------------------------------------------- bytes

    def dense_bytes(self) -> float:
        """Weight bytes per token of the dense model, as firmware/core/model.c counts."""
        total = 4 * self.c.dim * (2 * self.c.n_layers + 1)  # the norm vectors
        for name, t in self.blob.tensors.items():
            if name.endswith("norm"):
                continue
            if t.scales is None:
                total += 4 * t.cols if name == "tok_embedding" else 4 * t.rows * t.cols
            elif name == "tok_embedding":
                total += t.cols + 2 * n_groups(t.cols, self.group)
                if self.c.tied_classifier:
                    total += t.rows * (t.cols + 2 * n_groups(t.cols, self.group))
            else:
                total += t.rows * (t.cols + 2 * n_groups(t.cols, self.group))
        return float(total)

    def point_bytes(self, layer: int, point: str, threshold: float) -> float:
        """Mean weight bytes per token that the matrices after (layer, point) read with
        only this threshold (see the module's docstring)."""
        c, g = self.c, self.group
        v = drop(self.data.values((point, layer)), threshold)
        if point == "attn_in":
            return float(np.mean(_column_bytes(v, g, c.q_dim) + 2 * _column_bytes(v, g, c.kv_dim)))
        if point == "attn_out":
            return float(np.mean(_column_bytes(v, g, c.dim)))
        if point == "ffn_in":  # w_gate; w_up is bundled under the gate point
            return float(np.mean(_column_bytes(v, g, c.hidden_dim)))
        kept = (v != 0).sum(axis=1)
        h = v * self.data.values(("up", layer))
        return float(np.mean(kept * (c.dim + 2 * n_groups(c.dim, g)) + _column_bytes(h, g, c.dim)))

    def point_dense_bytes(self, point: str) -> float:
        c, g = self.c, self.group
        rows = {"attn_in": [(c.q_dim, c.dim), (c.kv_dim, c.dim), (c.kv_dim, c.dim)],
                "attn_out": [(c.dim, c.q_dim)], "ffn_in": [(c.hidden_dim, c.dim)],
                "gate": [(c.hidden_dim, c.dim), (c.dim, c.hidden_dim)]}[point]
        return float(sum(r * (k + 2 * n_groups(k, g)) for r, k in rows))

    # ---------------------------------------------------------------- curves

    def curve(self, layer: int, point: str) -> Curve:
        mags = np.abs(self.data.values((point, layer))).ravel()
        base = float(np.mean(mags == 0)) if (self.natural and point == "gate") else 0.0
        fractions = [base] + [base + (1 - base) * f for f in self.levels]
        thresholds = [0.0] + [float(np.quantile(mags, f, method="lower")) for f in fractions[1:]]
        dense = self.point_dense_bytes(point)
        on_at_zero = self.natural and point == "gate"
        saved = [dense - self.point_bytes(layer, point, 0.0) if on_at_zero else 0.0]
        saved += [dense - self.point_bytes(layer, point, t) for t in thresholds[1:]]
        kl = [0.0] + [self._kl_alone(layer, point, t) for t in thresholds[1:]]
        return Curve(layer, point, fractions, thresholds, saved, kl)

    def _kl_alone(self, layer: int, point: str, threshold: float) -> float:
        """KL from dense with only (layer, point) sparse: each window restarts at the
        layer from its saved residual stream."""
        t = np.zeros((self.c.n_layers, len(POINTS)), np.float32)
        t[layer, POINTS.index(point)] = threshold
        self.runner.sparsity = Sparsity((point,), t)
        total = 0.0
        for rec, logp in zip(self.data.records, self.data.logp):
            total += _kl(logp, log_softmax(self.runner.run_layers(rec[("x", layer)], 0, layer)))
        return total / self.data.positions

    # ---------------------------------------------------------------- allocation

    @staticmethod
    def choose(curves: list[Curve], price: float) -> list[int]:
        return [int(np.argmin(np.asarray(cv.kl) - price * np.asarray(cv.saved))) for cv in curves]

    def allocate(self, curves: list[Curve], kind: str, target: float) -> tuple[list[int], float]:
        """The levels whose predicted total (bytes saved, or KL) meets `target` at the
        lowest price (bytes) or the highest (KL); returns them and the prediction."""

        def total(levels):
            what = "saved" if kind == "bytes" else "kl"
            return sum(getattr(cv, what)[k] for cv, k in zip(curves, levels))

        lo, hi = 1e-12, 1e3  # KL per byte: far below and above any curve's slope
        for _ in range(80):
            mid = np.sqrt(lo * hi)
            enough = total(self.choose(curves, mid)) >= target
            if kind == "bytes":
                lo, hi = (lo, mid) if enough else (mid, hi)
            else:
                lo, hi = (mid, hi) if not enough else (lo, mid)
        price = hi if kind == "bytes" else lo
        levels = self.choose(curves, price)
        return levels, total(levels)

    def sparsity_of(self, curves: list[Curve], levels: list[int]) -> Sparsity:
        t = np.zeros((self.c.n_layers, len(POINTS)), np.float32)
        on = set()
        for cv, k in zip(curves, levels):
            t[cv.layer, POINTS.index(cv.point)] = cv.thresholds[k]
            if k > 0 or (self.natural and cv.point == "gate"):
                on.add(cv.point)
        return Sparsity(tuple(p for p in POINTS if p in on), t)

    def measure(self, sp: Sparsity) -> tuple[float, float]:
        """(weight bytes per token, mean KL) of `sp` on the calibration windows."""
        runner = counting_runner(self.blob)
        runner.sparsity = sp
        kl, read = 0.0, 0
        for ids, logp in zip(self.data.windows, self.data.logp):
            runner.reset()
            kl += _kl(logp, log_softmax(runner.forward_batch(ids, 0)))
            read += sum(r.bytes for r in runner.reads)
        return read / self.data.positions, kl / self.data.positions


    def curves(self) -> list[Curve]:
        if self._curves is None:
            pairs = [(layer, p) for p in self.points for layer in range(self.c.n_layers)]
            self._curves = [self.curve(layer, p) for layer, p in
                            tqdm(pairs, desc="sparsity curves", unit="point", disable=not self.progress, leave=False)]
        return self._curves

    def allocation(self, budget: Budget) -> Allocation:
        """Thresholds meeting `budget` on the calibration windows (the module docstring)."""
        curves = self.curves()
        dense = self.dense_bytes()
        natural_saved = sum(cv.saved[0] for cv in curves)
        if budget.kind == "bytes" and budget.value * dense < natural_saved:
            # ReLU's zeros alone already skip more than asked
            levels = [0] * len(curves)
            sp = self.sparsity_of(curves, levels)
            read, kl = self.measure(sp)
            sp.target = float(1 - read / dense)
            return Allocation(sp, budget, dense, read, kl, _levels(curves, levels), curves)
        goal = budget.value * dense if budget.kind == "bytes" else budget.value
        target, rounds, best = goal, [], None
        for _ in range(CHECKS):
            levels, predicted = self.allocate(curves, budget.kind, target)
            sp = self.sparsity_of(curves, levels)
            read, kl = self.measure(sp)
            measured = dense - read if budget.kind == "bytes" else kl
            rounds.append({"target": target, "predicted": predicted, "measured": measured, "bytes": read, "kl": kl})
            meets = measured >= goal if budget.kind == "bytes" else measured <= goal
            if meets and (best is None or (kl < best[3] if budget.kind == "bytes" else read < best[2])):
                best = (sp, levels, read, kl)
            if meets and abs(measured - goal) <= 0.02 * goal:
                break
            aim = target + (goal - measured)  # past the shortfall (or back from the excess)
            if not meets:  # and past this allocation's prediction, or the levels may not change
                aim = max(aim, float(np.nextafter(predicted, np.inf))) if budget.kind == "bytes" else min(aim, predicted)
            target = max(0.0, aim)
        if best is None:
            raise MoteError(f"no thresholds meet the budget {budget} on the calibration text "
                            f"(closest: {rounds[-1]['measured']:.4g})")
        sp, levels, read, kl = best
        sp.target = float(1 - read / dense)
        return Allocation(sp, budget, dense, read, kl, _levels(curves, levels), curves, rounds)


def allocate(blob, windows: list[list[int]], budget: Budget, points: tuple[str, ...] = POINTS,
             progress: bool = False) -> Allocation:
    """Thresholds meeting `budget` on the calibration windows (see the module docstring)."""
    return Calibrator(blob, windows, points, progress).allocation(budget)


def _levels(curves: list[Curve], levels: list[int]) -> dict[str, list[float]]:
    """The fraction dropped per point and layer (curves run point by point, layer by layer)."""
    out: dict[str, list[float]] = {}
    for cv, k in zip(curves, levels):
        out.setdefault(cv.point, []).append(round(cv.fractions[k], 4))
    return out
