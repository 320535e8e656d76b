"""The numpy reference forward pass: the oracle the firmware is tested against.

A Runner runs either a float Model (plain float32, the quality baseline, checked
against transformers) or a Blob with exactly the firmware's arithmetic
(docs/blob-format.md, "Numerics"), bit for bit: activations quantized per group to
int8, int8 x int8 products summed per group, scaled in float32 and summed over groups
in order; int8 KV cache with one f16 scale per vector; every float sum in the
firmware's order.

Positions are processed in batches (`forward_batch`), vectorized across positions:
integer sums are exact in any order, so BLAS computes them; every float step is an
elementwise array operation, and a sum over an index is a loop over that index, each
step adding a whole array of outputs. So a batch gives the bits of the firmware's
token-by-token steps, whatever the number of BLAS threads, and perplexity evaluation
(`mote eval`) scores exactly what a board computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

from mote.format.blob import Blob, BlobTensor
from mote.model import Config, Model, MoteError
from mote.reference.mathf import expf_mote, sum_in_order
from mote.quant.groups import n_groups, quantize_activations, quantize_kv
from mote.reference.sparse import drop
from mote.reference.sample import Sampler


@dataclass
class _Quantized:
    """A q8, q4 or q4a matrix laid out for batched group sums: the codes of input
    group g at codes[g] (group, rows), zero padded past the last column."""

    codes: np.ndarray  # int8 (n_groups, group, rows)
    scales: np.ndarray  # float32 (n_groups, rows): f32(ws)
    offsets: np.ndarray | None  # float32 (n_groups, rows): q4a's f32(m); None otherwise


def _prepare_quantized(t: BlobTensor, group: int) -> _Quantized:
    ng = n_groups(t.cols, group)
    codes = np.zeros((ng * group, t.rows), np.int8)
    codes[: t.cols] = t.values.T
    if t.dtype == "q4a":
        scales, offsets = t.scales[..., 0], np.ascontiguousarray(t.scales[..., 1].T, np.float32)
    else:
        scales, offsets = t.scales, None
    return _Quantized(codes.reshape(ng, group, t.rows), np.ascontiguousarray(scales.T, np.float32), offsets)


# Group sums computed at a time (n_groups * positions * rows): bounds the temporaries
# of one matrix product to a few MB whatever the model and the batch.
_SUMS_PER_BLOCK = 1 << 18


def _qmatmul(x: np.ndarray, w: _Quantized) -> np.ndarray:
    """y = W x for a batch x (T, n), as the firmware's matvec computes each position:
    y[r] = sum over groups g in order of (float)isum[g, r] * (f32(ws[r, g]) * sx[g]),
    and for q4a after each such term (float)asum[g] * (f32(m[r, g]) * sx[g]), asum[g]
    the sum of the group's activation codes (kernels.h, mote_ref_matvec).
    The integer group sums isum are float32 matrix products of int8 codes: every
    partial sum is an integer below 127*127*1024 < 2^24, so exact in any order BLAS
    adds in; everything after them is elementwise, in the firmware's order."""
    ng, group, rows = w.codes.shape
    T = x.shape[0]
    xq, xs = quantize_activations(x, group)  # (T, ng, group), (T, ng)
    xq = np.ascontiguousarray(xq.transpose(1, 0, 2), np.float32)  # (ng, T, group)
    xs = np.ascontiguousarray(xs.T)  # (ng, T)
    asum = xq.sum(axis=-1) if w.offsets is not None else None  # (ng, T), exact integers
    y = np.empty((T, rows), np.float32)
    step = max(1, _SUMS_PER_BLOCK // (ng * T))
    for begin in range(0, rows, step):
        end = min(rows, begin + step)
        terms = np.matmul(xq, w.codes[:, :, begin:end].astype(np.float32))  # (ng, T, rb)
        terms *= w.scales[:, None, begin:end] * xs[:, :, None]
        offset_terms = None if asum is None else \
            asum[:, :, None] * (w.offsets[:, None, begin:end] * xs[:, :, None])
        acc = np.zeros((T, end - begin), np.float32)
        for g in range(ng):  # the sum over groups in order, all outputs at once
            acc += terms[g]
            if offset_terms is not None:
                acc += offset_terms[g]
        y[:, begin:end] = acc
    return y


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    ss = sum_in_order(x * x) / np.float32(x.shape[-1]) + np.float32(eps)
    inv = np.float32(1) / np.sqrt(ss, dtype=np.float32)
    return weight * (inv[:, None] * x)


def rope_tables(config: Config, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin (T, head_dim/2), computed in double and rounded, as the firmware does."""
    freq = np.power(float(config.rope_theta), -np.arange(0, config.head_dim, 2) / config.head_dim)
    angle = positions.astype(np.float64)[:, None] * freq[None, :]
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Interleaved pairs (2i, 2i+1) of every head; x is (T, heads, head_dim)."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    e = expf_mote(x - x.max(axis=-1, keepdims=True))
    return e / sum_in_order(e)[..., None]


# Scores computed at a time (heads * queries * positions): few enough to stay in the
# cache while the sum over the head's dims runs.
_SCORES_PER_BLOCK = 1 << 16
# Attention weights held at a time for the sum over positions (heads * queries *
# positions): bounds attention's memory for long contexts.
_WEIGHTS_PER_BLOCK = 1 << 22


def _attention_weights(qt: np.ndarray, kt: np.ndarray, key_scales: np.ndarray, value_scales: np.ndarray,
                       pos: int, a: int, b: int) -> np.ndarray:
    """a[t] * f32(vs_t) for queries a..b-1 (at positions pos+a..) over the positions
    0..pos+b-1 they may see, as (position, kv head, query head, query): zero where a
    query may not look. qt (kv head, dim, query head, query), kt (kv head, dim, position)."""
    n_kv, hd, group = qt.shape[:3]
    n = pos + b
    dot = np.zeros((n_kv, group, b - a, n), np.float32)
    term = np.empty_like(dot)
    for i in range(hd):  # score: the sum over the head's dims in order
        np.multiply(qt[:, i, :, a:b, None], kt[:, None, None, i, :n], out=term)
        dot += term
    dot *= key_scales[:n]
    dot /= np.sqrt(np.float32(hd))
    dot[..., np.arange(n)[None, :] > pos + np.arange(a, b)[:, None]] = -np.inf
    weights = softmax(dot)
    weights *= value_scales[:n]
    return weights.transpose(3, 0, 1, 2)


def attention(q: np.ndarray, keys: np.ndarray, key_scales: np.ndarray, values: np.ndarray,
              value_scales: np.ndarray, pos: int) -> np.ndarray:
    """Grouped-query attention of queries q (T, heads, hd) at positions pos..pos+T-1
    over keys and values (pos+T, kv_heads, hd): cached codes (or floats, with scales
    of 1) and their scales (pos+T,). Every sum runs in the firmware's order (over the
    head's dims for a score, over positions for an output), one array of outputs per
    step; blocks of queries see only the positions up to their last one."""
    T, n_heads, hd = q.shape
    n_kv = keys.shape[1]
    group = n_heads // n_kv
    # (kv head, dim, query head of the group, query): the heads sharing a kv head together
    qt = np.ascontiguousarray(q.reshape(T, n_kv, group, hd).transpose(1, 3, 2, 0))
    kt = np.ascontiguousarray(keys.transpose(1, 2, 0))  # (kv head, dim, position)
    out = np.empty((n_kv, group, T, hd), np.float32)
    span = max(1, _WEIGHTS_PER_BLOCK // (n_heads * (pos + T)))
    for a in range(0, T, span):
        b = min(T, a + span)
        n = pos + b
        weights = np.zeros((n, n_kv, group, b - a), np.float32)
        step = max(1, _SCORES_PER_BLOCK // (n_heads * n))
        for c in range(a, b, step):
            d = min(b, c + step)
            weights[: pos + d, :, :, c - a : d - a] = _attention_weights(qt, kt, key_scales, value_scales,
                                                                         pos, c, d)
        acc = np.zeros((n_kv, group, b - a, hd), np.float32)
        for t in range(n):  # output: the sum over positions in order, all outputs at once
            first = max(0, t - pos - a)  # the queries before position t do not see it
            acc[:, :, first:] += weights[t, :, :, first:, None] * values[t, :, None, None, :]
        out[:, :, a:b] = acc
    return out.transpose(2, 0, 1, 3).reshape(T, n_heads * hd)


@cache
def _blas() -> ThreadpoolController:
    """BLAS here computes many small products (the integer group sums have the group
    size as inner dimension): threads cost more in hand-offs than they save, and on a
    busy machine they spin (ref-11m int4, 2 threads: 8.6 tokens/s against 100 with
    one). The reference runs BLAS on one thread; its results do not depend on it."""
    return ThreadpoolController()


class Runner:
    """Forward pass with a KV cache for `ctx` positions: over a Blob, the firmware's
    arithmetic bit for bit; over a float Model, float32."""

    def __init__(self, source: Model | Blob, ctx: int | None = None):
        self.config = c = source.config
        self.quantized = isinstance(source, Blob)
        default_ctx = source.ctx_len if isinstance(source, Blob) else c.max_seq_len
        self.ctx = ctx or default_ctx
        if self.quantized:
            group = self._group = source.group_size
            tensors = source.tensors
            self._embedding = tensors["tok_embedding"]
            self.weights = {
                name: (_prepare_quantized(t, group) if t.scales is not None else t.values.astype(np.float32))
                for name, t in tensors.items()
            }
        else:
            self.weights = {name: np.asarray(t, np.float32) for name, t in source.tensors.items()}
        self.classifier_name = "tok_embedding" if c.tied_classifier else "classifier"
        # a blob's sparsity thresholds (None: dense); set to None to run the blob dense
        self.sparsity = source.sparsity if self.quantized else None
        self.reset()

    def set_tensor(self, t: BlobTensor) -> None:
        """Run with another quantized tensor in t.name's place (sensitivity measurements)."""
        assert self.quantized and t.scales is not None
        if t.name == "tok_embedding":
            self._embedding = t
        self.weights[t.name] = _prepare_quantized(t, self._group)

    def reset(self) -> None:
        c = self.config
        shape = (c.n_layers, self.ctx, c.n_kv_heads, c.head_dim)
        if self.quantized:
            self.k_codes = np.zeros(shape, np.int8)
            self.v_codes = np.zeros(shape, np.int8)
            self.k_scales = np.zeros(shape[:2], np.float16)
            self.v_scales = np.zeros(shape[:2], np.float16)
        else:
            self.k_cache = np.zeros(shape, np.float32)
            self.v_cache = np.zeros(shape, np.float32)

    # -------------------------------------------------------------- primitives

    def _matmul(self, x: np.ndarray, name: str) -> np.ndarray:
        w = self.weights[name]
        return _qmatmul(x, w) if isinstance(w, _Quantized) else x @ w.T

    def _drop(self, v: np.ndarray, layer: int, point: str) -> np.ndarray:
        """Dynamic sparsity (mote/sparsity.py): zero the values at or below the layer's
        threshold at this point, before they are quantized."""
        threshold = None if self.sparsity is None else self.sparsity.threshold(layer, point)
        return v if threshold is None else drop(v, threshold)

    def _embed(self, tokens: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return self.weights["tok_embedding"][tokens].copy()
        t = self._embedding
        group = -(-t.cols // t.scales.shape[1])
        rows = t.values[tokens].astype(np.float32)
        scales = t.scales[tokens].astype(np.float32)
        if t.dtype != "q4a":
            return rows * np.repeat(scales, group, axis=1)[:, : t.cols]
        scale = np.repeat(scales[..., 0], group, axis=1)[:, : t.cols]
        return rows * scale + np.repeat(scales[..., 1], group, axis=1)[:, : t.cols]

    def _cache(self, layer: int, pos: int, k: np.ndarray, v: np.ndarray):
        """Store k, v (T, kv_heads, head_dim) at pos..; return every cached key and
        value so far as (keys, key_scales, values, value_scales)."""
        end = pos + k.shape[0]
        if not self.quantized:
            self.k_cache[layer, pos:end] = k
            self.v_cache[layer, pos:end] = v
            ones = np.ones(end, np.float32)
            return self.k_cache[layer, :end], ones, self.v_cache[layer, :end], ones
        T = k.shape[0]
        kc, ks = quantize_kv(k.reshape(T, -1))
        vc, vs = quantize_kv(v.reshape(T, -1))
        self.k_codes[layer, pos:end] = kc.reshape(k.shape)
        self.v_codes[layer, pos:end] = vc.reshape(v.shape)
        self.k_scales[layer, pos:end] = ks
        self.v_scales[layer, pos:end] = vs
        return (
            self.k_codes[layer, :end].astype(np.float32),
            self.k_scales[layer, :end].astype(np.float32),
            self.v_codes[layer, :end].astype(np.float32),
            self.v_scales[layer, :end].astype(np.float32),
        )

    # ----------------------------------------------------------------- forward

    def forward_batch(self, tokens: list[int] | np.ndarray, pos: int) -> np.ndarray:
        """Logits (T, vocab) for tokens at positions pos .. pos+T-1, causally."""
        with _blas().limit(limits=1, user_api="blas"):
            return self._forward_batch(np.asarray(tokens, np.int64), pos)

    def _forward_batch(self, tokens: np.ndarray, pos: int) -> np.ndarray:
        c = self.config
        T = tokens.shape[0]
        if pos < 0 or pos + T > self.ctx:
            raise MoteError(f"positions {pos}..{pos + T - 1} exceed the context of {self.ctx}")
        if tokens.min() < 0 or tokens.max() >= c.vocab_size:
            raise MoteError(f"token id outside 0..{c.vocab_size - 1}")
        return self._run_layers(self._embed(tokens), pos, 0)

    def run_layers(self, x: np.ndarray, pos: int, first: int) -> np.ndarray:
        """Logits for the residual stream x (T, dim) entering layer `first` at positions
        pos..: the layers from `first` on (their caches), then the classifier."""
        with _blas().limit(limits=1, user_api="blas"):
            return self._run_layers(x, pos, first)

    def _run_layers(self, x: np.ndarray, pos: int, first: int) -> np.ndarray:
        c = self.config
        T = x.shape[0]
        cos, sin = rope_tables(c, np.arange(pos, pos + T))
        for layer in range(first, c.n_layers):
            x = self._layer(x, layer, pos, cos, sin)
        x = rmsnorm(x, self.weights["final_norm"], c.norm_eps)
        return self._matmul(x, self.classifier_name)

    def _layer(self, x: np.ndarray, layer: int, pos: int, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        c = self.config
        T = x.shape[0]
        p = f"layers.{layer}."
        xb = self._drop(rmsnorm(x, self.weights[p + "attn_norm"], c.norm_eps), layer, "attn_in")
        q = self._matmul(xb, p + "wq").reshape(T, c.n_heads, c.head_dim)
        k = self._matmul(xb, p + "wk").reshape(T, c.n_kv_heads, c.head_dim)
        v = self._matmul(xb, p + "wv").reshape(T, c.n_kv_heads, c.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = attention(q, *self._cache(layer, pos, k, v), pos)
        out = self._drop(out, layer, "attn_out")
        x = x + self._matmul(out, p + "wo")
        xb = self._drop(rmsnorm(x, self.weights[p + "ffn_norm"], c.norm_eps), layer, "ffn_in")
        gate = self._matmul(xb, p + "w_gate")
        up = self._matmul(xb, p + "w_up")
        if c.activation == "silu":
            act = gate / (np.float32(1) + expf_mote(-gate))
        else:
            act = np.maximum(gate, np.float32(0))
        act = self._drop(act, layer, "gate")  # CATS: a dropped neuron's h is 0
        return x + self._matmul(act * up, p + "w_down")

    def forward(self, token: int, pos: int) -> np.ndarray:
        return self.forward_batch([token], pos)[0]


# Every path refuses an empty prompt with the firmware's words (firmware/core/console.c):
# the console reads an empty line as no prompt, and a model with no BOS has nothing to
# start from, so "from BOS" (llama2.c) could not be one behaviour for every model.
EMPTY_PROMPT = "empty prompt"


def generate(
    runner: Runner,
    prompt_ids: list[int],
    max_new_tokens: int,
    sampler: Sampler,
    stop_ids: set[int] = frozenset(),
) -> list[int]:
    """Prefill the prompt, then sample up to max_new_tokens, stopping at a stop id
    (not included), at the end of the context, or at logits that are not all finite
    (generate.c's end=numeric). Returns the new token ids."""
    if not prompt_ids:
        raise MoteError(EMPTY_PROMPT)
    if len(prompt_ids) >= runner.ctx:
        raise MoteError(f"prompt of {len(prompt_ids)} tokens does not fit the context of {runner.ctx}")
    runner.reset()
    logits = runner.forward_batch(prompt_ids, 0)[-1]
    pos = len(prompt_ids)
    out: list[int] = []
    while len(out) < max_new_tokens:
        if not np.isfinite(logits).all():
            break
        token = sampler.sample(logits)
        if token in stop_ids:
            break
        out.append(token)
        if pos >= runner.ctx:
            break
        logits = runner.forward(token, pos)
        pos += 1
    return out
