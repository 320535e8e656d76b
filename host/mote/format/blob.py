"""Write and read `.mote` blobs (mote.format.spec is the format; docs/blob-format.md
describes it).

`pack` turns an imported float Model into blob bytes; `load` makes exactly the checks
firmware/core/blob.c makes, in the same order, and refuses with the same reason
(BlobError.status and .reason; tests/test_blob_verdicts.py compares both sides), then
returns the contents as numpy arrays.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mote.format import chat as chatfile
from mote.format.chat import ChatTemplate
from mote.format import sparsity as sparse
from mote.format import spec
from mote.model import Config, Model, MoteError, expected_shapes
from mote.format.sparsity import Sparsity
from mote.tokenizer import Tokenizer, pack_tokenizer
from mote.quant.groups import (
    CODE_RANGE,
    SCHEMES,
    QuantizedMatrix,
    n_groups,
    pack_q4,
    relative_error,
    role_of,
    unpack_q4,
)
from mote.quant.gptq import quantize_weights
from mote.quant.native import stored_exactly

MAGIC = spec.MAGIC
VERSION = spec.VERSION
HEADER_BYTES = spec.HEADER_BYTES
ALIGN = spec.ALIGN
TABLE_ENTRY_BYTES = spec.TABLE_ENTRY_BYTES
GLOBAL_LAYER = spec.GLOBAL_LAYER
MAX_GROUP = spec.MAX_GROUP

KINDS = {name: code for name, code, _ in spec.KINDS}
KIND_NAMES = {v: k for k, v in KINDS.items()}
KIND_DTYPES = {name: allowed for name, _, allowed in spec.KINDS}
SCALES_PER_GROUP = spec.SCALES_PER_GROUP
DTYPE_CODES = dict(spec.DTYPES)
DTYPE_NAMES = {v: k for k, v in DTYPE_CODES.items()}
ACTIVATIONS = dict(spec.ACTIVATIONS)
FLAG_TIED = 1 << dict(spec.FLAGS)["tied_classifier"]
KNOWN_FLAGS = sum(1 << bit for _, bit in spec.FLAGS)
REASONS = dict(spec.REASONS)
_STRUCT_CODES = {"u8": "B", "u16": "H", "u32": "I", "f32": "f"}


def _struct(fields: tuple) -> tuple[struct.Struct, list[str]]:
    """A little-endian struct over spec fields (which tile their record, no gaps)."""
    codes = "".join(f"{k[6:]}s" if k.startswith("bytes:") else _STRUCT_CODES[k] for _, _, k in fields)
    return struct.Struct("<" + codes), [name for name, _, _ in fields]


_HEADER, _HEADER_FIELDS = _struct(spec.HEADER)
_ENTRY, _ = _struct(spec.ENTRY)
_OFFSETS = {name: offset for name, offset, _ in spec.HEADER}
assert _HEADER.size == HEADER_BYTES and _ENTRY.size == TABLE_ENTRY_BYTES


class BlobError(MoteError):
    """A refused blob. `status` names the firmware's mote_status (spec.REASONS) and the
    message starts with the same reason text the firmware prints."""

    def __init__(self, where: str, status: str, detail: str):
        self.status, self.reason = status, REASONS[status]
        super().__init__(f"{where}: {self.reason}: {detail}")


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def tensor_order(config: Config) -> list[str]:
    """Tensor names in the table's fixed order."""
    return list(expected_shapes(config))


def arena_bytes(config: Config, ctx: int, group_size: int, chat: bool = False,
                batch: int = 1) -> int:
    """The arena the firmware carves (docs/blob-format.md, "Arena") for prefill passes
    of `batch` positions (a blob records batch 1); each piece is rounded up to 16 bytes,
    exactly as firmware/core/model.c does. A blob with a chat section also keeps the
    token at each position (the conversation's history)."""
    c, b = config, batch

    def piece(n: int) -> int:
        return -(-n // 16) * 16

    widest = max(c.dim, c.q_dim, c.hidden_dim)
    pieces = [
        4 * b * c.dim,  # x
        4 * b * c.dim,  # xb2
        4 * b * max(c.dim, c.q_dim),  # xb
        4 * b * c.q_dim,  # q
        4 * b * c.kv_dim,  # k
        4 * b * c.kv_dim,  # v
        4 * b * c.hidden_dim,  # hb
        4 * b * c.hidden_dim,  # hb2
        4 * ctx,  # att
        4 * c.vocab_size,  # logits
        b * widest,  # quantized activations
        4 * b * n_groups(widest, group_size),  # their scales
        4 * b * (c.head_dim // 2),  # rope cos
        4 * b * (c.head_dim // 2),  # rope sin
        c.n_layers * ctx * c.kv_dim,  # key cache
        c.n_layers * ctx * c.kv_dim,  # value cache
        2 * c.n_layers * ctx,  # key scales
        2 * c.n_layers * ctx,  # value scales
        max(4 * ctx, 8 * c.vocab_size),  # scratch: prompt ids, then sampler candidates
        4 * ctx if chat else 0,  # tokens: the id at each position, to re-prefill kept turns
    ]
    return sum(piece(n) for n in pieces)


def rope_table_bytes(config: Config, ctx: int) -> int:
    """The RoPE table of every position (ctx rows of head_dim/2 cos, then of sin), which
    firmware/core/model.c computes once when the arena has it beyond a single
    position's needs (mote_rope_table_bytes): not part of a blob's arena_bytes."""
    return 2 * (-(-4 * ctx * (config.head_dim // 2) // 16) * 16)


@dataclass
class BlobTensor:
    name: str
    dtype: str  # "f32", "q8", "q4", "q4a"
    rows: int
    cols: int
    values: np.ndarray  # float32 (rows, cols) for f32; int8 codes for q8/q4/q4a
    # float16 (rows, n_groups) for q8/q4; (rows, n_groups, 2) scale and offset for q4a
    scales: np.ndarray | None = None

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
    chat: ChatTemplate | None = None  # None: a completion model

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
    return rows * row_bytes, 2 * SCALES_PER_GROUP[dtype] * rows * n_groups(cols, group)


def tensor_dtypes(config: Config, quant: str) -> dict[str, str]:
    """Each tensor's dtype under a --quant scheme (norms f32)."""
    if quant not in SCHEMES:
        raise MoteError(f"unknown quantization {quant!r}; choose one of {', '.join(SCHEMES)}")
    scheme = SCHEMES[quant]
    return {name: "f32" if role_of(name) == "norm" else scheme[role_of(name)] for name in tensor_order(config)}


def quantize(
    model: Model,
    quant: str | dict[str, str] = "int8",
    group_size: int = 32,
    ctx: int | None = None,
    progress: Callable[[str], None] | None = None,
    errors: dict[str, float] | None = None,
    chat: ChatTemplate | None = None,
    grams: dict[str, np.ndarray] | None = None,
) -> Blob:
    """The quantized model in memory: what `load` returns for its blob, without the
    bytes (total_bytes 0 until `serialize`). `quant` is a scheme or every tensor's
    dtype (tensor_dtypes); `grams`, from calibration, are the mean x x^T of each
    matrix's inputs (mote.eval.activations), which GPTQ quantizes against
    (mote.quant.gptq.quantize_weights). A tensor whose checkpoint codes the format
    holds exactly (Model.source_codes, mote.quant.native) keeps them, and may so take
    another 4-bit dtype than the scheme's (GGUF Q4_1 is q4a). `errors`, if given, receives each
    quantized tensor's relative error; `progress` is called per tensor. Calibration
    runs the reference on this, before anything is packed."""
    if not 2 <= group_size <= MAX_GROUP or group_size % 2:
        raise MoteError(f"group size must be even and within 2..{MAX_GROUP}, got {group_size}")
    model.validate()
    c = model.config
    dtypes = tensor_dtypes(c, quant) if isinstance(quant, str) else quant
    ctx_len = c.max_seq_len if ctx is None else ctx
    if not 1 <= ctx_len <= c.max_seq_len:
        raise MoteError(f"context {ctx_len} outside 1..{c.max_seq_len} (the model's trained context)")
    tensors: dict[str, BlobTensor] = {}
    for name in tensor_order(c):
        if progress:
            progress(name)
        w = np.asarray(model.tensors[name], np.float32)
        rows, cols = (1, w.shape[0]) if w.ndim == 1 else w.shape
        dtype = dtypes[name]
        if dtype not in KIND_DTYPES[name.rsplit(".", 1)[-1]]:
            raise MoteError(f"{name} cannot be {dtype}")
        if dtype == "f32":
            tensors[name] = BlobTensor(name, dtype, rows, cols, w)
            continue
        # the checkpoint's own codes where the format holds them unchanged (GGUF Q4_1 as
        # q4a under a 4-bit scheme, ...), else the writer's quantizer
        native = model.source_codes.get(name)
        q = None if native is None else stored_exactly(native, dtype, group_size)
        if q is None:
            q = quantize_weights(w, dtype, group_size, None if grams is None else grams.get(name))
        dtype = q.dtype
        if not np.isfinite(q.scales).all():  # the runtime would refuse the blob ("values")
            limit = float(np.finfo(np.float16).max) * max(-CODE_RANGE[dtype][0], CODE_RANGE[dtype][1])
            raise MoteError(f"{model.name}: tensor {name} has weights up to {float(np.abs(w).max()):.4g}, "
                            f"beyond what {dtype} codes with f16 group scales hold ({limit:.4g})")
        if errors is not None:
            errors[name] = relative_error(w, q)
        tensors[name] = BlobTensor(name, dtype, rows, cols, q.codes, q.scales)
    return Blob(config=c, name=model.name, group_size=group_size, ctx_len=ctx_len,
                arena_bytes=arena_bytes(c, ctx_len, group_size, chat is not None), total_bytes=0,
                tensors=tensors, tokenizer_section=pack_tokenizer(model.tokenizer), chat=chat)


def bytes_from_shapes(model: Model, dtypes: dict[str, str], group_size: int, chat: ChatTemplate | None) -> int:
    """The length a blob of `model` with these tensor dtypes will have, from the
    shapes alone (nothing quantized)."""
    c = model.config
    tensors = {}
    for name in tensor_order(c):
        shape = np.shape(model.tensors[name])
        rows, cols = (1, shape[0]) if len(shape) == 1 else shape
        tensors[name] = BlobTensor(name, dtypes[name], rows, cols, np.empty(0, np.int8))
    return blob_bytes(Blob(config=c, name=model.name, group_size=group_size, ctx_len=1, arena_bytes=0,
                           total_bytes=0, tensors=tensors, tokenizer_section=pack_tokenizer(model.tokenizer),
                           chat=chat))


def _layout(blob: Blob) -> tuple[int, int, int, int, list, int]:
    """Where everything of `blob` goes, from shapes and dtypes alone: (table offset,
    tokenizer offset, sparsity offset, chat offset, per tensor (name, layout, data
    offset, data bytes, scales offset, scales bytes), total bytes)."""
    c, group_size, sparsity = blob.config, blob.group_size, blob.sparsity
    names = tensor_order(c)
    sparsity_bytes = len(sparse.pack_section(sparsity, c.n_layers)) if sparsity else 0
    chat_bytes = len(chatfile.pack_section(blob.chat)) if blob.chat else 0
    table_offset = align(HEADER_BYTES)
    tokenizer_offset = align(table_offset + TABLE_ENTRY_BYTES * len(names))
    cursor = align(tokenizer_offset + len(blob.tokenizer_section))
    sparsity_offset = cursor if sparsity_bytes else 0
    cursor = align(cursor + sparsity_bytes)
    chat_offset = cursor if chat_bytes else 0
    cursor = align(cursor + chat_bytes)
    plan = []
    for name in names:
        t = blob.tensors[name]
        layout = sparse.layout_of(name, sparsity)
        if layout != sparse.LAYOUT_ROWS and t.dtype != "q8":
            raise MoteError(f"sparse weight layouts are defined for q8 matrices; {name} is {t.dtype} "
                            "(use --quant int8)")
        data_bytes, scales_bytes = _stored_bytes(name, t.dtype, layout, t.rows, t.cols, group_size, c)
        data_offset = cursor if data_bytes else 0
        cursor = align(cursor + data_bytes)
        scales_offset = cursor if scales_bytes else 0
        cursor = align(cursor + scales_bytes)
        plan.append((name, layout, data_offset, data_bytes, scales_offset, scales_bytes))
    return table_offset, tokenizer_offset, sparsity_offset, chat_offset, plan, cursor


def blob_bytes(blob: Blob) -> int:
    """The length `serialize(blob)` will have."""
    return _layout(blob)[-1]


def serialize(blob: Blob) -> bytes:
    """Lay out a quantized model as .mote bytes, with the weight layouts its
    sparsity (if any) implies."""
    c, group_size, sparsity = blob.config, blob.group_size, blob.sparsity
    names = tensor_order(c)
    tokenizer_section = blob.tokenizer_section
    sparsity_section = sparse.pack_section(sparsity, c.n_layers) if sparsity else b""
    chat_section = chatfile.pack_section(blob.chat) if blob.chat else b""
    # First the layout, from shapes alone, so the blob is written in one buffer.
    table_offset, tokenizer_offset, sparsity_offset, chat_offset, plan, total = _layout(blob)
    if total > 0xFFFFFFFF:
        raise MoteError(f"blob would be {total} bytes; the format's offsets are 32-bit")
    buf = bytearray(total)
    buf[tokenizer_offset : tokenizer_offset + len(tokenizer_section)] = tokenizer_section
    buf[sparsity_offset : sparsity_offset + len(sparsity_section)] = sparsity_section
    buf[chat_offset : chat_offset + len(chat_section)] = chat_section

    for i, (name, layout, d_off, d_len, s_off, s_len) in enumerate(plan):
        t = blob.tensors[name]
        leaf = name.rsplit(".", 1)[-1]
        if t.dtype == "f32":
            data, scales = np.ascontiguousarray(t.values, "<f4").tobytes(), b""
        elif layout == sparse.LAYOUT_BUNDLED:
            # w_up's entry holds the region with w_down inside; w_down's entry is empty
            data, scales = b"", b""
            if leaf == "w_up":
                down = blob.tensors[name.replace("w_up", "w_down")]
                data = sparse.bundle(t.values, t.scales, down.values, down.scales, group_size)
        else:
            codes = t.values if t.dtype == "q8" else pack_q4(t.values)
            if layout == sparse.LAYOUT_COLUMNS:
                data, scales = sparse.to_columns(codes, t.scales)
            else:
                data = np.ascontiguousarray(codes).tobytes()
                scales = np.ascontiguousarray(t.scales, "<f2").tobytes()
        assert (len(data), len(scales)) == (d_len, s_len), name  # the layout pass agrees
        buf[d_off : d_off + d_len] = data
        buf[s_off : s_off + s_len] = scales
        layer = int(name.split(".")[1]) if name.startswith("layers.") else GLOBAL_LAYER
        _ENTRY.pack_into(buf, table_offset + TABLE_ENTRY_BYTES * i, KINDS[leaf], DTYPE_CODES[t.dtype],
                         layer, t.rows, t.cols, d_off, d_len, s_off, s_len, layout)

    header = dict(
        magic=MAGIC, version=VERSION, total_bytes=total, crc32=0, header_bytes=HEADER_BYTES,
        dim=c.dim, hidden_dim=c.hidden_dim, n_layers=c.n_layers, n_heads=c.n_heads,
        n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, vocab_size=c.vocab_size,
        max_seq_len=c.max_seq_len, ctx_len=blob.ctx_len,
        arena_bytes=blob.arena_bytes, group_size=group_size,
        activation=ACTIVATIONS[c.activation], flags=FLAG_TIED if c.tied_classifier else 0,
        rope_theta=c.rope_theta, norm_eps=c.norm_eps, n_tensors=len(names),
        tensor_table_offset=table_offset, tokenizer_offset=tokenizer_offset,
        tokenizer_bytes=len(tokenizer_section), sparsity_offset=sparsity_offset,
        sparsity_bytes=len(sparsity_section), chat_offset=chat_offset, chat_bytes=len(chat_section),
        name=blob.name.encode("utf-8"),
        reserved0=b"", reserved1=b"",  # struct zero-pads (and cuts the name to its field)
    )
    buf[:HEADER_BYTES] = _HEADER.pack(*(header[f] for f in _HEADER_FIELDS))
    seal(buf)
    return bytes(buf)


def pack(model: Model, quant: str = "int8", group_size: int = 32, ctx: int | None = None,
         progress: Callable[[str], None] | None = None, errors: dict[str, float] | None = None,
         sparsity: Sparsity | None = None, chat: ChatTemplate | None = None) -> bytes:
    """Quantize `model` and serialize it: the whole path for a model that needs no
    calibration (tests, tools)."""
    blob = quantize(model, quant, group_size, ctx, progress, errors, chat)
    blob.sparsity = sparsity
    return serialize(blob)


def seal(buf: bytearray) -> None:
    """Store the CRC of `buf` (a whole blob) in its header."""
    struct.pack_into("<I", buf, _OFFSETS["crc32"], zlib.crc32(memoryview(buf)[spec.CRC_START:]))


# ---------------------------------------------------------------------------- load


def is_blob(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == struct.pack("<I", MAGIC)
    except (IsADirectoryError, FileNotFoundError):
        return False


def _range_ok(offset: int, size: int, total: int) -> bool:
    """blob.c's range_ok plus the floor: aligned, past the header, inside the blob."""
    return offset % ALIGN == 0 and HEADER_BYTES <= offset <= total and size <= total - offset


def _shortest(value: float) -> float:
    """The shortest decimal that is this float32 (1e-05, not 9.99999974737875e-06)."""
    return float(str(np.float32(value)))


def _header_ok(h: dict) -> bool:
    """blob.c's read_config checks, the same limits (spec), the same comparisons."""
    dims = ("dim", "hidden_dim", "vocab_size")
    q_dim, kv_dim = h["n_heads"] * h["head_dim"], h["n_kv_heads"] * h["head_dim"]
    return (
        all(0 < h[k] <= spec.MAX_DIM for k in dims)
        and 0 < h["n_layers"] <= spec.MAX_LAYERS
        and h["n_heads"] > 0 and h["n_kv_heads"] > 0 and h["n_heads"] % h["n_kv_heads"] == 0
        and h["head_dim"] > 0 and h["head_dim"] % 2 == 0
        and q_dim <= spec.MAX_DIM and kv_dim <= spec.MAX_DIM
        and 0 < h["max_seq_len"] <= spec.MAX_SEQ_LEN
        and 0 < h["ctx_len"] <= h["max_seq_len"]
        and spec.MIN_GROUP <= h["group_size"] <= MAX_GROUP and h["group_size"] % 2 == 0
        and h["activation"] in ACTIVATIONS.values()
        and not h["flags"] & ~KNOWN_FLAGS
        # float32 bounds, compared as C compares them; NaN fails every comparison
        and 0.0 < h["rope_theta"] < float(np.float32(spec.ROPE_THETA_MAX))
        and 0.0 <= h["norm_eps"] < float(np.float32(spec.NORM_EPS_MAX))
    )


def load(source: Path | str | bytes) -> Blob:
    """Read and validate a blob; a violation of the spec raises BlobError, with the
    status and reason firmware/core/blob.c gives, after the checks it makes first."""
    where = "blob" if isinstance(source, bytes) else str(source)
    try:
        buf = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as err:
        raise MoteError(f"cannot read {where}: {err.strerror}") from None

    def fail(status: str, detail: str) -> BlobError:
        return BlobError(where, status, detail)

    if len(buf) < 4:
        raise fail("truncated", f"{len(buf)} bytes")
    if buf[:4] != struct.pack("<I", MAGIC):
        raise fail("magic", f"magic {bytes(buf[:4])!r}")
    if len(buf) < HEADER_BYTES:
        raise fail("truncated", f"{len(buf)} bytes, shorter than the {HEADER_BYTES}-byte header")
    h = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(buf)))
    if h["version"] != VERSION:
        raise fail("version", f"format version {h['version']} is not supported, this tool reads "
                              f"version {VERSION}")
    total = h["total_bytes"]
    if total > len(buf):
        raise fail("truncated", f"header says {total} bytes, file has {len(buf)}")
    if total < HEADER_BYTES:
        raise fail("header", f"total_bytes {total} is shorter than the header")
    crc = zlib.crc32(memoryview(buf)[spec.CRC_START:total])
    if crc != h["crc32"]:
        raise fail("crc", f"stored {h['crc32']:#010x}, computed {crc:#010x}")
    if h["header_bytes"] != HEADER_BYTES or any(any(h[r]) for r in spec.RESERVED):
        raise fail("header", f"header_bytes {h['header_bytes']} or reserved bytes set")
    if not _header_ok(h):
        raise fail("header", "a width, count, limit, flag or float is out of range")
    activation = {v: k for k, v in ACTIVATIONS.items()}[h["activation"]]
    name = h["name"].rstrip(b"\0").decode("utf-8", "replace")
    config = Config(
        dim=h["dim"], hidden_dim=h["hidden_dim"], n_layers=h["n_layers"], n_heads=h["n_heads"],
        n_kv_heads=h["n_kv_heads"], head_dim=h["head_dim"], vocab_size=h["vocab_size"],
        max_seq_len=h["max_seq_len"], activation=activation,
        rope_theta=_shortest(h["rope_theta"]), norm_eps=_shortest(h["norm_eps"]),
        tied_classifier=bool(h["flags"] & FLAG_TIED),
    )
    group = h["group_size"]
    has_chat = bool(h["chat_offset"] or h["chat_bytes"])
    want_arena = arena_bytes(config, h["ctx_len"], group, has_chat)
    if h["arena_bytes"] != want_arena or want_arena > 0xFFFFFFFF:
        raise fail("header", f"arena_bytes {h['arena_bytes']}, the model needs {want_arena}")

    sparsity = None
    s_off, s_len = h["sparsity_offset"], h["sparsity_bytes"]
    if s_off or s_len:
        if not _range_ok(s_off, s_len, total):
            raise fail("sparsity", f"[{s_off}, +{s_len}) is misaligned or outside [{HEADER_BYTES}, {total})")
        try:
            sparsity = sparse.parse_section(bytes(buf[s_off : s_off + s_len]), config.n_layers, where)
        except MoteError as err:
            raise fail("sparsity", str(err).removeprefix(f"{where}: ")) from None

    n_tensors = 2 + len(spec.LAYER_KINDS) * config.n_layers + (0 if config.tied_classifier else 1)
    table = h["tensor_table_offset"]
    if h["n_tensors"] != n_tensors:
        raise fail("table", f"{h['n_tensors']} tensors in the table, expected {n_tensors}")
    if not _range_ok(table, TABLE_ENTRY_BYTES * n_tensors, total):
        raise fail("table", f"tensor table at {table} is misaligned or outside [{HEADER_BYTES}, {total})")
    expected = expected_shapes(config)
    tensors: dict[str, BlobTensor] = {}
    for i, tname in enumerate(expected):
        entry = dict(zip(("kind", "dtype", "layer", "rows", "cols", "d_off", "d_len", "s_off",
                          "s_len", "layout"), _ENTRY.unpack_from(buf, table + i * TABLE_ENTRY_BYTES)))
        _load_tensor(buf, fail, tname, entry, expected[tname], config, group, sparsity, total, tensors)

    t_off, t_len = h["tokenizer_offset"], h["tokenizer_bytes"]
    if not _range_ok(t_off, t_len, total):
        raise fail("tokenizer", f"[{t_off}, +{t_len}) is misaligned or outside [{HEADER_BYTES}, {total})")
    tok = bytes(buf[t_off : t_off + t_len])
    try:
        tok_vocab = len(Tokenizer(tok).tokens)
    except MoteError as err:
        raise fail("tokenizer", str(err)) from None
    if tok_vocab != config.vocab_size:
        raise fail("tokenizer", f"{tok_vocab} tokens, the header says {config.vocab_size}")
    chat = None
    c_off, c_len = h["chat_offset"], h["chat_bytes"]
    if has_chat:
        if not _range_ok(c_off, c_len, total):
            raise fail("chat", f"[{c_off}, +{c_len}) is misaligned or outside [{HEADER_BYTES}, {total})")
        try:
            chat = chatfile.parse_section(bytes(buf[c_off : c_off + c_len]), config.vocab_size)
        except MoteError as err:
            raise fail("chat", str(err)) from None
    _check_disjoint(buf, fail, h, expected, table, total)
    _check_finite(fail, tensors)
    return Blob(
        config=config, name=name, group_size=group, ctx_len=h["ctx_len"],
        arena_bytes=h["arena_bytes"], total_bytes=total, tensors=tensors,
        tokenizer_section=tok, sparsity=sparsity, chat=chat,
    )


def _check_disjoint(buf, fail, h: dict, names, table: int, total: int) -> None:
    """blob.c's check_disjoint: no two non-empty regions (table, tokenizer, sparsity, each
    entry's data and scales) share a byte; the header is below every range already. Sorted
    here, pairwise there: the same verdict."""
    regions = [(table, TABLE_ENTRY_BYTES * len(names), "tensor table"),
               (h["tokenizer_offset"], h["tokenizer_bytes"], "tokenizer section"),
               (h["sparsity_offset"], h["sparsity_bytes"], "sparsity section"),
               (h["chat_offset"], h["chat_bytes"], "chat section")]
    for i, tname in enumerate(names):
        fields = _ENTRY.unpack_from(buf, table + i * TABLE_ENTRY_BYTES)
        d_off, d_len, s_off, s_len = fields[5:9]
        regions += [(d_off, d_len, f"{tname} data"), (s_off, s_len, f"{tname} scales")]
    previous = None
    for start, size, what in sorted(r for r in regions if r[1]):
        if previous is not None and start < previous[0] + previous[1]:
            raise fail("table", f"{what} [{start}, +{size}) overlaps {previous[2]} "
                                f"[{previous[0]}, +{previous[1]})")
        if previous is None or start + size > previous[0] + previous[1]:
            previous = (start, size, what)


def _check_finite(fail, tensors: dict[str, BlobTensor]) -> None:
    """blob.c's check_finite: every f32 norm value and every f16 scale is finite (a NaN
    one would make every logit NaN)."""
    for t in tensors.values():
        stored = t.values if t.scales is None else t.scales
        if not np.isfinite(stored).all():
            what = "value" if t.scales is None else "scale"
            raise fail("values", f"{t.name} has a NaN or infinite {what}")


def _load_tensor(buf, fail, tname: str, e: dict, shape: tuple[int, ...], config: Config, group: int,
                 sparsity: Sparsity | None, total: int, tensors: dict[str, BlobTensor]) -> None:
    """blob.c's read_tensor: kind, layer, shape, dtype, layout, then sizes and ranges."""
    leaf = tname.rsplit(".", 1)[-1]
    want_layer = int(tname.split(".")[1]) if tname.startswith("layers.") else GLOBAL_LAYER
    rows, cols = e["rows"], e["cols"]
    want_rows, want_cols = (1, shape[0]) if len(shape) == 1 else shape
    dtype = DTYPE_NAMES.get(e["dtype"])
    if KIND_NAMES.get(e["kind"]) != leaf or e["layer"] != want_layer:
        raise fail("table", f"entry is kind {e['kind']} layer {e['layer']}, expected {tname}")
    if (rows, cols) != (want_rows, want_cols):
        raise fail("table", f"{tname} is {rows}x{cols}, expected {want_rows}x{want_cols}")
    if dtype not in KIND_DTYPES[leaf]:
        raise fail("table", f"{tname} has dtype {e['dtype']}, the spec allows {'/'.join(KIND_DTYPES[leaf])}")
    layout, want_layout = e["layout"], sparse.layout_of(tname, sparsity)
    if layout != want_layout or (layout != sparse.LAYOUT_ROWS and dtype != "q8"):
        raise fail("table", f"{tname} has layout {layout} ({dtype}), the sparsity section implies "
                            f"{want_layout} (q8)")
    d_off, d_len, s_off, s_len = e["d_off"], e["d_len"], e["s_off"], e["s_len"]
    if layout == sparse.LAYOUT_BUNDLED:
        _load_bundled(buf, fail, tname, leaf, config, group, (d_off, d_len, s_off, s_len), total, tensors)
        return
    if dtype == "f32":
        want_data, want_scales = 4 * rows * cols, 0
    else:
        row_bytes = cols if dtype == "q8" else -(-cols // 2)
        want_data, want_scales = rows * row_bytes, 2 * SCALES_PER_GROUP[dtype] * rows * n_groups(cols, group)
    if (d_len, s_len) != (want_data, want_scales):
        raise fail("table", f"{tname} has {d_len}+{s_len} bytes, expected {want_data}+{want_scales}")
    if not _range_ok(d_off, d_len, total):
        raise fail("table", f"{tname} data [{d_off}, +{d_len}) is misaligned or outside "
                            f"[{HEADER_BYTES}, {total})")
    if want_scales and not _range_ok(s_off, s_len, total) or not want_scales and s_off:
        raise fail("table", f"{tname} scales at {s_off} (+{s_len}) are misaligned, outside "
                            f"[{HEADER_BYTES}, {total}) or present on an f32 tensor")
    if dtype == "f32":
        values = np.frombuffer(buf, "<f4", rows * cols, d_off).reshape(rows, cols)
        if rows == 1:
            values = values.reshape(cols)
        tensors[tname] = BlobTensor(tname, dtype, rows, cols, values)
        return
    raw = np.frombuffer(buf, np.int8 if dtype == "q8" else np.uint8, d_len, d_off)
    scales = np.frombuffer(buf, "<f2", s_len // 2, s_off)
    if layout == sparse.LAYOUT_COLUMNS:
        codes, scales = sparse.from_columns(raw, scales, rows, cols)
    else:
        codes = raw.reshape(rows, cols) if dtype == "q8" else \
            unpack_q4(raw.reshape(rows, -1), cols, signed=dtype == "q4")
        scales = scales.reshape((rows, -1, 2) if dtype == "q4a" else (rows, -1))
    tensors[tname] = BlobTensor(tname, dtype, rows, cols, codes, scales)


def _load_bundled(buf, fail, tname: str, leaf: str, config: Config, group: int,
                  ranges: tuple[int, int, int, int], total: int, tensors: dict[str, BlobTensor]) -> None:
    """w_up's entry holds the bundled region (w_up and w_down); w_down's is empty."""
    d_off, d_len, s_off, s_len = ranges
    dim, hidden = config.dim, config.hidden_dim
    if leaf == "w_down":
        if ranges != (0, 0, 0, 0):
            raise fail("table", f"{tname} is bundled into w_up, its entry must be empty")
        return
    want = sparse.bundled_region_bytes(dim, hidden, group)
    if (d_len, s_off, s_len) != (want, 0, 0) or dim % 2:
        raise fail("table", f"{tname} bundled region is {d_len}+{s_len} bytes, expected {want}+0")
    if not _range_ok(d_off, d_len, total):
        raise fail("table", f"{tname} bundled region [{d_off}, +{d_len}) is misaligned or outside "
                            f"[{HEADER_BYTES}, {total})")
    region = np.frombuffer(buf, np.uint8, d_len, d_off)
    up_codes, up_scales, down_codes, down_scales = sparse.unbundle(region, dim, hidden, group)
    down_name = tname.replace("w_up", "w_down")
    tensors[tname] = BlobTensor(tname, "q8", hidden, dim, up_codes, up_scales)
    tensors[down_name] = BlobTensor(down_name, "q8", dim, hidden, down_codes, down_scales)
