"""Dynamic activation sparsity: the blob's sparsity section, the weight layouts that
make a skipped activation a skipped contiguous run of weights (docs/blob-format.md,
"Sparsity section").

Four activation points per layer can be sparsified; each drops the values whose
magnitude is at or below its layer's threshold by setting them to 0.0 *before* the
activation quantization, so that their int8 codes are 0. A kernel that skips the
weights of a zero code therefore computes exactly the dense integer sums: sparse
runs equal dense runs on the zeroed input, bit for bit.

- attn_in  (TEAL): the RMS-normed input of wq, wk, wv; those three are stored input-major.
- attn_out (TEAL): the attention output, the input of wo; wo is stored input-major.
- ffn_in   (TEAL): the RMS-normed input of w_gate and w_up; w_gate is stored
  input-major (and w_up too when gate is off).
- gate     (CATS): the activated gate act(w_gate·x); a dropped neuron j needs neither
  row j of w_up nor column j of w_down, stored side by side ("bundled").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from mote.format import spec
from mote.model import MoteError
from mote.quant.groups import n_groups

SECTION_MAGIC = spec.SPARSITY_MAGIC
SECTION_HEADER_BYTES = spec.SPARSITY_HEADER_BYTES
POINTS = tuple(name for name, _ in sorted(spec.SPARSE_POINTS, key=lambda p: p[1]))
POINT_BITS = {name: 1 << bit for name, bit in spec.SPARSE_POINTS}

_LAYOUTS = dict(spec.LAYOUTS)
LAYOUT_ROWS = _LAYOUTS["rows"]  # row-major, as without a sparsity section
LAYOUT_COLUMNS = _LAYOUTS["columns"]  # input-major: column j's codes contiguous, scales per input group
LAYOUT_BUNDLED = _LAYOUTS["bundled"]  # w_up row j + w_down column j side by side (on both entries)

_RESERVED = next(slice(o, o + int(k[6:])) for n, o, k in spec.SPARSITY if n == "reserved")
# magic, n_layers, flags, target, then the reserved bytes (spec.SPARSITY tiles these)
_SECTION = struct.Struct("<" + "".join(
    f"{k[6:]}x" if k.startswith("bytes:") else {"u32": "I", "f32": "f"}[k] for _, _, k in spec.SPARSITY))


@dataclass
class Sparsity:
    points: tuple[str, ...]  # the sparsified activation points, in POINTS order
    thresholds: np.ndarray  # float32 (n_layers, 4): drop |v| <= threshold; 0 when off
    target: float = 0.0  # informational: weight bytes skipped on calibration, or a uniform fraction

    def threshold(self, layer: int, point: str) -> float | None:
        """The layer's threshold at `point`, or None when the point stays dense."""
        if point not in self.points:
            return None
        return self.thresholds[layer, POINTS.index(point)]


def layout_of(tensor_name: str, sparsity: Sparsity | None) -> int:
    """How a tensor's weights are laid out under `sparsity` (0 without it)."""
    if sparsity is None:
        return LAYOUT_ROWS
    leaf = tensor_name.rsplit(".", 1)[-1]
    on = set(sparsity.points)
    if leaf in ("wq", "wk", "wv") and "attn_in" in on:
        return LAYOUT_COLUMNS
    if leaf == "wo" and "attn_out" in on:
        return LAYOUT_COLUMNS
    if leaf in ("w_up", "w_down") and "gate" in on:
        return LAYOUT_BUNDLED
    if leaf in ("w_gate", "w_up") and "ffn_in" in on:
        return LAYOUT_COLUMNS
    return LAYOUT_ROWS


# ------------------------------------------------------------------ the section


def pack_section(sp: Sparsity, n_layers: int) -> bytes:
    t = np.asarray(sp.thresholds, np.float32)
    if t.shape != (n_layers, len(POINTS)):
        raise MoteError(f"sparsity thresholds have shape {t.shape}, expected ({n_layers}, {len(POINTS)})")
    flags = sum(POINT_BITS[p] for p in sp.points)
    return _SECTION.pack(SECTION_MAGIC, n_layers, flags, sp.target) + t.astype("<f4").tobytes()


def parse_section(data: bytes, n_layers: int, where: str = "blob") -> Sparsity:
    """Validate a sparsity section as firmware/core/blob.c does."""
    want = SECTION_HEADER_BYTES + 4 * len(POINTS) * n_layers
    if len(data) != want:
        raise MoteError(f"{where}: sparsity section is {len(data)} bytes, expected {want}")
    magic, layers, flags, target = _SECTION.unpack_from(data)
    if magic != SECTION_MAGIC or layers != n_layers:
        raise MoteError(f"{where}: sparsity section has magic {magic:#010x} and {layers} layers")
    if flags & ~((1 << len(POINTS)) - 1) or any(data[_RESERVED]):
        raise MoteError(f"{where}: sparsity section has unknown flags {flags:#x} or reserved bytes set")
    t = np.frombuffer(data, "<f4", n_layers * len(POINTS), SECTION_HEADER_BYTES).reshape(n_layers, -1)
    points = tuple(p for p in POINTS if flags & POINT_BITS[p])
    off = [i for i, p in enumerate(POINTS) if p not in points]
    if not (np.all(np.isfinite(t)) and np.all(t >= 0) and not np.any(t[:, off])):
        raise MoteError(f"{where}: sparsity thresholds must be finite, >= 0, and 0 for dense points")
    return Sparsity(points, t.astype(np.float32), float(np.float32(target)))


# ------------------------------------------------------------------ layouts (q8)


def bundle_bytes_per_neuron(dim: int, group: int) -> int:
    """w_up row codes, w_up row scales, w_down column codes."""
    return 2 * dim + 2 * n_groups(dim, group)


def bundled_region_bytes(dim: int, hidden: int, group: int) -> int:
    """Per hidden group: w_down's scales for that input group (dim f16), then the
    group's neurons' bundles."""
    return n_groups(hidden, group) * 2 * dim + hidden * bundle_bytes_per_neuron(dim, group)


def to_columns(codes: np.ndarray, scales: np.ndarray) -> tuple[bytes, bytes]:
    """Input-major: data[j·rows + r] = q[r, j]; scales[g·rows + r] = s[r, g]."""
    return (np.ascontiguousarray(codes.T).tobytes(), np.ascontiguousarray(scales.T, "<f2").tobytes())


def from_columns(data: np.ndarray, scales: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(data.reshape(cols, rows).T),
            np.ascontiguousarray(scales.reshape(-1, rows).T))


def _bundle_views(region: np.ndarray, dim: int, hidden: int, group: int):
    """Views of a bundled region (uint8): per hidden group its down-scales block and
    its bundles (n, bundle bytes)."""
    bb = bundle_bytes_per_neuron(dim, group)
    out, cursor = [], 0
    for g in range(n_groups(hidden, group)):
        n = min(group, hidden - g * group)
        block = region[cursor : cursor + 2 * dim]
        bundles = region[cursor + 2 * dim : cursor + 2 * dim + n * bb].reshape(n, bb)
        out.append((g * group, n, block, bundles))
        cursor += 2 * dim + n * bb
    return out


def bundle(up_codes, up_scales, down_codes, down_scales, group: int) -> bytes:
    hidden, dim = up_codes.shape
    if dim % 2:
        raise MoteError(f"row-column bundling needs an even model width, got {dim}")
    region = np.zeros(bundled_region_bytes(dim, hidden, group), np.uint8)
    ngd = n_groups(dim, group)
    for first, n, block, bundles in _bundle_views(region, dim, hidden, group):
        block[:] = np.ascontiguousarray(down_scales[:, first // group], "<f2").view(np.uint8)
        js = slice(first, first + n)
        bundles[:, :dim] = up_codes[js].view(np.uint8)
        bundles[:, dim : dim + 2 * ngd] = np.ascontiguousarray(up_scales[js], "<f2").view(np.uint8).reshape(n, -1)
        bundles[:, dim + 2 * ngd :] = np.ascontiguousarray(down_codes[:, js].T).view(np.uint8)
    return region.tobytes()


def unbundle(region: np.ndarray, dim: int, hidden: int, group: int):
    """(up_codes, up_scales, down_codes, down_scales) back in row-major order."""
    ngd, ngh = n_groups(dim, group), n_groups(hidden, group)
    up_codes = np.empty((hidden, dim), np.int8)
    up_scales = np.empty((hidden, ngd), np.float16)
    down_codes = np.empty((dim, hidden), np.int8)
    down_scales = np.empty((dim, ngh), np.float16)
    for first, n, block, bundles in _bundle_views(region, dim, hidden, group):
        down_scales[:, first // group] = block.view("<f2")
        js = slice(first, first + n)
        up_codes[js] = bundles[:, :dim].view(np.int8)
        up_scales[js] = np.ascontiguousarray(bundles[:, dim : dim + 2 * ngd]).view("<f2")
        down_codes[:, js] = bundles[:, dim + 2 * ngd :].view(np.int8).T
    return up_codes, up_scales, down_codes, down_scales
