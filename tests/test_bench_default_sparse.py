"""bench/default_sparse.py's bounds: the default blob with fixed drop fractions per point,
one threshold column per point, and a fraction of 1 dropping every activation there."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mote.eval import sparsity
from mote.format import blob as mote_blob
from mote.format.sparsity import POINTS
from mote.reference.forward import Runner
from tiny_model import tiny_model

BENCH = Path(__file__).resolve().parents[1] / "bench" / "default_sparse.py"
WINDOWS = [[3, 7, 11, 5, 9, 4, 12, 6, 8, 10, 3, 5, 7, 9, 11, 13]]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_default_sparse", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_point_gets_its_own_fraction(bench):
    model = tiny_model(n_layers=2)
    dense = mote_blob.pack(model, "int8", 16, 32)
    bound = mote_blob.load(bench.bound_blob(mote_blob.load(dense), WINDOWS, "gate=0.7,attn_in=0.3"))
    assert bound.sparsity.points == ("attn_in", "gate")
    for point, fraction in (("attn_in", 0.3), ("gate", 0.7)):
        alone, _ = sparsity.calibrate(mote_blob.load(dense), WINDOWS, fraction, points=(point,))
        i = POINTS.index(point)
        np.testing.assert_array_equal(bound.sparsity.thresholds[:, i], alone.thresholds[:, i])
        assert np.all(bound.sparsity.thresholds[:, i] > 0)


def test_a_fraction_of_one_drops_the_whole_ffn(bench):
    """gate=1: no neuron survives, so each token computes what a model without an FFN
    (w_down all zero) computes, exactly."""
    model = tiny_model(n_layers=2, activation="relu")
    no_ffn = tiny_model(n_layers=2, activation="relu")
    for layer in range(2):
        no_ffn.tensors[f"layers.{layer}.w_down"] = np.zeros_like(no_ffn.tensors[f"layers.{layer}.w_down"])
    dense = mote_blob.pack(model, "int8", 16, 32)
    bound = mote_blob.load(bench.bound_blob(mote_blob.load(dense), WINDOWS, "gate=1"))
    got = Runner(bound).forward_batch(WINDOWS[0], 0)
    want = Runner(mote_blob.load(mote_blob.pack(no_ffn, "int8", 16, 32))).forward_batch(WINDOWS[0], 0)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, Runner(mote_blob.load(dense)).forward_batch(WINDOWS[0], 0))
