"""What a sparse token computes and reads: activations dropped at a threshold, and the
weights the firmware's kernels read (firmware/core/model.c counts the same)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mote.format.spec import SCALES_PER_GROUP
from mote.quant.groups import n_groups


# ------------------------------------------------------------------ dropping


def drop(v: np.ndarray, threshold: float) -> np.ndarray:
    """v with every value of magnitude <= threshold set to 0 (NaN is kept, as in C)."""
    return np.where(np.abs(v) <= np.float32(threshold), np.float32(0), v).astype(np.float32)


# ------------------------------------------------------------------ read counting


@dataclass
class Reads:
    """Weights one token reads: matrix rows computed as dot products (row kernels,
    the embedding row), matrix columns read by column kernels, and bytes of weight
    data and scales (norm vectors included). firmware/core/model.c counts the same."""

    rows: int = 0
    cols: int = 0
    bytes: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.rows, self.cols, self.bytes)


def dense_matrix_bytes(rows: int, cols: int, dtype: str, group: int) -> int:
    row_bytes = cols if dtype == "q8" else -(-cols // 2)
    return rows * (row_bytes + 2 * SCALES_PER_GROUP[dtype] * n_groups(cols, group))


def count_columns(reads: Reads, rows: int, xq_groups: np.ndarray) -> None:
    """A column kernel: one column per nonzero input code, one scales block (rows f16)
    per input group with any nonzero code. xq_groups: (n_groups, group) codes."""
    nonzero = xq_groups != 0
    kept = int(nonzero.sum())
    reads.cols += kept
    reads.bytes += kept * rows + int(nonzero.any(axis=1).sum()) * 2 * rows


def count_bundled(reads: Reads, dim: int, group: int, kept_neurons: np.ndarray, hq_groups: np.ndarray) -> None:
    """CATS: w_up row + scales of every kept neuron; w_down column of every nonzero
    code of h, and w_down's scales block of every hidden group with one."""
    kept = int(np.count_nonzero(kept_neurons))
    reads.rows += kept
    reads.bytes += kept * (dim + 2 * n_groups(dim, group))
    count_columns(reads, dim, hq_groups)


