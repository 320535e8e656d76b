"""A checkpoint's own group-quantized codes, where Mote can store them unchanged.

GGUF's Q4_1 (w = d*q + m, q in 0..15, d and m f16 per 32 weights) is Mote's q4a at
group 32, Q4_0 (w = d*(q - 8)) its q4 (codes q - 8, scale d) or q4a (offset -8d, exact
in f16), Q8_0 (w = d*q) its q8 when no code is -128 (which q8 leaves out). Taking
those codes as they are makes a conversion lossless for the tensors they cover,
where requantizing the dequantized values would round a second time (SmolLM2's
Q4_1 tensors: about 10 % relative error each as symmetric q4)."""

from __future__ import annotations

import numpy as np

from mote.quant.groups import QuantizedMatrix

# The block length of the GGUF types below: they map onto Mote's groups of this size.
BLOCK = 32


def _blocks(data: np.ndarray, rows: int, cols: int, block_bytes: int) -> np.ndarray:
    return np.asarray(data, np.uint8).reshape(rows, cols // BLOCK, block_bytes)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """A block's 16 bytes as its 32 codes: element i < 16 in byte i's low nibble,
    element 16 + i in its high nibble (ggml's order)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _f16(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view("<f2")[..., 0]


def from_gguf(type_name: str, data: np.ndarray, rows: int, cols: int) -> QuantizedMatrix | None:
    """The codes of a GGUF tensor (GGUFReader's raw bytes, rows x bytes per row) of type
    Q4_0, Q4_1 or Q8_0 as a QuantizedMatrix at group BLOCK; None for any other type
    (and for a Q8_0 tensor holding a -128 code)."""
    if cols % BLOCK:
        return None
    if type_name == "Q4_1":
        b = _blocks(data, rows, cols, 20)
        pairs = np.stack([_f16(b[..., 0:2]), _f16(b[..., 2:4])], axis=-1)
        codes = _nibbles(b[..., 4:]).reshape(rows, cols).astype(np.int8)
        return QuantizedMatrix("q4a", codes, pairs, BLOCK)
    if type_name == "Q4_0":
        b = _blocks(data, rows, cols, 18)
        codes = (_nibbles(b[..., 2:]).astype(np.int8) - 8).reshape(rows, cols)
        return QuantizedMatrix("q4", codes, _f16(b[..., 0:2]), BLOCK)
    if type_name == "Q8_0":
        b = _blocks(data, rows, cols, 34)
        codes = b[..., 2:].view(np.int8).reshape(rows, cols)
        if codes.min() < -127:
            return None
        return QuantizedMatrix("q8", codes, _f16(b[..., 0:2]), BLOCK)
    return None


def stored_exactly(native: QuantizedMatrix, dtype: str, group_size: int) -> QuantizedMatrix | None:
    """The checkpoint's codes in the form of `dtype` ("q8", "q4", "q4a"), with the same
    values: a 4-bit dtype takes a 4-bit source (Q4_1 becomes q4a whichever 4-bit dtype
    the scheme asks for, having an offset q4 has not), q8 takes Q8_0. None when the
    group sizes differ or no exact form exists."""
    if group_size != native.group_size:
        return None
    if dtype == "q8":
        return native if native.dtype == "q8" else None
    if native.dtype == "q4a" or (native.dtype == "q4" and dtype == "q4"):
        return native
    if native.dtype == "q4" and dtype == "q4a":  # d*(q-8) = d*q + (-8d), -8d exact in f16
        scale = native.scales
        pairs = np.stack([scale, (scale.astype(np.float32) * -8).astype(np.float16)], axis=-1)
        return QuantizedMatrix("q4a", (native.codes + 8).astype(np.int8), pairs, group_size)
    return None
