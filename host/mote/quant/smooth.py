"""Activation-aware channel scaling (AWQ-style), folded into the float model before
it is quantized: an input channel j of a matrix that sees large activations is
multiplied by s_j > 1 in the matrix and divided by s_j where it is produced, so its
weights get finer steps where they matter most, and the quantized activations get
more even groups. The product is unchanged in exact arithmetic; the blob stores the
scaled tensors, so the firmware's arithmetic (and C = numpy, bit for bit) is untouched.

Where each division goes (the arithmetic allows these four, exactly):
- the inputs of wq, wk, wv: attn_norm's weight;
- the inputs of w_gate, w_up: ffn_norm's weight;
- the input of w_down (act(gate) * up): the rows of w_up;
- the input of wo (the heads' outputs, sums of value vectors): the rows of wv, so
  the query heads sharing a kv head share their scales.
The classifier's input is left alone: with a tied classifier it is the embedding.

s_j = m_j^a / sqrt(max m^a * min m^a), m_j the root mean square of input j on the
calibration text; a in 0, 0.1, .., 1 is searched per layer and point for the least
output error sum_j h_j sum_r (W_rj - Q(W s)_rj / s_j)^2 (h_j = m_j^2) of its matrices
quantized to q4 (round to nearest: a quick proxy for the writer's search)."""

from __future__ import annotations

import dataclasses

import numpy as np

from mote.model import Model

ALPHAS = np.linspace(0.0, 1.0, 11)


def _q4_round_trip(w: np.ndarray, group: int) -> np.ndarray:
    """w through q4 with the group's largest weight on -8, back to float."""
    rows, cols = w.shape
    pad = -cols % group
    g = np.pad(w, ((0, 0), (0, pad))).reshape(rows, -1, group)
    m = np.take_along_axis(g, np.abs(g).argmax(axis=-1)[..., None], axis=-1)
    s = (m / -8).astype(np.float16).astype(np.float32)
    safe = np.where(s == 0, 1, s)
    q = np.where(s == 0, 0, np.clip(np.rint(g / safe), -8, 7))
    return (q * s).reshape(rows, -1)[:, :cols]


def _scales(rms: np.ndarray, alpha: float) -> np.ndarray:
    # a channel all but silent on the calibration text is not scaled up without bound
    s = np.maximum(rms, 0.01 * rms.mean()) ** alpha
    return (s / np.sqrt(s.max() * s.min())).astype(np.float32)


def _error(weights: list[np.ndarray], s: np.ndarray, h: np.ndarray, group: int) -> float:
    err = 0.0
    for w in weights:
        deq = _q4_round_trip(w * s, group) / s
        err += float(np.sum(h * np.square(deq - w), dtype=np.float64))
    return err


def smooth(model: Model, mean_squares: dict[str, np.ndarray], group: int) -> tuple[Model, dict[str, np.ndarray], list[str]]:
    """The model with searched channel scales folded in, the input mean squares of its
    matrices after scaling, and one line per layer with the exponents chosen."""
    c = model.config
    t = {name: np.array(w, np.float32) for name, w in model.tensors.items()}
    ms = dict(mean_squares)
    kv_group = c.n_heads // c.n_kv_heads
    lines = []
    for layer in range(c.n_layers):
        p = f"layers.{layer}."
        chosen = []
        for point, matrices in (("attn_in", ("wq", "wk", "wv")), ("ffn_in", ("w_gate", "w_up")),
                                ("down_in", ("w_down",)), ("attn_out", ("wo",))):
            names = [p + m for m in matrices]
            h = mean_squares[names[0]]
            if not h.any():
                continue
            rms = np.sqrt(h)
            if point == "attn_out":  # one scale per value channel, shared by its query heads
                per_kv = rms.reshape(c.n_kv_heads, kv_group, c.head_dim).mean(axis=1)
                rms = np.repeat(per_kv[:, None, :], kv_group, axis=1).reshape(-1)
            errors = [_error([t[n] for n in names], _scales(rms, a), h, group) for a in ALPHAS]
            alpha = float(ALPHAS[int(np.argmin(errors))])
            chosen.append(f"{point} {alpha:.1f}")
            if alpha == 0:
                continue
            s = _scales(rms, alpha)
            for n in names:
                t[n] = t[n] * s[None, :]
                ms[n] = mean_squares[n] / np.square(s.astype(np.float64))
            if point == "attn_in":
                t[p + "attn_norm"] = t[p + "attn_norm"] / s
            elif point == "ffn_in":
                t[p + "ffn_norm"] = t[p + "ffn_norm"] / s
            elif point == "down_in":
                t[p + "w_up"] = t[p + "w_up"] / s[:, None]
            else:
                per_kv_scale = s.reshape(c.n_kv_heads, kv_group, c.head_dim)[:, 0, :].reshape(-1)
                t[p + "wv"] = t[p + "wv"] / per_kv_scale[:, None]
        lines.append(f"  layer {layer}: " + ", ".join(chosen))
    return dataclasses.replace(model, tensors=t), ms, lines
