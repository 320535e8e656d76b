"""Sparsity budgets (mote.eval.budget): thresholds per layer and point chosen by
measured KL per byte meet a bytes budget or a KL budget on the calibration text, as
measured by the runtime's own rules, and spend it where it is cheap."""

from __future__ import annotations

import numpy as np
import pytest

from mote.eval import budget
from mote.eval.perplexity import tokenizer_of
from mote.eval.sparsity import calibrate, calibration_windows, counting_runner
from mote.format import blob as mote_blob
from mote.format.sparsity import POINTS
from mote.importers import load_model
from mote.model import MoteError
from shared_models import model_path

CTX = 64


@pytest.fixture(scope="module")
def dense():
    stories = load_model(model_path("stories260K.bin"), model_path("tok512.bin"))
    return mote_blob.load(mote_blob.pack(stories, "int8", 32, CTX))


@pytest.fixture(scope="module")
def windows(dense):
    text = model_path("ref-11m-silu/heldout.txt").read_text(encoding="utf-8")[:6000]
    return calibration_windows(tokenizer_of(dense), text, CTX, 256)


def measured(blob, sp, windows) -> float:
    """Weight bytes per token with `sp`, counted as the runtime counts them."""
    runner = counting_runner(blob)
    runner.sparsity = sp
    total = positions = 0
    for ids in windows:
        runner.reset()
        runner.forward_batch(ids, 0)
        total += sum(r.bytes for r in runner.reads)
        positions += len(ids)
    return total / positions


def test_parse_budget():
    assert budget.parse_budget("0.4") == budget.Budget("bytes", 0.4)
    assert budget.parse_budget("bytes=0.25") == budget.Budget("bytes", 0.25)
    assert budget.parse_budget("kl=0.02") == budget.Budget("kl", 0.02)
    for bad in ("0", "0.95", "kl=0", "kl", "x=0.3", "half"):
        with pytest.raises(MoteError, match="--sparsity must be"):
            budget.parse_budget(bad)


def test_bytes_budget_is_met_and_cheaper_than_uniform(dense, windows):
    a = budget.allocate(dense, windows, budget.Budget("bytes", 0.3))
    assert a.dense_bytes == measured(dense, None, windows)
    assert a.bytes == pytest.approx(measured(dense, a.sparsity, windows))
    assert a.skipped >= 0.3 and a.sparsity.target == pytest.approx(a.skipped)
    assert set(a.levels) == set(POINTS) and all(len(v) == dense.config.n_layers for v in a.levels.values())
    # one fraction for every point, as large as needed to skip as much, costs more KL
    from mote.eval.sparsity import compare
    from mote.reference.forward import Runner

    for fraction in np.arange(0.2, 0.9, 0.05):
        uniform, _ = calibrate(dense, windows, float(fraction))
        if 1 - measured(dense, uniform, windows) / a.dense_bytes >= a.skipped:
            break
    tok = tokenizer_of(dense)
    text = tok.decode([i for w in windows for i in w]).decode("utf-8", "replace")
    dense_runner = Runner(dense)
    kl = {}
    for name, sp in (("budget", a.sparsity), ("uniform", uniform)):
        runner = Runner(dense)
        runner.sparsity = sp
        kl[name] = compare(runner, dense_runner, tok, text, 256).kl
    assert kl["budget"] < kl["uniform"]


def test_kl_budget_is_respected(dense, windows):
    a = budget.allocate(dense, windows, budget.Budget("kl", 0.05), points=("gate", "ffn_in"))
    assert 0 < a.kl <= 0.05
    assert set(a.sparsity.points) <= {"gate", "ffn_in"} and a.skipped > 0
    curve = next(c for c in a.curves if c.point == "gate")
    assert curve.kl[0] == 0 and curve.saved[0] == 0 and max(curve.saved) > 0


def test_relu_keeps_its_natural_zeros():
    from tiny_model import tiny_model

    model = tiny_model(seed=3, dim=32, hidden=64, n_layers=2, activation="relu")
    blob = mote_blob.load(mote_blob.pack(model, "int8", 16, 32))
    rng = np.random.default_rng(0)
    windows = [list(rng.integers(3, blob.config.vocab_size, 32)) for _ in range(4)]
    a = budget.allocate(blob, windows, budget.Budget("bytes", 0.05), points=("gate",))
    # ReLU's zeros alone skip more than 5 %: threshold 0, no KL
    assert a.sparsity.points == ("gate",) and not a.sparsity.thresholds.any() and a.kl == 0
    gate = [c for c in a.curves if c.point == "gate"]
    assert all(c.fractions[0] > 0.2 and c.saved[0] > 0 for c in gate)


def test_a_shortfall_smaller_than_a_level_still_changes_the_levels():
    """When the measured total falls short of the budget by less than any level's step,
    the next allocation must still aim past the last prediction (else it repeats)."""
    from types import SimpleNamespace

    calibrator = budget.Calibrator.__new__(budget.Calibrator)
    calibrator.c, calibrator.natural = SimpleNamespace(n_layers=2), False
    curves = [budget.Curve(layer, "gate", [0, 0.5, 0.9], [0, 1, 2], [0, 30, 60], [0, 0.1, kl])
              for layer, kl in ((0, 0.5), (1, 0.6))]
    calibrator.curves = lambda: curves
    calibrator.dense_bytes = lambda: 200.0
    # the model together skips 5 bytes less than the curves predict
    calibrator.measure = lambda sp: (200 - (sum(30 * float(t) for t in sp.thresholds[:, POINTS.index("gate")]) - 5),
                                     0.1)
    a = calibrator.allocation(budget.Budget("bytes", 0.28))  # 56 bytes: levels (1, 1) predict 60, measure 55
    assert [r["measured"] for r in a.rounds][:2] == [55, 85] and a.skipped == pytest.approx(85 / 200)


def test_curves_given_are_reused_not_measured_again(dense, windows, monkeypatch):
    """bench/sparsity.py --cache hands a Calibrator the curves of an earlier run: its
    allocations must come from them, without a single per-point pass. (Levels of its
    own choosing: as many per curve, at those fractions.)"""
    first = budget.Calibrator(dense, windows, points=("gate",), levels=(0.3, 0.6))
    wanted = budget.Budget("bytes", 0.2)
    expected = first.allocation(wanted)
    curves = [budget.Curve(**vars(c)) for c in first.curves()]
    assert all(len(c.kl) == 3 and c.fractions[1:] == pytest.approx([0.3, 0.6], abs=0.02) for c in curves)
    monkeypatch.setattr(budget.Calibrator, "_kl_alone", lambda *a: pytest.fail("a curve was measured again"))
    again = budget.Calibrator(dense, windows, points=("gate",), curves=curves).allocation(wanted)
    assert again.levels == expected.levels and again.bytes == expected.bytes and again.kl == expected.kl
