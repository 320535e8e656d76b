"""Group quantization of weights (q8, q4 symmetric; q4a with an offset) and of
activations, exactly as docs/blob-format.md ("Numerics") specifies, so the numpy reference and the C
runtime agree bit for bit on every integer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The codes the writer uses. q4 uses all 16 nibbles, with the scale's sign chosen per
# group (the largest weight may land on -8); q8 leaves -128 out, which the x86
# kernels' sign trick (maddubs of |w| and sign(x, w)) cannot take. q4a's codes are
# unsigned: w = scale * code + offset.
CODE_RANGE = {"q8": (-127, 127), "q4": (-8, 7), "q4a": (0, 15)}

# Which dtype each tensor role gets under a --quant scheme. Embedding (and an
# untied classifier) stay q8 under int4: they are one lookup row per token and the
# model's output, where 4 bits cost the most perplexity for the least flash.
SCHEMES: dict[str, dict[str, str]] = {
    "int8": {"embedding": "q8", "attention": "q8", "ffn": "q8"},
    "int4": {"embedding": "q8", "attention": "q4", "ffn": "q4"},
    "int4a": {"embedding": "q8", "attention": "q4a", "ffn": "q4a"},
    "mixed": {"embedding": "q8", "attention": "q8", "ffn": "q4"},
}


def role_of(tensor_name: str) -> str:
    leaf = tensor_name.rsplit(".", 1)[-1]
    if leaf in ("tok_embedding", "classifier"):
        return "embedding"
    if leaf in ("wq", "wk", "wv", "wo"):
        return "attention"
    if leaf in ("w_gate", "w_up", "w_down"):
        return "ffn"
    return "norm"


def n_groups(cols: int, group_size: int) -> int:
    return -(-cols // group_size)


def _grouped(x: np.ndarray, group_size: int) -> np.ndarray:
    """View the last axis as (n_groups, group_size), zero-padding a short last group."""
    cols = x.shape[-1]
    pad = n_groups(cols, group_size) * group_size - cols
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], axis=-1)
    return x.reshape(x.shape[:-1] + (-1, group_size))


@dataclass
class QuantizedMatrix:
    dtype: str  # "q8", "q4" or "q4a"
    codes: np.ndarray  # int8 (rows, cols), within CODE_RANGE
    # float16 (rows, n_groups); q4a: (rows, n_groups, 2), each group's scale then its
    # offset, as the blob stores them
    scales: np.ndarray
    group_size: int

    def dequantize(self, begin: int = 0, end: int | None = None) -> np.ndarray:
        """Rows begin..end (all by default) as float32: the embedding lookup's values,
        (float)code * scale (+ offset for q4a)."""
        codes, scales = self.codes[begin:end], self.scales[begin:end].astype(np.float32)
        grouped = _grouped(codes.astype(np.float32), self.group_size)
        if self.dtype == "q4a":
            deq = grouped * scales[..., 0, None] + scales[..., 1, None]
        else:
            deq = grouped * scales[..., None]
        return deq.reshape(codes.shape[0], -1)[:, : codes.shape[1]]


# Rows quantized at a time: bounds the temporaries to a few MB for any tensor, so
# converting needs little more memory than the float model itself.
ROW_BLOCK = 256

IMPORTANCE_FLOOR = 0.05
# Where a group's largest-magnitude weight may land, as fractions of the largest code
# on either side: below 1 it keeps more levels for the others, above 1 it is clipped.
_LANDINGS = {"q4": np.linspace(0.85, 1.15, 13), "q8": np.linspace(0.9, 1.0, 6)}


def _search_rows(w: np.ndarray, dtype: str, group_size: int, importance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and f16 scales of a block of rows: per group, the candidate that minimises
    sum_j h_j (w_j - s q_j)^2. Each candidate maps the group's largest-magnitude
    weight m onto a landing t (codes q = clamp(rint(w t / m))), then takes the least
    squares scale for those codes, s = f16(sum h w q / sum h q^2); the codes are kept,
    or rounded again against s, whichever errs less."""
    lo, hi = CODE_RANGE[dtype]
    g = _grouped(np.asarray(w, np.float32), group_size)  # (rows, ng, G)
    h = _grouped(importance[None, :], group_size)  # (1, ng, G), zero in the padding
    m = np.take_along_axis(g, np.abs(g).argmax(axis=-1)[..., None], axis=-1)  # (rows, ng, 1)
    landings = np.concatenate([lo * _LANDINGS[dtype], hi * _LANDINGS[dtype]]) if -lo != hi else \
        hi * _LANDINGS[dtype]
    best_err = np.full(m.shape[:2], np.inf, np.float32)
    codes = np.zeros(g.shape, np.int8)
    scales = np.zeros(m.shape[:2], np.float16)
    zero = m == 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for t in landings:
            q = np.clip(np.rint(g * np.where(zero, 0, np.float32(t) / m)), lo, hi)
            den = (h * q * q).sum(axis=-1)
            s = np.where(den > 0, (h * g * q).sum(axis=-1) / den, 0).astype(np.float16)
            s32 = s.astype(np.float32)[..., None]
            again = np.clip(np.rint(np.where(s32 == 0, 0, g / s32)), lo, hi)
            for candidate in (q, again):
                err = (h * np.square(g - s32 * candidate)).sum(axis=-1)
                better = err < best_err
                best_err = np.where(better, err, best_err)
                scales = np.where(better, s, scales)
                codes = np.where(better[..., None], candidate, codes).astype(np.int8)
    # a group whose every scale overflows f16 keeps an infinite one: the caller refuses
    # the tensor, by name, as the runtime would refuse the blob
    scales = np.where(np.isinf(best_err) & ~zero[..., 0], np.float16(np.inf), scales)
    return codes.reshape(w.shape[0], -1)[:, : w.shape[1]], scales


# q4a's candidate ranges: the group's [min, max] shrunk about its middle by these
# factors (below 1 clips the extremes to give the rest finer steps)
_Q4A_SHRINK = np.linspace(0.7, 1.0, 13)


def _search_rows_q4a(w: np.ndarray, group_size: int, importance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..15 and f16 (scale, offset) pairs of a block of rows: per group, the
    candidate that minimises sum_j h_j (w_j - s q_j - m)^2. Each candidate maps a
    shrunk [min, max] of the group onto 0..15, then refits (s, m) to those codes by
    weighted least squares, rounds them to f16, and keeps the codes or the codes
    rounded again against the f16 pair, whichever errs less."""
    g = _grouped(np.asarray(w, np.float32), group_size)  # (rows, ng, G)
    h = _grouped(importance[None, :], group_size)  # (1, ng, G), zero in the padding
    real = h > 0
    lo = np.where(real, g, np.inf).min(axis=-1, keepdims=True)
    hi = np.where(real, g, -np.inf).max(axis=-1, keepdims=True)
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    best_err = np.full(g.shape[:2], np.inf, np.float32)
    codes = np.zeros(g.shape, np.int8)
    pairs = np.zeros(g.shape[:2] + (2,), np.float16)
    hsum = h.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for t in _Q4A_SHRINK:
            base = mid - half * np.float32(t)
            step = half * np.float32(2 * t / 15)
            q = np.clip(np.rint(np.where(step > 0, (g - base) / step, 0)), 0, 15)
            # least squares (s, m) for these codes
            a, b = (h * q * q).sum(axis=-1), (h * q).sum(axis=-1)
            d, e = (h * g * q).sum(axis=-1), (h * g).sum(axis=-1)
            det = a * hsum - b * b
            ok = det > 0
            s = np.where(ok, (d * hsum - b * e) / np.where(ok, det, 1), step[..., 0])
            m = np.where(ok, (a * e - b * d) / np.where(ok, det, 1),
                         np.where(hsum > 0, e / np.where(hsum > 0, hsum, 1), 0))
            s16, m16 = s.astype(np.float16), m.astype(np.float16)
            s32, m32 = s16.astype(np.float32)[..., None], m16.astype(np.float32)[..., None]
            again = np.clip(np.rint(np.where(s32 == 0, 0, (g - m32) / s32)), 0, 15)
            for candidate in (q, again):
                err = (h * np.square(g - s32 * candidate - m32)).sum(axis=-1)
                better = err < best_err
                best_err = np.where(better, err, best_err)
                pairs = np.where(better[..., None], np.stack([s16, m16], axis=-1), pairs)
                codes = np.where(better[..., None], candidate, codes).astype(np.int8)
    # a group none of whose pairs fits f16 keeps an infinite scale: the caller refuses it
    pairs[..., 0] = np.where(np.isinf(best_err), np.float16(np.inf), pairs[..., 0])
    return codes.reshape(w.shape[0], -1)[:, : w.shape[1]], pairs


def quantize_matrix(w: np.ndarray, dtype: str, group_size: int,
                    importance: np.ndarray | None = None) -> QuantizedMatrix:
    """Per row group, the codes and f16 scale that minimise the squared error weighted
    by each input column's importance h_j (the mean square of that input on
    calibration text, so the error of the matrix's output; all ones without
    calibration, so the error of the weights). The format stores any codes and scale:
    this is the writer's choice alone, and what the runtime computes stays exact."""
    rows, cols = w.shape
    h = np.ones(cols, np.float32) if importance is None else np.asarray(importance, np.float32)
    # relative to the mean, with a floor: an input silent on the calibration text (a
    # neuron that never fired there) still keeps its weights for other text
    h = h / h.mean() + np.float32(IMPORTANCE_FLOOR) if h.mean() > 0 else np.ones(cols, np.float32)
    codes = np.empty((rows, cols), np.int8)
    scales = np.empty((rows, n_groups(cols, group_size)) + ((2,) if dtype == "q4a" else ()), np.float16)
    for begin in range(0, rows, ROW_BLOCK):
        end = begin + ROW_BLOCK
        codes[begin:end], scales[begin:end] = (
            _search_rows_q4a(w[begin:end], group_size, h) if dtype == "q4a"
            else _search_rows(w[begin:end], dtype, group_size, h))
    return QuantizedMatrix(dtype, codes, scales, group_size)


def relative_error(w: np.ndarray, q: QuantizedMatrix) -> float:
    """||w - deq(q)|| / ||w||: the per-tensor figure `mote convert` reports."""
    w = np.asarray(w, np.float32)
    norm = float(np.linalg.norm(w))
    if not norm:
        return 0.0
    squared = sum(float(np.sum(np.square(w[b : b + ROW_BLOCK] - q.dequantize(b, b + ROW_BLOCK)),
                               dtype=np.float64)) for b in range(0, w.shape[0], ROW_BLOCK))
    return squared ** 0.5 / norm


def pack_q4(codes: np.ndarray) -> np.ndarray:
    """Two 4-bit codes per byte (q4 two's complement, q4a unsigned), even column in
    the low nibble."""
    rows, cols = codes.shape
    if cols % 2:
        codes = np.concatenate([codes, np.zeros((rows, 1), np.int8)], axis=1)
    low = codes[:, 0::2].astype(np.uint8) & 0x0F
    high = codes[:, 1::2].astype(np.uint8) & 0x0F
    return (low | (high << 4)).astype(np.uint8)


def unpack_q4(packed: np.ndarray, cols: int, signed: bool = True) -> np.ndarray:
    """pack_q4's codes back: q4's signed, q4a's (signed=False) 0..15."""
    low = (packed & 0x0F).astype(np.int8)
    high = (packed >> 4).astype(np.int8)
    if signed:
        low = np.where(low > 7, low - 16, low).astype(np.int8)
        high = np.where(high > 7, high - 16, high).astype(np.int8)
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), np.int8)
    codes[:, 0::2] = low
    codes[:, 1::2] = high
    return codes[:, :cols]


def quantize_activations(x: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group int8 activations for a batch x (T, n): codes (T, n_groups, G) and
    float32 scales (T, n_groups). amax == 0 gives scale 0 and codes 0; otherwise
    sx = amax / 127 and q = clamp(rint(x * (127 / amax)), -127, 127)."""
    groups = _grouped(np.asarray(x, np.float32), group_size)
    amax = np.abs(groups).max(axis=-1)
    zero = amax == 0
    safe = np.where(zero, np.float32(1), amax)
    inv = (np.float32(127) / safe)[..., None]
    codes = np.clip(np.rint(groups * inv), -127, 127)
    codes = np.where(zero[..., None], 0, codes).astype(np.int8)
    scales = np.where(zero, np.float32(0), amax / np.float32(127)).astype(np.float32)
    return codes, scales


def quantize_kv(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One f16 scale per vector (last axis): s = f16(amax / 127), q = rint(x * (1/s))."""
    x = np.asarray(x, np.float32)
    amax = np.abs(x).max(axis=-1)
    scales = (amax / np.float32(127)).astype(np.float16)
    s32 = scales.astype(np.float32)
    zero = s32 == 0
    inv = np.where(zero, np.float32(0), np.float32(1) / np.where(zero, np.float32(1), s32))
    codes = np.clip(np.rint(x * inv[..., None]), -127, 127).astype(np.int8)
    return codes, scales
