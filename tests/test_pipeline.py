"""mote.pipeline.convert: one pass (quantize, calibrate on the quantized model in
memory, serialize once) gives exactly the bytes of packing and reading back."""

from __future__ import annotations

import numpy as np
import pytest

from tiny_model import tiny_model

from mote.eval import sparsity as calibration
from mote.format import blob as blobfile
from mote.format.sparsity import POINTS, Sparsity


@pytest.mark.parametrize("quant", ["int8", "int4", "mixed"])
def test_serialize_of_a_loaded_blob_gives_its_bytes(quant):
    data = blobfile.pack(tiny_model(n_layers=2), quant, group_size=8)
    assert blobfile.serialize(blobfile.load(data)) == data


def test_the_in_memory_blob_is_what_load_reads():
    model = tiny_model(n_layers=2)
    blob = blobfile.quantize(model, "int4", group_size=8)
    loaded = blobfile.load(blobfile.serialize(blob))
    assert blob.arena_bytes == loaded.arena_bytes
    for name, t in blob.tensors.items():
        u = loaded.tensors[name]
        assert (t.dtype, t.rows, t.cols) == (u.dtype, u.rows, u.cols)
        assert np.array_equal(t.values, u.values)
        assert (t.scales is None) == (u.scales is None)
        if t.scales is not None:
            assert np.array_equal(t.scales, u.scales)


def test_sparse_layouts_round_trip():
    model = tiny_model(n_layers=2)
    blob = blobfile.quantize(model, "int8", group_size=8)
    blob.sparsity = Sparsity(POINTS, np.full((2, len(POINTS)), 0.05, np.float32), 0.25)
    data = blobfile.serialize(blob)
    assert blobfile.serialize(blobfile.load(data)) == data


def test_calibrating_in_memory_equals_calibrating_the_packed_blob():
    model = tiny_model(n_layers=2)
    windows = [[1, 5, 9, 3, 7, 2, 8, 4, 6]]
    in_memory = blobfile.quantize(model, "int8", group_size=8)
    packed = blobfile.load(blobfile.pack(model, "int8", group_size=8))
    a, _ = calibration.calibrate(in_memory, windows, 0.3)
    b, _ = calibration.calibrate(packed, windows, 0.3)
    assert np.array_equal(a.thresholds, b.thresholds)
