"""Broken blobs get the right mote_status from mote_model_open and never crash: the
runtime is built with ASan + UBSan (tests/c/mote_dump.c prints "open <status>")."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from cbuild import build_tool
from mote.format import spec
from mote.format import blob as mote_blob
from tiny_model import tiny_model

# mote.h's mote_status
OK, TRUNCATED, MAGIC, VERSION, CRC, HEADER, TABLE, TOKENIZER, SPARSITY, CHAT, VALUES = range(11)
TABLE_OFFSET_FIELD, TOKENIZER_OFFSET_FIELD = 84, 88


@pytest.fixture(scope="module")
def asan_dump() -> Path:
    return build_tool("mote_dump", "ref", sanitize=True)


@pytest.fixture(scope="module")
def good_blob() -> bytes:
    return mote_blob.pack(tiny_model(seed=1, n_layers=2), quant="mixed", group_size=8, ctx=16)


def open_status(tool: Path, data: bytes, tmp_path: Path, *extra: str) -> int:
    path = tmp_path / "case.mote"
    path.write_bytes(data)
    run = subprocess.run([str(tool), str(path), "--tokens", "1,5,9", "-n", "4", *extra],
                         capture_output=True, text=True, timeout=60)
    # a sanitizer report or a signal is a failure whatever the status
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr, run.stderr[-3000:]
    assert run.returncode in (0, 1), run.stderr[-3000:]
    if run.returncode == 0:
        assert run.stdout.startswith("prompt"), run.stdout
        return OK
    head, status, *_ = run.stdout.split()
    assert head == "open", run.stdout
    return int(status)


def with_crc(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 12, zlib.crc32(memoryview(data)[16:]))
    return bytes(data)


def u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]


def test_good_blob_opens(asan_dump, good_blob, tmp_path):
    assert open_status(asan_dump, good_blob, tmp_path) == OK


def test_truncated(asan_dump, good_blob, tmp_path):
    n = len(good_blob)
    cuts = sorted({0, 1, 4, 15, 16, 100, 255, 256, 257, 300, n // 2, n - 33, n - 1,
                   *range(0, n, max(1, n // 40))})
    for cut in cuts:
        assert open_status(asan_dump, good_blob[:cut], tmp_path) == TRUNCATED, cut


def test_magic_and_version(asan_dump, good_blob, tmp_path):
    bad = bytearray(good_blob)
    bad[0] ^= 0x01
    assert open_status(asan_dump, bytes(bad), tmp_path) == MAGIC
    for version in (spec.VERSION - 1, spec.VERSION + 1):
        bad = bytearray(good_blob)
        struct.pack_into("<I", bad, 4, version)
        assert open_status(asan_dump, bytes(bad), tmp_path) == VERSION


def test_flipped_bytes_fail_the_crc(asan_dump, good_blob, tmp_path):
    n = len(good_blob)
    for offset in sorted({12, 16, 20, 84, 300, 700, n // 3, n // 2, n - 40, n - 1}):
        bad = bytearray(good_blob)
        bad[offset] ^= 0x5A
        assert open_status(asan_dump, bytes(bad), tmp_path) == CRC, offset


def test_flipped_bytes_without_crc_never_crash(asan_dump, good_blob, tmp_path):
    """Past the CRC, any byte may be anything: open refuses or the model runs."""
    n = len(good_blob)
    for offset in range(16, n, max(1, n // 60)):
        bad = bytearray(good_blob)
        bad[offset] ^= 0xFF
        open_status(asan_dump, bytes(bad), tmp_path, "--no-crc")


def table_entry(blob: bytes, index: int) -> int:
    return u32(blob, TABLE_OFFSET_FIELD) + 32 * index


@pytest.mark.parametrize("field,value,status", [
    # (offset within the header, new u32, expected status) -- CRC recomputed
    (20, 17, HEADER),            # dim: arena and table no longer agree
    (28, 0, HEADER),             # no layers
    (28, 65, HEADER),            # more layers than MOTE_MAX_LAYERS
    (36, 3, HEADER),             # n_heads % n_kv_heads
    (40, 7, HEADER),             # odd head_dim
    (52, 33, HEADER),            # ctx_len > max_seq_len
    (56, 12345, HEADER),         # arena_bytes does not match the arena table
    (60, 7, HEADER),             # odd group size
    (64, 2, HEADER),             # unknown activation
    (68, 2, HEADER),             # unknown flag
    (16, 128, HEADER),           # header_bytes
    (80, 3, TABLE),              # n_tensors
    (84, 0xFFFFFFE0, TABLE),     # table offset far out of bounds
    (84, 33, TABLE),             # table misaligned
    (88, 0xFFFFFFE0, TOKENIZER), # tokenizer offset out of bounds
    (92, 0xFFFFFFFF, TOKENIZER), # tokenizer bytes overflow the blob
    (96, 64, SPARSITY),          # sparsity reserved in v1
    (104, 1, HEADER),            # reserved bytes not zero
])
def test_header_fields(asan_dump, good_blob, tmp_path, field, value, status):
    bad = bytearray(good_blob)
    struct.pack_into("<I", bad, field, value)
    assert open_status(asan_dump, with_crc(bad), tmp_path) == status


@pytest.mark.parametrize("index", [0, 2, 5, 19])
@pytest.mark.parametrize("field,value", [
    (0, 7),                      # kind out of order
    (1, 1),                      # f16 is allowed nowhere in v1
    (2, 9),                      # layer
    (4, 3),                      # rows
    (8, 5),                      # cols
    (12, 0xFFFFFFE0),            # data offset out of bounds, aligned
    (12, 0xFFFFFF00 - 32),       # data offset + bytes overflows 32 bits
    (12, 40),                    # data misaligned
    (16, 1),                     # data_bytes not what the dtype implies
    (24, 2),                     # scales_bytes not what the dtype implies
    (28, 1),                     # reserved
])
def test_table_entries(asan_dump, good_blob, tmp_path, index, field, value):
    bad = bytearray(good_blob)
    entry = table_entry(good_blob, index)
    if field < 4:
        width = 2 if field == 2 else 1
        bad[entry + field: entry + field + width] = value.to_bytes(width, "little")
    else:
        struct.pack_into("<I", bad, entry + field, value)
    if bytes(bad) == good_blob:
        pytest.skip("the mutation leaves the entry unchanged")
    assert open_status(asan_dump, with_crc(bad), tmp_path) == TABLE


def test_scales_offset_out_of_bounds(asan_dump, good_blob, tmp_path):
    bad = bytearray(good_blob)
    entry = table_entry(good_blob, 2)  # layer 0 wq: quantized, has scales
    struct.pack_into("<I", bad, entry + 20, len(good_blob))
    assert open_status(asan_dump, with_crc(bad), tmp_path) == TABLE


def test_tokenizer_section_garbage(asan_dump, good_blob, tmp_path):
    bad = bytearray(good_blob)
    start = u32(good_blob, TOKENIZER_OFFSET_FIELD)
    bad[start: start + 64] = bytes(range(64))
    assert open_status(asan_dump, with_crc(bad), tmp_path) == TOKENIZER


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_norm_is_refused(asan_dump, good_blob, tmp_path, value):
    """A NaN norm used to give NaN logits, read as token 0 forever (issue 16)."""
    bad = bytearray(good_blob)
    entry = table_entry(good_blob, 1)  # layer 0 attn_norm: f32
    struct.pack_into("<f", bad, u32(good_blob, entry + 12), value)
    assert open_status(asan_dump, with_crc(bad), tmp_path) == VALUES


def test_non_finite_scale_is_refused(asan_dump, good_blob, tmp_path):
    bad = bytearray(good_blob)
    entry = table_entry(good_blob, 2)  # layer 0 wq: its first f16 scale
    struct.pack_into("<H", bad, u32(good_blob, entry + 20), 0x7E00)
    assert open_status(asan_dump, with_crc(bad), tmp_path) == VALUES
