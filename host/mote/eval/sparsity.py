"""Sparsity measured on the reference: threshold calibration on text, counted weight
reads, and the comparison of a sparse model with its dense twin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from mote.eval.perplexity import adds_bos, log_probs, windows
from mote.format.sparsity import LAYOUT_BUNDLED, LAYOUT_COLUMNS, LAYOUT_ROWS, POINTS, Sparsity, layout_of
from mote.model import Config, MoteError
from mote.quant.groups import quantize_activations
from mote.reference.forward import Runner
from mote.reference.sparse import Reads, count_bundled, count_columns, dense_matrix_bytes

# ------------------------------------------------------------------ calibration


def calibrate(blob, token_windows: list[list[int]], target: float, points: tuple[str, ...] = POINTS,
              natural: bool = False) -> tuple[Sparsity, dict]:
    """Uniform thresholds: a fraction `target` of each layer's activations at each
    point dropped on the calibration tokens (the `target` quantile of |v|), the
    baseline that mote.eval.budget improves on (tests and bench/sparsity.py use it).
    `natural` (ReLU models): the gate only, threshold 0, i.e. exactly the zeros ReLU
    makes. Returns the Sparsity and the measured fraction dropped per layer and point
    (for natural, the ReLU model's own sparsity)."""

    c = blob.config
    if not 0.0 <= target <= 0.9:
        raise MoteError(f"sparsity {target} outside 0..0.9")
    if natural:
        if c.activation != "relu":
            raise MoteError("natural sparsity needs a ReLU model (its gate's exact zeros)")
        points = ("gate",)
    unknown = set(points) - set(POINTS)
    if unknown:
        raise MoteError(f"unknown sparsity point(s) {sorted(unknown)}; choose from {', '.join(POINTS)}")
    points = tuple(p for p in POINTS if p in points)

    samples: dict[tuple[int, str], list[np.ndarray]] = {}

    class Recorder(Runner):
        def _drop(self, v, layer, point):
            samples.setdefault((layer, point), []).append(np.abs(v).ravel())
            return v

    runner = Recorder(blob)
    runner.sparsity = None
    for ids in token_windows:
        runner.reset()
        runner.forward_batch(ids, 0)

    if not natural and not token_windows:
        raise MoteError("calibration needs text")
    thresholds = np.zeros((c.n_layers, len(POINTS)), np.float32)
    dropped: dict = {p: [] for p in points} if token_windows else {}
    for p in points:
        for layer in range(c.n_layers):
            if not token_windows:
                continue
            mags = np.concatenate(samples[(layer, p)])
            # S = 0 (and natural): threshold 0 drops only exact zeros, i.e. the dense result
            exact_zeros = natural or target == 0
            thr = np.float32(0) if exact_zeros else np.float32(np.quantile(mags, target, method="lower"))
            thresholds[layer, POINTS.index(p)] = thr
            dropped[p].append(float(np.mean(mags <= thr)))
    return Sparsity(points, thresholds, 0.0 if natural else float(target)), dropped


def calibration_windows(tok, text: str, ctx: int, max_tokens: int) -> list[list[int]]:
    """The text's first max_tokens tokens, cut into windows of the context (BOS
    first for llama2.c models, as perplexity evaluation does)."""

    ids = tok.encode(text, bos=False)[:max_tokens]
    bos = adds_bos(tok)
    window = ctx - 1 if bos else ctx
    out = [([tok.bos_id] if bos else []) + ids[i : i + window] for i in range(0, len(ids), window)]
    out = [w for w in out if len(w) >= 2]
    if not out:
        raise MoteError("calibration text too short: fewer than 2 tokens")
    return out


def describe(sp: Sparsity, config: Config) -> str:
    mean = {p: float(np.mean(sp.thresholds[:, POINTS.index(p)])) for p in sp.points}
    return ", ".join(f"{p} (mean threshold {mean[p]:.4g})" for p in sp.points)


def counting_runner(blob, **kwargs):
    """A reference Runner over `blob` that also counts, per position of each
    forward_batch, the weights read (its `reads`: one Reads per position), by the
    rules of firmware/core/model.c: column kernels skip zero codes, CATS reads the
    bundles of kept neurons only, everything else is read whole."""

    class CountingRunner(Runner):
        def forward_batch(self, tokens, pos):
            c = self.config
            self.reads = [Reads(bytes=4 * c.dim * (2 * c.n_layers + 1)) for _ in range(len(tokens))]
            return super().forward_batch(tokens, pos)

        def _embed(self, tokens):
            t = blob.tensors["tok_embedding"]
            row = 4 * t.cols if t.scales is None else dense_matrix_bytes(1, t.cols, t.dtype, blob.group_size)
            for r in self.reads:
                r.rows += 1
                r.bytes += row
            return super()._embed(tokens)

        def _drop(self, v, layer, point):
            out = super()._drop(v, layer, point)
            if point == "gate":
                self._kept_neurons = out != 0
            return out

        def _matmul(self, x, name):
            t = blob.tensors[name]
            layout = layout_of(name, self.sparsity)
            group = blob.group_size
            if layout == LAYOUT_COLUMNS:
                codes = quantize_activations(x, group)[0]
                for r, xq in zip(self.reads, codes):
                    count_columns(r, t.rows, xq)
            elif layout == LAYOUT_BUNDLED and name.endswith("w_down"):
                codes = quantize_activations(x, group)[0]
                for r, kept, hq in zip(self.reads, self._kept_neurons, codes):
                    count_bundled(r, t.rows, group, kept, hq)
            elif layout == LAYOUT_ROWS:
                size = 4 * t.rows * t.cols if t.scales is None else dense_matrix_bytes(t.rows, t.cols, t.dtype, group)
                for r in self.reads:
                    r.rows += t.rows
                    r.bytes += size
            return super()._matmul(x, name)

    return CountingRunner(blob, **kwargs)


@dataclass
class Comparison:
    tokens: int
    nll: float  # the sparse model's mean negative log-likelihood (nats/token)
    dense_nll: float
    kl: float  # mean KL(dense || sparse) of the next-token distributions (nats)

    @property
    def ppl(self) -> float:
        return float(np.exp(self.nll))

    @property
    def dense_ppl(self) -> float:
        return float(np.exp(self.dense_nll))


def compare(sparse_runner, dense_runner, tok, text: str, max_tokens: int | None = None,
            progress: bool = False) -> Comparison:
    """Perplexity of both runners and the mean KL divergence from the dense model's
    next-token distribution, over the windows mote.eval.perplexity scores."""
    ids = tok.encode(text, bos=False)[:max_tokens]
    if len(ids) < 2:
        raise MoteError("text too short to evaluate: fewer than 2 tokens")
    nll = dense_nll = kl = 0.0
    count = 0
    for inputs in tqdm(list(windows(tok, ids, sparse_runner.ctx)), desc="eval", unit="window",
                       disable=not progress):
        for (logp, targets), (dense_logp, _) in zip(log_probs(sparse_runner, inputs),
                                                    log_probs(dense_runner, inputs)):
            rows = np.arange(len(targets))
            nll -= float(logp[rows, targets].sum())
            dense_nll -= float(dense_logp[rows, targets].sum())
            kl += float((np.exp(dense_logp) * (dense_logp - logp)).sum())
            count += len(targets)
    return Comparison(count, nll / count, dense_nll / count, kl / count)
