"""GPTQ-style error feedback (Frantar et al. 2022, "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers"): a matrix's columns are
quantized in order, and each column's rounding error is pushed onto the columns not
yet quantized, in the proportions that minimise the error of the matrix's output on
the calibration inputs, tr((W - Q) H (W - Q)^T) with H = E[x x^T].

Host-only, like the rest of mote.quant: it chooses codes and f16 group scales, which
the blob stores as always; what the runtime computes from them is unchanged (and C =
numpy, bit for bit). It works on the math matrix (out, in), before any layout packs it."""

from __future__ import annotations

import numpy as np

from mote.quant.groups import CODE_RANGE, ROW_BLOCK, QuantizedMatrix, quantize_matrix

# Added to H's diagonal, as a fraction of its mean: keeps H invertible (an input
# silent on the calibration text) and the error feedback from trusting a short text
# too much. GPTQ's own default.
DAMPING = 0.01
# Rows quantized at a time (rows are independent; this bounds the temporaries).
GPTQ_ROW_BLOCK = 4 * ROW_BLOCK
# Columns whose feedback on the later columns is applied as one matrix product.
FEEDBACK_BLOCK = 32


def inverse_hessian_factor(gram: np.ndarray) -> np.ndarray:
    """U, upper triangular with U^T U = (H + damping)^-1: row j of U holds how column
    j's error is spread over the columns after it, U[j, j] its scale."""
    h = np.array(gram, np.float64)
    h[np.diag_indices_from(h)] += DAMPING * max(float(np.mean(np.diag(h))), 1e-12)
    lower = np.linalg.cholesky(h)
    inverse = np.linalg.inv(lower)
    inverse = inverse.T @ inverse  # H^-1 from its Cholesky factor
    return np.linalg.cholesky(inverse).T


def gptq_matrix(w: np.ndarray, dtype: str, group_size: int, gram: np.ndarray) -> QuantizedMatrix:
    """Codes and f16 scales of w (rows, cols) by error feedback over gram (cols, cols),
    the mean x x^T of the matrix's inputs.

    The group scales (and q4a's offsets) are chosen first, by the writer's search (mote.quant.groups) over
    the float weights weighed by the inputs' mean squares; then the columns are coded
    against them, the inputs with the largest mean square first ("act order"), each
    column's error pushed onto the columns not yet coded. Measured on stories260K,
    mcu-1m-silu and ref-11m-silu int4, this did better than GPTQ's own column order
    with each group's scale searched when the group is entered (README, Quantization)."""
    rows, cols = w.shape
    lo, hi = CODE_RANGE[dtype]
    scales = quantize_matrix(w, dtype, group_size, importance=np.diag(gram)).scales
    order = np.argsort(-np.diag(gram), kind="stable")
    u = inverse_hessian_factor(np.asarray(gram, np.float64)[np.ix_(order, order)])
    codes = np.empty((rows, cols), np.int8)
    for begin in range(0, rows, GPTQ_ROW_BLOCK):
        block = np.asarray(w[begin : begin + GPTQ_ROW_BLOCK], np.float64)
        # each column's scale, in coding order; a zero or infinite scale codes 0 (the
        # caller refuses an infinite one)
        grid = scales[begin : begin + len(block)].astype(np.float64)[:, order // group_size]
        step, offset = (grid[..., 0], grid[..., 1]) if dtype == "q4a" else (grid, np.zeros_like(grid))
        step = np.where(np.isfinite(step), step, 0)
        divisor = np.where(step == 0, np.inf, step)
        left = block[:, order]  # the weights not yet coded, as the feedback leaves them
        for b0 in range(0, cols, FEEDBACK_BLOCK):
            b1 = min(b0 + FEEDBACK_BLOCK, cols)
            errors = np.empty((len(block), b1 - b0))
            for j in range(b0, b1):
                q = np.clip(np.rint((left[:, j] - offset[:, j]) / divisor[:, j]), lo, hi)
                codes[begin : begin + len(block), order[j]] = q
                errors[:, j - b0] = (left[:, j] - step[:, j] * q - offset[:, j]) / u[j, j]
                left[:, j + 1 : b1] -= np.outer(errors[:, j - b0], u[j, j + 1 : b1])
            left[:, b1:] -= errors @ u[b0:b1, b1:]  # the block's feedback on the rest, at once
    return QuantizedMatrix(dtype, codes, scales, group_size)


def quantize_weights(w: np.ndarray, dtype: str, group_size: int, gram: np.ndarray | None = None) -> QuantizedMatrix:
    """The writer's choice for one matrix: GPTQ against its calibration inputs' gram,
    or without calibration the search for the least weight error per group."""
    return quantize_matrix(w, dtype, group_size) if gram is None else gptq_matrix(w, dtype, group_size, gram)

