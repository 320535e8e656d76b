"""The host reader and the firmware accept and refuse exactly the same blobs, for the
same reason: a corpus of valid and broken blobs (the fuzz seeds plus seeded
corruptions of every kind of field) goes through mote.format.blob.load and through
mote_model_open (firmware/build/linux/blob_verdict, `make -C firmware tools`)."""

from __future__ import annotations

import math
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from mote import chat
from mote.format import blob as mote_blob
from mote.format import spec
from mote.format.sparsity import POINTS, Sparsity
from mote.model import MoteError
from cbuild import build_tool
from tiny_model import all_q4a, tiny_model

ROOT = Path(__file__).resolve().parents[1]
FUZZ_CORPUS = ROOT / "tests" / "fuzz" / "corpus"
STATUSES = ["ok"] + [status for status, _ in spec.REASONS]  # mote.h's mote_status order
HEADER = {name: (offset, kind) for name, offset, kind in spec.HEADER}
ENTRY = {name: (offset, kind) for name, offset, kind in spec.ENTRY}
SPARSITY = {name: (offset, kind) for name, offset, kind in spec.SPARSITY}
CHAT = {name: (offset, kind) for name, offset, kind in spec.CHAT}


def sealed(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, HEADER["crc32"][0], zlib.crc32(memoryview(buf)[spec.CRC_START:]))
    return bytes(buf)


def edit(blob: bytes, offset: int, kind: str, value, crc: bool = True) -> bytes:
    buf = bytearray(blob)
    if kind.startswith("bytes"):
        buf[offset] = value
    else:
        struct.pack_into({"u8": "<B", "u16": "<H", "u32": "<I", "f32": "<f"}[kind], buf, offset, value)
    return sealed(buf) if crc else bytes(buf)


def u32(blob: bytes, name: str) -> int:
    return struct.unpack_from("<I", blob, HEADER[name][0])[0]


def header_edits(blob: bytes) -> list[bytes]:
    """Every header field set to values at and around its limits, the CRC recomputed."""
    out = []
    for name, (offset, kind) in HEADER.items():
        if name == "crc32":
            continue
        if kind == "f32":
            values = [math.nan, -math.inf, math.inf, -1.0, 0.0, -0.0, 1e-30, 0.5, 1.0, 2.9e38, 3.0e38, 3.1e38]
        elif kind.startswith("bytes"):
            length = int(kind.split(":")[1])
            out += [edit(blob, offset + i, kind, 0x41) for i in (0, length - 1)]
            continue
        else:
            v = u32(blob, name)
            values = {0, 1, 2, 3, 7, 32, 224, 255, 256, 1024, 1026, 2048, 65536, 65537,
                      spec.MAX_LAYERS, spec.MAX_LAYERS + 1, spec.MAX_DIM, spec.MAX_DIM + 1,
                      0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, v + 1, v + 32, v * 2,
                      max(v - 1, 0), max(v - 32, 0), v | 2, v ^ 0x80000000}
            values = sorted(x & 0xFFFFFFFF for x in values)
        out += [edit(blob, offset, kind, x) for x in values]
    return out


def table_edits(blob: bytes, rng: np.random.Generator) -> list[bytes]:
    """Table entries' fields: offsets below the header, past the end, misaligned,
    another tensor's range, wrong sizes, kinds, dtypes (an f32 embedding), layouts."""
    table = u32(blob, "tensor_table_offset")
    n = u32(blob, "n_tensors")
    out = []
    for index in sorted({0, 1, 2, n - 2, n - 1, *rng.integers(0, n, 3).tolist()}):
        entry = table + index * spec.TABLE_ENTRY_BYTES
        for name, (offset, kind) in ENTRY.items():
            width = {"u8": "<B", "u16": "<H", "u32": "<I"}[kind]
            v = struct.unpack_from(width, blob, entry + offset)[0]
            top = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF}[kind]
            values = {0, 1, 2, 3, 4, 32, 64, 224, 255 & top, top, v + 1, v + 32, max(v - 32, 0),
                      len(blob), len(blob) - 32}
            out += [edit(blob, entry + offset, kind, x & top) for x in sorted(values) if x & top != v]
        # tok_embedding as f32 with f32 sizes: the spec has no f32 embedding
        if index == 0:
            buf = bytearray(blob)
            rows, cols = struct.unpack_from("<II", blob, entry + ENTRY["rows"][0])
            struct.pack_into("<B", buf, entry + ENTRY["dtype"][0], 0)
            struct.pack_into("<IIII", buf, entry + ENTRY["data_offset"][0],
                             spec.HEADER_BYTES, 4 * rows * cols, 0, 0)
            out.append(sealed(buf))
    return out


def section_edits(blob: bytes, rng: np.random.Generator) -> list[bytes]:
    """Flipped bytes in the tokenizer and sparsity sections, the CRC recomputed."""
    out = []
    for off_name, len_name in (("tokenizer_offset", "tokenizer_bytes"), ("sparsity_offset", "sparsity_bytes"),
                               ("chat_offset", "chat_bytes")):
        start, size = u32(blob, off_name), u32(blob, len_name)
        if not size:
            continue
        for at in sorted({*range(start, start + min(size, 96), 4), *rng.integers(start, start + size, 12).tolist()}):
            buf = bytearray(blob)
            buf[at] ^= 1 << int(rng.integers(0, 8))
            out.append(sealed(buf))
    if u32(blob, "sparsity_bytes"):
        start = u32(blob, "sparsity_offset")
        for name, (offset, kind) in SPARSITY.items():
            if kind == "f32":
                continue
            if kind.startswith("bytes"):
                out.append(edit(blob, start + offset, kind, 1))
            else:
                out += [edit(blob, start + offset, kind, x) for x in (0, 1, 16, 0xFFFFFFFF)]
        first = start + spec.SPARSITY_HEADER_BYTES
        out += [edit(blob, first + 4 * i, "f32", x) for i in (0, 1) for x in (math.nan, -1.0, math.inf, 0.0)]
    return out


def corrupt(blob: bytes, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    total = len(blob)
    out = [blob[:n] for n in (0, 1, 3, 4, 100, 255, 256, 257, total // 2, total - 1)]
    out.append(blob + b"\0" * 32)  # trailing bytes past total_bytes are not the blob's
    for at in rng.integers(0, total, 40):  # flipped bits, CRC left stale
        buf = bytearray(blob)
        buf[at] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(buf))
    for at in rng.integers(0, min(total, 4096), 40):  # flipped bits, CRC recomputed
        buf = bytearray(blob)
        buf[at] ^= 1 << int(rng.integers(0, 8))
        out.append(sealed(buf) if at >= spec.CRC_START else bytes(buf))
    return (out + header_edits(blob) + table_edits(blob, rng) + section_edits(blob, rng)
            + chat_edits(blob) + overlap_edits(blob) + value_edits(blob))


def chat_edits(blob: bytes) -> list[bytes]:
    """The chat section's fields at and past their limits, and its segments' bytes made
    wrong in place: a missing or extra content mark, a token id past the vocabulary, a
    token mark cut short, bytes that are not UTF-8; the CRC recomputed."""
    start, size = u32(blob, "chat_offset"), u32(blob, "chat_bytes")
    if not size:
        return []
    vocab = u32(blob, "vocab_size")
    out = []
    for name, (offset, kind) in CHAT.items():
        if kind.startswith("bytes"):
            out += [edit(blob, start + offset + i, kind, x) for i in (0, 1, 15) for x in (0x00, 0x20, 0x41, 0x7F)
                    if i < int(kind[6:])]
            continue
        v = struct.unpack_from("<I", blob, start + offset)[0]
        values = {0, 1, 2, 4, 5, vocab - 1, vocab, 0xFFFF, 0xFFFFFFFF, v + 1, max(v - 1, 0), v + 4,
                  spec.CHAT_SEGMENT_MAX, spec.CHAT_SEGMENT_MAX + 1, spec.CHAT_SYSTEM_MAX + 1}
        out += [edit(blob, start + offset, kind, x & 0xFFFFFFFF) for x in sorted(values) if x != v]
    at = start + spec.CHAT_HEADER_BYTES
    for seg in spec.CHAT_SEGMENTS:
        length = struct.unpack_from("<I", blob, start + CHAT[f"{seg}_bytes"][0])[0]
        data = blob[at : at + length]
        for i, byte in enumerate(data):
            if byte == spec.CHAT_CONTENT_MARK:
                out.append(edit(blob, at + i, "bytes", ord("x")))  # content gone
            elif byte == spec.CHAT_TOKEN_MARK:
                out.append(edit(edit(blob, at + i + 1, "bytes", vocab & 0xFF), at + i + 2, "bytes", vocab >> 8))
            elif byte < 0x80 and i in (0, length - 1):
                out += [edit(blob, at + i, "bytes", x) for x in (0x80, 0xC3, spec.CHAT_CONTENT_MARK,
                                                                 spec.CHAT_TOKEN_MARK)]
        at += length
    return out


def value_edits(blob: bytes) -> list[bytes]:
    """NaN and infinity in every tensor's stored floats (the first and last f32 norm value,
    the first and last f16 scale; in a bundled region a w_down scale and a w_up row
    scale), the CRC recomputed; and the largest finite f16, which must pass."""
    dim = u32(blob, "dim")
    table, n = u32(blob, "tensor_table_offset"), u32(blob, "n_tensors")
    out = []
    for i in range(n):
        entry = table + i * spec.TABLE_ENTRY_BYTES
        dtype = blob[entry + ENTRY["dtype"][0]]
        d_off, d_len, s_off, s_len, layout = struct.unpack_from("<IIIII", blob, entry + ENTRY["data_offset"][0])
        if dtype == 0:  # f32
            spots = [(d_off, "<f", v) for v in (math.nan, math.inf)] + [(d_off + d_len - 4, "<f", -math.inf)]
        elif s_len:
            spots = [(s_off, "<H", v) for v in (0x7E00, 0x7C00, 0x7BFF)] + [(s_off + s_len - 2, "<H", 0xFC00)]
        elif d_len:  # a bundled region: w_down's first scale, then the first neuron's up-row scale
            up_scales = d_off + 2 * dim + dim
            spots = [(d_off, "<H", 0x7E00), (up_scales, "<H", 0x7C00), (up_scales, "<H", 0x7BFF)]
        else:
            continue
        for at, fmt, value in spots:
            buf = bytearray(blob)
            struct.pack_into(fmt, buf, at, value)
            out.append(sealed(buf))
    return out


def overlap_edits(blob: bytes) -> list[bytes]:
    """The last matrix's data pointed at the tensor table, the tokenizer section and the
    first matrix's data (in bounds, aligned, right size: only the overlap is wrong)."""
    table, n = u32(blob, "tensor_table_offset"), u32(blob, "n_tensors")
    entry = lambda i: table + i * spec.TABLE_ENTRY_BYTES  # noqa: E731
    d_off = ENTRY["data_offset"][0]
    last = max(i for i in range(n) if struct.unpack_from("<I", blob, entry(i) + ENTRY["data_bytes"][0])[0])
    targets = [table, u32(blob, "tokenizer_offset"), struct.unpack_from("<I", blob, entry(0) + d_off)[0]]
    return [edit(blob, entry(last) + d_off, "u32", t) for t in targets]


def bases() -> list[bytes]:
    sparse = Sparsity(POINTS, np.full((2, len(POINTS)), 0.05, np.float32), 0.25)
    return [
        mote_blob.pack(tiny_model(1), quant="int8", group_size=32, ctx=8),
        mote_blob.pack(tiny_model(2, hidden=30), quant="int4", group_size=6, ctx=8),
        mote_blob.pack(tiny_model(3, activation="relu", tied=False, n_layers=2), quant="mixed",
                       group_size=8, ctx=4),
        mote_blob.pack(tiny_model(4, n_layers=2), quant="int8", group_size=8, ctx=8, sparsity=sparse),
        mote_blob.pack(tiny_model(5), quant="int8", group_size=16, ctx=8,
                       chat=chat.named("llama2", tiny_model(5).tokenizer, "Be brief.")),
        mote_blob.pack(tiny_model(6, tied=False), quant=all_q4a(tiny_model(6, tied=False).config), group_size=10,
                       ctx=8),
    ]


def host_verdict(data: bytes) -> tuple[str, str]:
    try:
        mote_blob.load(data)
    except mote_blob.BlobError as err:
        return err.status, err.reason
    except MoteError as err:  # a refusal without a firmware status is a mismatch
        return "unmapped", str(err)
    return "ok", "ok"


@pytest.fixture(scope="module")
def tool() -> Path:
    """blob_verdict from `make -C firmware tools`, in the default build."""
    return build_tool("blob_verdict")


def test_host_and_firmware_give_the_same_verdicts(tool, tmp_path):
    corpus = [p.read_bytes() for p in sorted(FUZZ_CORPUS.glob("*.mote"))]
    for seed, base in enumerate(bases()):
        corpus += [base, *corrupt(base, seed)]
    paths = []
    for i, data in enumerate(corpus):
        paths.append(tmp_path / f"{i:05d}.mote")
        paths[-1].write_bytes(data)
    run = subprocess.run([str(tool), *map(str, paths)], capture_output=True, text=True, check=True)
    firmware = [line.split(" ", 1) for line in run.stdout.splitlines()]
    assert len(firmware) == len(corpus)
    mismatches, seen = [], {}
    for path, data, (code, reason) in zip(paths, corpus, firmware):
        fw = (STATUSES[int(code)], reason)
        host = host_verdict(data)
        seen[fw[0]] = seen.get(fw[0], 0) + 1
        if host != fw:
            mismatches.append(f"{path.name}: firmware {fw}, host {host}")
    assert not mismatches, f"{len(mismatches)} of {len(corpus)} differ:\n" + "\n".join(mismatches[:20])
    # the corpus reaches every check: it accepts some and refuses for every reason
    assert set(seen) == set(STATUSES), seen
    print(f"{len(corpus)} blobs, verdicts {seen}")


def test_a_version_1_blob_is_told_to_reconvert():
    v1 = edit(bases()[0], HEADER["version"][0], "u32", 1)
    with pytest.raises(mote_blob.BlobError, match="format version 1 is not supported") as err:
        mote_blob.load(v1)
    assert err.value.status == "version" and "reconvert with mote convert" in str(err.value)
