"""The numpy reference forward pass: the oracle the firmware is tested against.

A Runner runs either a float Model (plain float32, the quality baseline, checked
against transformers) or a Blob with exactly the firmware's integer arithmetic
(docs/blob-format.md, "Numerics"): activations quantized per group to int8, int8 x
int8 products summed per group, scaled in float32 and summed over groups in order;
int8 KV cache with one f16 scale per vector.

Positions are processed in batches (`forward_batch`) so perplexity evaluation is
fast; a batch of one is the firmware's token-by-token step, and both give the same
numbers because every row is computed independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mote.format.blob import Blob, BlobTensor
from mote.model import Config, Model, MoteError
from mote.reference.mathf import expf_mote, sum_in_order
from mote.quant.groups import n_groups, quantize_activations, quantize_kv
from mote.reference.sparse import drop
from mote.reference.sample import Sampler


@dataclass
class _QuantWeight:
    codes_t: np.ndarray  # float32 (n_groups, group, rows): int8 codes, zero padded
    scales: np.ndarray  # float32 (rows, n_groups)
    group: int
    dequantized_t: np.ndarray  # float32 (n_groups·group, rows): codes · scales


def _prepare_quantized(t: BlobTensor, group: int) -> _QuantWeight:
    ng = n_groups(t.cols, group)
    padded = np.zeros((t.rows, ng * group), np.float32)
    padded[:, : t.cols] = t.values
    grouped = padded.reshape(t.rows, ng, group)
    scales = t.scales.astype(np.float32)
    codes_t = np.ascontiguousarray(grouped.transpose(1, 2, 0))
    dequantized_t = np.ascontiguousarray((grouped * scales[:, :, None]).reshape(t.rows, -1).T)
    return _QuantWeight(codes_t, scales, group, dequantized_t)


def _qmatmul(x: np.ndarray, w: _QuantWeight, exact: bool) -> np.ndarray:
    """y = W x for a batch x (T, n), the firmware's way. The per-group integer sums
    are computed as float32 matrix products: every partial sum is an integer below
    127·127·1024 < 2^24, so they are exact whatever order BLAS adds in. Without
    `exact`, the same quantized values are multiplied as one float matrix product,
    equal up to float rounding and much faster for long batches."""
    xq, xs = quantize_activations(x, w.group)  # (T, ng, G), (T, ng)
    if not exact:
        x_hat = (xq.astype(np.float32) * xs[:, :, None]).reshape(x.shape[0], -1)
        return x_hat @ w.dequantized_t
    xq_t = np.ascontiguousarray(xq.transpose(1, 0, 2), dtype=np.float32)  # BLAS needs contiguous
    isum = np.matmul(xq_t, w.codes_t)  # (ng, T, rows)
    y = np.zeros((x.shape[0], w.scales.shape[0]), np.float32)
    for g in range(isum.shape[0]):
        y += isum[g] * (w.scales[:, g][None, :] * xs[:, g][:, None])
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


def softmax(x: np.ndarray, exact: bool = True) -> np.ndarray:
    """The firmware's softmax (mote_expf, sums in order); without `exact`, numpy's exp
    and sum, equal up to float rounding and several times faster."""
    z = x - x.max(axis=-1, keepdims=True)
    if not exact:
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    e = expf_mote(z)
    return e / sum_in_order(e)[..., None]


def attention(q: np.ndarray, keys: np.ndarray, key_scales: np.ndarray, values: np.ndarray,
              value_scales: np.ndarray, mask: np.ndarray, exact: bool = True) -> np.ndarray:
    """Grouped-query attention. q (T, heads, hd); keys, values (S, kv_heads, hd) as
    cached codes (or floats with scales of 1); scales (S,); mask (T, S) True where a
    query may not look. `exact` follows the firmware's order of float operations
    (sums in order); otherwise BLAS adds in its own order, which differs in the last
    bits and is many times faster for scoring long texts."""
    T, n_heads, hd = q.shape
    group = n_heads // keys.shape[1]
    keys = np.repeat(keys, group, axis=1).transpose(1, 0, 2)  # (heads, S, hd)
    values = np.repeat(values, group, axis=1).transpose(1, 0, 2)
    qh = q.transpose(1, 0, 2)  # (heads, T, hd)
    if exact:
        dot = np.zeros((n_heads, T, keys.shape[1]), np.float32)
        for i in range(hd):  # in order over the head's dims
            dot += qh[:, :, i, None] * keys[:, None, :, i]
    else:
        dot = qh @ keys.transpose(0, 2, 1)
    scores = (dot * key_scales[None, None, :]) / np.sqrt(np.float32(hd))
    scores[:, mask] = -np.inf
    att = softmax(scores, exact)
    weights = att * value_scales[None, None, :]
    if exact:
        out = np.zeros((n_heads, T, hd), np.float32)
        for t in range(keys.shape[1]):  # in order over positions
            out += weights[:, :, t, None] * values[:, None, t, :]
    else:
        out = weights @ values
    return out.transpose(1, 0, 2).reshape(T, n_heads * hd)


class Runner:
    """Forward pass with a KV cache for `ctx` positions. With `exact` (the default)
    attention sums in the firmware's order, making the Runner the firmware's oracle;
    perplexity evaluation turns it off for speed."""

    def __init__(self, source: Model | Blob, ctx: int | None = None, exact: bool = True):
        self.config = c = source.config
        self.exact = exact
        self.quantized = isinstance(source, Blob)
        default_ctx = source.ctx_len if isinstance(source, Blob) else c.max_seq_len
        self.ctx = ctx or default_ctx
        if self.quantized:
            group = source.group_size
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
        return _qmatmul(x, w, self.exact) if isinstance(w, _QuantWeight) else x @ w.T

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
        scale = np.repeat(t.scales[tokens].astype(np.float32), group, axis=1)[:, : t.cols]
        return rows * scale

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
        x, frame = self.embed_batch(tokens, pos)
        for layer in range(self.config.n_layers):
            x = self.layer_batch(x, layer, frame)
        return self.logits_batch(x)

    # forward_batch in its three parts, so that a pass can also start at a layer from
    # a saved residual stream (mote.eval.sparsity's calibration does)

    def embed_batch(self, tokens: list[int] | np.ndarray, pos: int) -> tuple[np.ndarray, tuple]:
        """The embeddings of tokens at pos.., and the frame (pos, RoPE tables, causal
        mask) that layer_batch needs for them."""
        c = self.config
        tokens = np.asarray(tokens, np.int64)
        T = tokens.shape[0]
        if pos < 0 or pos + T > self.ctx:
            raise MoteError(f"positions {pos}..{pos + T - 1} exceed the context of {self.ctx}")
        if tokens.min() < 0 or tokens.max() >= c.vocab_size:
            raise MoteError(f"token id outside 0..{c.vocab_size - 1}")
        positions = np.arange(pos, pos + T)
        cos, sin = rope_tables(c, positions)
        # mask[t, s]: query at pos+t may see cached position s <= pos+t
        mask = np.arange(pos + T)[None, :] > positions[:, None]
        return self._embed(tokens), (pos, cos, sin, mask)

    def layer_batch(self, x: np.ndarray, layer: int, frame: tuple) -> np.ndarray:
        """The residual stream x (T, dim) after `layer` (its cache filled at pos..)."""
        c = self.config
        pos, cos, sin, mask = frame
        T = x.shape[0]
        p = f"layers.{layer}."
        xb = self._drop(rmsnorm(x, self.weights[p + "attn_norm"], c.norm_eps), layer, "attn_in")
        q = self._matmul(xb, p + "wq").reshape(T, c.n_heads, c.head_dim)
        k = self._matmul(xb, p + "wk").reshape(T, c.n_kv_heads, c.head_dim)
        v = self._matmul(xb, p + "wv").reshape(T, c.n_kv_heads, c.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = attention(q, *self._cache(layer, pos, k, v), mask, self.exact)
        out = self._drop(out, layer, "attn_out")
        x = x + self._matmul(out, p + "wo")
        xb = self._drop(rmsnorm(x, self.weights[p + "ffn_norm"], c.norm_eps), layer, "ffn_in")
        gate = self._matmul(xb, p + "w_gate")
        up = self._matmul(xb, p + "w_up")
        if c.activation == "silu":
            act = gate / (np.float32(1) + (expf_mote(-gate) if self.exact else np.exp(-gate)))
        else:
            act = np.maximum(gate, np.float32(0))
        act = self._drop(act, layer, "gate")  # CATS: a dropped neuron's h is 0
        return x + self._matmul(act * up, p + "w_down")

    def logits_batch(self, x: np.ndarray) -> np.ndarray:
        x = rmsnorm(x, self.weights["final_norm"], self.config.norm_eps)
        return self._matmul(x, self.classifier_name)

    def forward(self, token: int, pos: int) -> np.ndarray:
        return self.forward_batch([token], pos)[0]


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
        raise MoteError("empty prompt")
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
