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
    x = np.asarray(x, F)
    with np.errstate(invalid="ignore", over="ignore"):
        n = np.rint(x * _LOG2E)
        r = (x - n * _LN2_HI) - n * _LN2_LO
        p = np.full_like(x, _POLY[0])
        for c in _POLY[1:]:
            p = c + r * p
        n_int = np.clip(np.nan_to_num(n), -126, 127).astype(np.int32)
        two_n = ((n_int + 127) << 23).view(F)
        out = p * two_n
    out = np.where(x < F(-87.0), F(0), out)
    out = np.where(x > F(88.0), F(np.inf), out)
    return np.where(np.isnan(x), x, out).astype(F)


def sum_in_order(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """acc = 0; acc += x[i] for i in order: the firmware's summation, not numpy's
    pairwise one."""
    return np.cumsum(np.asarray(x, F), axis=axis, dtype=F).take(-1, axis=axis)
