"""Quantization and the .mote blob: round trip, partial groups, and rejection of
every kind of damage."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from mote.format import blob as blobfile
from mote.importers import load_model
from mote.model import MoteError
from shared_models import model_path
from mote.quant.groups import CODE_RANGE, pack_q4, quantize_activations, quantize_matrix, unpack_q4


@pytest.fixture(scope="module")
def stories():
    return load_model(model_path("stories260K.bin"), model_path("tok512.bin"))


@pytest.fixture(scope="module")
def stories_int8(stories) -> bytes:
    return blobfile.pack(stories, "int8", 32, 256)


def test_group_quantization_handles_a_partial_last_group():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((7, 172)).astype(np.float32)  # 172 = 5·32 + 12
    w[:, 160:] *= 20  # the short group has its own, much larger, scale
    for dtype in ("q8", "q4"):
        q = quantize_matrix(w, dtype, 32)
        assert q.codes.shape == (7, 172) and q.scales.shape == (7, 6)
        lo, hi = CODE_RANGE[dtype]
        assert lo <= q.codes.min() and q.codes.max() <= hi
        # every group within a step or two of its own largest weight (clipping allowed)
        err = np.abs(q.dequantize() - w)
        for g in range(6):
            amax = np.abs(w[:, 32 * g : 32 * g + 32]).max(axis=1)
            assert np.all(err[:, 32 * g : 32 * g + 32].max(axis=1) <= 0.16 * amax), (dtype, g)
        # the last group's scale is its own, not the padded group's
        assert np.all(np.abs(q.scales[:, 5].astype(np.float32)) > 5 * np.abs(q.scales[:, :5].astype(np.float32)).max(axis=1))


def test_q4_packing_round_trips_odd_widths():
    rng = np.random.default_rng(2)
    codes = rng.integers(-8, 8, (5, 13)).astype(np.int8)
    packed = pack_q4(codes)
    assert packed.shape == (5, 7)
    assert np.array_equal(unpack_q4(packed, 13), codes)
    assert packed[0, 0] == (int(codes[0, 0]) & 0xF) | ((int(codes[0, 1]) & 0xF) << 4)
    unsigned = rng.integers(0, 16, (5, 13)).astype(np.int8)  # q4a's codes
    assert np.array_equal(unpack_q4(pack_q4(unsigned), 13, signed=False), unsigned)


def test_int4a_round_trips_its_pairs(stories):
    blob = blobfile.load(blobfile.pack(stories, "int4a", 32, 64))
    t = blob.tensors["layers.0.w_down"]
    assert t.dtype == "q4a" and blob.tensors["tok_embedding"].dtype == "q8"
    q = quantize_matrix(np.asarray(stories.tensors["layers.0.w_down"], np.float32), "q4a", 32)
    assert np.array_equal(t.values, q.codes) and np.array_equal(t.scales, q.scales)


def test_activation_quantization_follows_the_spec():
    x = np.array([[0.0, 0.0, 1.0, -2.0, 0.5]], np.float32)
    codes, scales = quantize_activations(x, 2)
    assert scales[0, 0] == 0 and not codes[0, 0].any()
    assert scales[0, 1] == np.float32(2) / np.float32(127)
    assert list(codes[0, 1]) == [64, -127]  # rint(1 · 63.5) = 64 (half to even)
    assert list(codes[0, 2]) == [127, 0]


def test_round_trip_gives_back_the_quantized_tensors(stories, stories_int8):
    blob = blobfile.load(stories_int8)
    assert blob.config == stories.config
    assert blob.total_bytes == len(stories_int8) and blob.ctx_len == 256
    assert blob.arena_bytes == blobfile.arena_bytes(stories.config, 256, 32)
    for name, w in stories.tensors.items():
        t = blob.tensors[name]
        if t.dtype == "f32":
            assert np.array_equal(t.values, w)
        else:
            q = quantize_matrix(w, t.dtype, 32)
            assert np.array_equal(t.values, q.codes) and np.array_equal(t.scales, q.scales)


def test_int4_and_mixed_choose_dtypes_per_tensor(stories):
    for scheme, ffn, attention in (("int4", "q4", "q4"), ("mixed", "q4", "q8")):
        blob = blobfile.load(blobfile.pack(stories, scheme, 32, 256))
        assert blob.tensors["tok_embedding"].dtype == "q8"
        assert blob.tensors["layers.0.w_down"].dtype == ffn
        assert blob.tensors["layers.0.wq"].dtype == attention
        for name, w in stories.tensors.items():
            t = blob.tensors[name]
            if t.dtype == "q4":  # packed nibbles come back as the same codes
                assert np.array_equal(t.values, quantize_matrix(w, "q4", 32).codes)


def test_every_section_is_aligned(stories_int8):
    n, table, tokenizer = struct.unpack_from("<III", stories_int8, 80)
    assert table % 32 == 0 and tokenizer % 32 == 0
    for i in range(n):
        _, _, _, _, _, d_off, _, s_off, _, _ = struct.unpack_from("<BBHIIIIIII", stories_int8, table + 32 * i)
        assert d_off % 32 == 0 and s_off % 32 == 0


def _with_crc(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, 12, zlib.crc32(memoryview(buf)[16:]))
    return bytes(buf)


def test_flipped_bytes_are_caught(stories_int8):
    rng = np.random.default_rng(3)
    for offset in rng.integers(0, len(stories_int8), 200):
        broken = bytearray(stories_int8)
        broken[offset] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(MoteError):
            blobfile.load(bytes(broken))


def test_truncation_is_caught(stories_int8):
    for length in (0, 3, 100, 255, 256, 1000, len(stories_int8) // 2, len(stories_int8) - 1):
        with pytest.raises(MoteError, match="truncated"):
            blobfile.load(stories_int8[:length])


def test_version_and_magic_are_checked(stories_int8):
    for version in (blobfile.VERSION - 1, blobfile.VERSION + 1):
        other = bytearray(stories_int8)
        struct.pack_into("<I", other, 4, version)
        with pytest.raises(MoteError, match=f"format version {version} is not supported"):
            blobfile.load(bytes(other))
    with pytest.raises(MoteError, match="not a .mote blob"):
        blobfile.load(b"GGUF" + stories_int8[4:])


def test_out_of_bounds_offsets_are_caught_even_with_a_valid_crc(stories_int8):
    table = struct.unpack_from("<I", stories_int8, 84)[0]
    for field_offset, value in ((12, len(stories_int8)), (12, 0xFFFFFFE0), (12, 33), (16, 7)):
        broken = bytearray(stories_int8)
        struct.pack_into("<I", broken, table + 32 + field_offset, value)
        with pytest.raises(MoteError):
            blobfile.load(_with_crc(broken))
    wrong_shape = bytearray(stories_int8)
    struct.pack_into("<I", wrong_shape, table + 4, 513)
    with pytest.raises(MoteError, match="tok_embedding is 513x64"):
        blobfile.load(_with_crc(wrong_shape))


def test_bad_arguments_are_refused(stories):
    with pytest.raises(MoteError, match="group size"):
        blobfile.pack(stories, "int8", 31)
    with pytest.raises(MoteError, match="context"):
        blobfile.pack(stories, "int8", 32, 100000)
    with pytest.raises(MoteError, match="unknown quantization"):
        blobfile.pack(stories, "int3", 32)


def test_bytes_from_shapes_is_the_serialized_length():
    from tiny_model import all_q4a, tiny_model

    for model, quant, group in ((tiny_model(1), "int8", 32), (tiny_model(2, hidden=30), "int4", 6),
                                (tiny_model(3, tied=False, n_layers=2), "mixed", 8),
                                (tiny_model(4), all_q4a(tiny_model(4).config), 8)):
        blob = blobfile.quantize(model, quant, group, 8)
        dtypes = {name: t.dtype for name, t in blob.tensors.items()}
        assert blobfile.bytes_from_shapes(model, dtypes, group, None) == len(blobfile.serialize(blob))
