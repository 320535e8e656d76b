"""float32 math shared by the reference and the sampler, defined by IEEE operations
only, so the C runtime (firmware/core/kernels_ref.c) computes the same bits
(docs/blob-format.md, "Numerics")."""

from __future__ import annotations

import numpy as np

F = np.float32
_LOG2E = F(1.44269504)
_LN2_HI = F(0.693145751953125)
_LN2_LO = F(1.42860677e-06)
# Taylor coefficients 1/720 ... 1/1, innermost first
_POLY = [F(1 / 720), F(1 / 120), F(1 / 24), F(1 / 6), F(1 / 2), F(1), F(1)]


def expf_mote(x: np.ndarray) -> np.ndarray:
    shape = np.shape(x)
    x = np.asarray(x, F).reshape(-1)  # in-place steps below need an array, not a scalar
    with np.errstate(invalid="ignore", over="ignore"):
        n = x * _LOG2E
        np.rint(n, out=n)
        r = n * _LN2_HI
        np.subtract(x, r, out=r)
        r -= n * _LN2_LO
        p = r * _POLY[0]  # p = c + r * p, innermost first; in place, the same operations
        for c in _POLY[1:-1]:
            p += c
            p *= r
        p += _POLY[-1]
        np.nan_to_num(n, copy=False)
        np.clip(n, -126, 127, out=n)
        two_n = (n.astype(np.int32) + 127) << 23
        p *= two_n.view(F)
    p[x < F(-87.0)] = F(0)
    p[x > F(88.0)] = F(np.inf)
    nan = np.isnan(x)
    p[nan] = x[nan]
    return p.reshape(shape)


def sum_in_order(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """acc = 0; acc += x[i] for i in order: the firmware's summation, not numpy's
    pairwise one. An accumulation adds in order from x[0]; the final + 0 gives the
    zero C's acc = 0 start gives where every term is a zero (+0, never -0)."""
    return np.cumsum(np.asarray(x, F), axis=axis, dtype=F).take(-1, axis=axis) + F(0)
