"""Write and read `.mote` blobs (docs/blob-format.md is the specification).

`pack` turns an imported float Model into blob bytes; `load` validates a blob as
strictly as the firmware does and returns its contents as numpy arrays.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mote import sparsity as sparse
from mote.model import Config, Model, MoteError, expected_shapes
from mote.sparsity import Sparsity
from mote.quant import (
    DTYPE_CODES,
    SCHEMES,
    QuantizedMatrix,
    n_groups,
    pack_q4,
    quantize_matrix,
    relative_error,
    role_of,
    unpack_q4,
)

MAGIC = 0x45544F4D  # b"MOTE" little-endian
VERSION = 1
HEADER_BYTES = 256
ALIGN = 32
TABLE_ENTRY_BYTES = 32
GLOBAL_LAYER = 0xFFFF
LINE_MAX = 1024  # longest console line the firmware accepts, in bytes
# Largest group: 127·127·1024 < 2^24 keeps every per-group integer sum exact in
# float32, which the reference relies on (and int32 has room to spare).
MAX_GROUP = 1024

KINDS = {
    "tok_embedding": 1,
    "attn_norm": 2,
    "wq": 3,
    "wk": 4,
    "wv": 5,
    "wo": 6,
    "ffn_norm": 7,
    "w_gate": 8,
    "w_up": 9,
    "w_down": 10,
    "final_norm": 11,
    "classifier": 12,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}
DTYPE_NAMES = {v: k for k, v in DTYPE_CODES.items()}
ACTIVATIONS = {"silu": 0, "relu": 1}

# Header fields after magic/version/total/crc, in order (see the spec's table).
_HEADER = struct.Struct("<IIII" "I" "IIIIIIIIIIIII" "ff" "IIIIII")
_HEADER_FIELDS = (
    "magic version total_bytes crc32 header_bytes "
    "dim hidden_dim n_layers n_heads n_kv_heads head_dim vocab_size max_seq_len "
    "ctx_len arena_bytes group_size activation flags "
    "rope_theta norm_eps "
    "n_tensors tensor_table_offset tokenizer_offset tokenizer_bytes "
    "sparsity_offset sparsity_bytes"
).split()
_NAME_OFFSET = 128
_NAME_BYTES = 32
_ENTRY = struct.Struct("<BBHIIIIIII")


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def tensor_order(config: Config) -> list[str]:
    """Tensor names in the table's fixed order."""
    return list(expected_shapes(config))


def arena_bytes(config: Config, ctx: int, group_size: int) -> int:
    """The arena the firmware carves (docs/blob-format.md, "Arena"); each piece is
    rounded up to 16 bytes, exactly as firmware/core/model.c does."""
    c = config

    def piece(n: int) -> int:
        return -(-n // 16) * 16

    widest = max(c.dim, c.q_dim, c.hidden_dim)
    pieces = [
        4 * c.dim,  # x
        4 * c.dim,  # xb2
        4 * max(c.dim, c.q_dim),  # xb
        4 * c.q_dim,  # q
        4 * c.kv_dim,  # k
        4 * c.kv_dim,  # v
        4 * c.hidden_dim,  # hb
        4 * c.hidden_dim,  # hb2
        4 * ctx,  # att
        4 * c.vocab_size,  # logits
        widest,  # quantized activation
        4 * n_groups(widest, group_size),  # its scales
        4 * (c.head_dim // 2),  # rope cos
        4 * (c.head_dim // 2),  # rope sin
        c.n_layers * ctx * c.kv_dim,  # key cache
        c.n_layers * ctx * c.kv_dim,  # value cache
        2 * c.n_layers * ctx,  # key scales
        2 * c.n_layers * ctx,  # value scales
        max(4 * ctx, 4 * (LINE_MAX + 2), 8 * c.vocab_size),  # scratch
    ]
    return sum(piece(n) for n in pieces)


@dataclass
class BlobTensor:
    name: str
    dtype: str  # "f32", "f16", "q8", "q4"
    rows: int
    cols: int
    values: np.ndarray  # float32 (rows, cols) for f32/f16; int8 codes for q8/q4
    scales: np.ndarray | None = None  # float16 (rows, n_groups) for q8/q4

    def dequantize(self) -> np.ndarray:
        if self.scales is None:
            return self.values.astype(np.float32)
        group = -(-self.cols // self.scales.shape[1])
        return QuantizedMatrix(self.dtype, self.values, self.scales, group).dequantize()


@dataclass
class Blob:
    config: Config
    name: str
    group_size: int
    ctx_len: int
    arena_bytes: int
    total_bytes: int
    tensors: dict[str, BlobTensor]
    tokenizer_section: bytes
    sparsity: Sparsity | None = None  # thresholds and layouts; None runs dense

    def dtype_summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tensors.values():
            counts[t.dtype] = counts.get(t.dtype, 0) + 1
        return counts


# ---------------------------------------------------------------------------- pack


def _stored_bytes(name: str, dtype: str, layout: int, rows: int, cols: int, group: int,
                  config: Config) -> tuple[int, int]:
    """(data bytes, scales bytes) of a tensor's table entry."""
    if dtype == "f32":
        return 4 * rows * cols, 0
    if layout == sparse.LAYOUT_BUNDLED:
        if name.endswith("w_up"):
            return sparse.bundled_region_bytes(config.dim, config.hidden_dim, group), 0
        return 0, 0  # w_down lives inside w_up's region
    row_bytes = cols if dtype == "q8" else -(-cols // 2)
    return rows * row_bytes, 2 * rows * n_groups(cols, group)


def _tensor_dtype(name: str, scheme: dict[str, str]) -> str:
    role = role_of(name)
    return "f32" if role == "norm" else scheme[role]


def pack(
    model: Model,
    quant: str = "int8",
    group_size: int = 32,
    ctx: int | None = None,
    progress: Callable[[str], None] | None = None,
    errors: dict[str, float] | None = None,
    sparsity: Sparsity | None = None,
) -> bytes:
    """Quantize `model` and lay it out as a .mote blob. `errors`, if given, receives
    each quantized tensor's relative error; `progress` is called per tensor. With
    `sparsity`, the blob carries its section and the matching weight layouts."""
    from mote.tokenizer import pack_tokenizer

    if quant not in SCHEMES:
        raise MoteError(f"unknown quantization {quant!r}; choose one of {', '.join(SCHEMES)}")
    if not 2 <= group_size <= MAX_GROUP or group_size % 2:
        raise MoteError(f"group size must be even and within 2..{MAX_GROUP}, got {group_size}")
    model.validate()
    c = model.config
    ctx_len = c.max_seq_len if ctx is None else ctx
    if not 1 <= ctx_len <= c.max_seq_len:
        raise MoteError(f"context {ctx_len} outside 1..{c.max_seq_len} (the model's trained context)")
    scheme = SCHEMES[quant]
    names = tensor_order(c)
    tokenizer_section = pack_tokenizer(model.tokenizer)
    sparsity_section = sparse.pack_section(sparsity, c.n_layers) if sparsity else b""

    table_offset = align(HEADER_BYTES)
    tokenizer_offset = align(table_offset + TABLE_ENTRY_BYTES * len(names))
    cursor = align(tokenizer_offset + len(tokenizer_section))
    sparsity_offset = cursor if sparsity_section else 0
    cursor = align(cursor + len(sparsity_section))

    # First the layout, from shapes alone, so the blob is written in one buffer as
    # each tensor is quantized (converting holds one copy of the blob, not three).
    plan = []  # (name, dtype, layout, rows, cols, data_offset, data_bytes, scales_offset, scales_bytes)
    for name in names:
        dtype = _tensor_dtype(name, scheme)
        shape = model.tensors[name].shape
        rows, cols = (1, shape[0]) if len(shape) == 1 else shape
        layout = sparse.layout_of(name, sparsity)
        if layout != sparse.LAYOUT_ROWS and dtype != "q8":
            raise MoteError(f"sparse weight layouts are defined for q8 matrices; {name} is {dtype} "
                            "(use --quant int8)")
        data_bytes, scales_bytes = _stored_bytes(name, dtype, layout, rows, cols, group_size, c)
        data_offset = cursor if data_bytes else 0
        cursor = align(cursor + data_bytes)
        scales_offset = cursor if scales_bytes else 0
        cursor = align(cursor + scales_bytes)
        plan.append((name, dtype, layout, rows, cols, data_offset, data_bytes, scales_offset, scales_bytes))
    total = cursor
    if total > 0xFFFFFFFF:
        raise MoteError(f"blob would be {total} bytes; the format's offsets are 32-bit")
    buf = bytearray(total)
    buf[tokenizer_offset : tokenizer_offset + len(tokenizer_section)] = tokenizer_section
    buf[sparsity_offset : sparsity_offset + len(sparsity_section)] = sparsity_section

    for i, (name, dtype, layout, rows, cols, d_off, d_len, s_off, s_len) in enumerate(plan):
        if progress:
            progress(name)
        w = np.asarray(model.tensors[name], np.float32)
        leaf = name.rsplit(".", 1)[-1]
        if dtype == "f32":
            data, scales = np.ascontiguousarray(w, "<f4").tobytes(), b""
        elif layout == sparse.LAYOUT_BUNDLED:
            # w_up's entry holds the region with w_down inside; w_down's entry is empty
            data, scales = b"", b""
            if leaf == "w_up":
                down_name = name.replace("w_up", "w_down")
                up = quantize_matrix(w, dtype, group_size)
                down = quantize_matrix(np.asarray(model.tensors[down_name], np.float32), dtype, group_size)
                if errors is not None:
                    errors[name] = relative_error(w, up)
                    errors[down_name] = relative_error(model.tensors[down_name], down)
                data = sparse.bundle(up.codes, up.scales, down.codes, down.scales, group_size)
        else:
            q = quantize_matrix(w, dtype, group_size)
            if errors is not None:
                errors[name] = relative_error(w, q)
            codes = pack_q4(q.codes) if dtype == "q4" else q.codes
            if layout == sparse.LAYOUT_COLUMNS:
                data, scales = sparse.to_columns(codes, q.scales)
            else:
                data = np.ascontiguousarray(codes).tobytes()
                scales = np.ascontiguousarray(q.scales, "<f2").tobytes()
        assert (len(data), len(scales)) == (d_len, s_len), name  # the layout pass agrees
        buf[d_off : d_off + d_len] = data
        buf[s_off : s_off + s_len] = scales
        layer = int(name.split(".")[1]) if name.startswith("layers.") else GLOBAL_LAYER
        _ENTRY.pack_into(buf, table_offset + TABLE_ENTRY_BYTES * i, KINDS[leaf], DTYPE_CODES[dtype],
                         layer, rows, cols, d_off, d_len, s_off, s_len, layout)

    header = dict(
        magic=MAGIC, version=VERSION, total_bytes=total, crc32=0, header_bytes=HEADER_BYTES,
        dim=c.dim, hidden_dim=c.hidden_dim, n_layers=c.n_layers, n_heads=c.n_heads,
        n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, vocab_size=c.vocab_size,
        max_seq_len=c.max_seq_len, ctx_len=ctx_len,
        arena_bytes=arena_bytes(c, ctx_len, group_size), group_size=group_size,
        activation=ACTIVATIONS[c.activation], flags=int(c.tied_classifier),
        rope_theta=c.rope_theta, norm_eps=c.norm_eps, n_tensors=len(names),
        tensor_table_offset=table_offset, tokenizer_offset=tokenizer_offset,
        tokenizer_bytes=len(tokenizer_section), sparsity_offset=sparsity_offset,
        sparsity_bytes=len(sparsity_section),
    )
    buf[: _HEADER.size] = _HEADER.pack(*(header[f] for f in _HEADER_FIELDS))
    name_bytes = model.name.encode("utf-8")[:_NAME_BYTES]
    buf[_NAME_OFFSET : _NAME_OFFSET + len(name_bytes)] = name_bytes
    struct.pack_into("<I", buf, 12, zlib.crc32(memoryview(buf)[16:]))
    return bytes(buf)


# ---------------------------------------------------------------------------- load


def is_blob(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == struct.pack("<I", MAGIC)
    except (IsADirectoryError, FileNotFoundError):
        return False


def _check_range(what: str, offset: int, size: int, total: int) -> None:
    if offset % ALIGN:
        raise MoteError(f"{what} offset {offset} is not aligned to {ALIGN}")
    if offset + size > total:
        raise MoteError(f"{what} [{offset}, {offset + size}) lies outside the blob ({total} bytes)")


def _shortest(value: float) -> float:
    """The shortest decimal that is this float32 (1e-05, not 9.99999974737875e-06)."""
    return float(str(np.float32(value)))


def load(source: Path | str | bytes) -> Blob:
    """Read and validate a blob; any violation of the spec raises MoteError."""
    where = "blob" if isinstance(source, bytes) else str(source)
    try:
        buf = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as err:
        raise MoteError(f"cannot read {where}: {err.strerror}") from None
    if len(buf) >= 4 and buf[:4] != struct.pack("<I", MAGIC):
        raise MoteError(f"{where}: not a .mote blob (magic {bytes(buf[:4])!r})")
    if len(buf) < HEADER_BYTES:
        raise MoteError(f"{where}: truncated: {len(buf)} bytes, shorter than the {HEADER_BYTES}-byte header")
    h = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(buf)))
    if h["magic"] != MAGIC:
        raise MoteError(f"{where}: not a .mote blob (magic {h['magic']:#010x})")
    if h["version"] != VERSION:
        raise MoteError(f"{where}: format version {h['version']}, this tool reads version {VERSION}")
    total = h["total_bytes"]
    if total > len(buf):
        raise MoteError(f"{where}: truncated: header says {total} bytes, file has {len(buf)}")
    if total < HEADER_BYTES or h["header_bytes"] != HEADER_BYTES:
        raise MoteError(f"{where}: corrupt header (total {total}, header {h['header_bytes']} bytes)")
    crc = zlib.crc32(memoryview(buf)[16:total])
    if crc != h["crc32"]:
        raise MoteError(f"{where}: CRC mismatch (stored {h['crc32']:#010x}, computed {crc:#010x}): the blob is corrupted")
    activation = {v: k for k, v in ACTIVATIONS.items()}.get(h["activation"])
    dims_ok = (
        all(h[k] > 0 for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "vocab_size", "max_seq_len", "ctx_len"))
        and h["n_heads"] % h["n_kv_heads"] == 0
        and h["head_dim"] % 2 == 0
        and h["ctx_len"] <= h["max_seq_len"]
        and h["group_size"] >= 2
        and h["group_size"] % 2 == 0
        and activation is not None
    )
    if not dims_ok:
        raise MoteError(f"{where}: impossible hyperparameters in the header")
    name = bytes(buf[_NAME_OFFSET : _NAME_OFFSET + _NAME_BYTES]).rstrip(b"\0").decode("utf-8", "replace")
    config = Config(
        dim=h["dim"], hidden_dim=h["hidden_dim"], n_layers=h["n_layers"], n_heads=h["n_heads"],
        n_kv_heads=h["n_kv_heads"], head_dim=h["head_dim"], vocab_size=h["vocab_size"],
        max_seq_len=h["max_seq_len"], activation=activation,
        rope_theta=_shortest(h["rope_theta"]), norm_eps=_shortest(h["norm_eps"]),
        tied_classifier=bool(h["flags"] & 1),
    )
    group = h["group_size"]
    expected = expected_shapes(config)
    names = list(expected)
    if h["n_tensors"] != len(names):
        raise MoteError(f"{where}: {h['n_tensors']} tensors in the table, expected {len(names)}")
    table = h["tensor_table_offset"]
    _check_range("tensor table", table, TABLE_ENTRY_BYTES * len(names), total)
    _check_range("tokenizer section", h["tokenizer_offset"], h["tokenizer_bytes"], total)
    sparsity = None
    if h["sparsity_bytes"] or h["sparsity_offset"]:
        _check_range("sparsity section", h["sparsity_offset"], h["sparsity_bytes"], total)
        if h["sparsity_offset"] < HEADER_BYTES:
            raise MoteError(f"{where}: sparsity section overlaps the header")
        sparsity = sparse.parse_section(
            bytes(buf[h["sparsity_offset"] : h["sparsity_offset"] + h["sparsity_bytes"]]),
            config.n_layers, where)

    tensors: dict[str, BlobTensor] = {}
    for i, tname in enumerate(names):
        kind, dtype_code, layer, rows, cols, d_off, d_len, s_off, s_len, layout = _ENTRY.unpack_from(
            buf, table + i * TABLE_ENTRY_BYTES
        )
        leaf = tname.rsplit(".", 1)[-1]
        want_layer = int(tname.split(".")[1]) if tname.startswith("layers.") else GLOBAL_LAYER
        shape = expected[tname]
        want_rows, want_cols = (1, shape[0]) if len(shape) == 1 else shape
        dtype = DTYPE_NAMES.get(dtype_code)
        if KIND_NAMES.get(kind) != leaf or layer != want_layer:
            raise MoteError(f"{where}: table entry {i} is kind {kind} layer {layer}, expected {tname}")
        if (rows, cols) != (want_rows, want_cols):
            raise MoteError(f"{where}: {tname} is {rows}x{cols}, expected {want_rows}x{want_cols}")
        allowed = ("f32",) if role_of(tname) == "norm" else ("q8", "q4")
        if dtype not in allowed:
            raise MoteError(f"{where}: {tname} has dtype {dtype_code}, not allowed for it")
        want_layout = sparse.layout_of(tname, sparsity)
        if layout != want_layout or (layout and dtype != "q8"):
            raise MoteError(f"{where}: {tname} has layout {layout} ({dtype}), the sparsity section implies {want_layout} (q8)")
        if layout == sparse.LAYOUT_BUNDLED:
            _load_bundled(buf, where, tname, leaf, config, group, (d_off, d_len, s_off, s_len), total, tensors)
            continue
        if dtype == "f32":
            want_data, want_scales = 4 * rows * cols, 0
        else:
            row_bytes = cols if dtype == "q8" else -(-cols // 2)
            want_data, want_scales = rows * row_bytes, 2 * rows * n_groups(cols, group)
        if (d_len, s_len) != (want_data, want_scales):
            raise MoteError(f"{where}: {tname} has {d_len}+{s_len} bytes, expected {want_data}+{want_scales}")
        _check_range(f"{tname} data", d_off, d_len, total)
        if dtype == "f32":
            values = np.frombuffer(buf, "<f4", rows * cols, d_off).reshape(rows, cols)
            if rows == 1:
                values = values.reshape(cols)
            tensors[tname] = BlobTensor(tname, dtype, rows, cols, values)
            continue
        _check_range(f"{tname} scales", s_off, s_len, total)
        raw = np.frombuffer(buf, np.uint8 if dtype == "q4" else np.int8, d_len, d_off)
        scales = np.frombuffer(buf, "<f2", s_len // 2, s_off)
        if layout == sparse.LAYOUT_COLUMNS:
            codes, scales = sparse.from_columns(raw, scales, rows, cols)
        else:
            codes = unpack_q4(raw.reshape(rows, -1), cols) if dtype == "q4" else raw.reshape(rows, cols)
            scales = scales.reshape(rows, -1)
        tensors[tname] = BlobTensor(tname, dtype, rows, cols, codes, scales)

    tok = bytes(buf[h["tokenizer_offset"] : h["tokenizer_offset"] + h["tokenizer_bytes"]])
    return Blob(
        config=config, name=name, group_size=group, ctx_len=h["ctx_len"],
        arena_bytes=h["arena_bytes"], total_bytes=total, tensors=tensors,
        tokenizer_section=tok, sparsity=sparsity,
    )


def _load_bundled(buf, where: str, tname: str, leaf: str, config: Config, group: int,
                  ranges: tuple[int, int, int, int], total: int, tensors: dict[str, BlobTensor]) -> None:
    """w_up's entry holds the bundled region (w_up and w_down); w_down's is empty."""
    d_off, d_len, s_off, s_len = ranges
    dim, hidden = config.dim, config.hidden_dim
    if leaf == "w_down":
        if ranges != (0, 0, 0, 0):
            raise MoteError(f"{where}: {tname} is bundled into w_up, its entry must be empty")
        return
    want = sparse.bundled_region_bytes(dim, hidden, group)
    if (d_len, s_off, s_len) != (want, 0, 0) or dim % 2:
        raise MoteError(f"{where}: {tname} bundled region is {d_len}+{s_len} bytes, expected {want}+0")
    _check_range(f"{tname} bundled region", d_off, d_len, total)
    region = np.frombuffer(buf, np.uint8, d_len, d_off)
    up_codes, up_scales, down_codes, down_scales = sparse.unbundle(region, dim, hidden, group)
    down_name = tname.replace("w_up", "w_down")
    tensors[tname] = BlobTensor(tname, "q8", hidden, dim, up_codes, up_scales)
    tensors[down_name] = BlobTensor(down_name, "q8", dim, hidden, down_codes, down_scales)
