"""bench/sparsity.py's cache of the original dense model's logits: a configuration
compared with it must see exactly the logits a plain runner gives, across the chunks a
window is scored in, from memory or from the --cache directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mote.eval import perplexity as perplexity_module
from mote.eval import sparsity
from mote.eval.perplexity import tokenizer_of
from mote.format import blob as mote_blob
from mote.reference.forward import Runner
from tiny_model import tiny_model

BENCH = Path(__file__).resolve().parents[1] / "bench" / "sparsity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sparsity", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dense_logits_equal_a_plain_runner_across_chunks(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(perplexity_module, "POSITIONS_PER_CALL", 8)  # 4 chunks per window of 32
    blob = mote_blob.load(mote_blob.pack(tiny_model(), "int8", 32, 32))
    tok = tokenizer_of(blob)
    text = "the quick brown fox jumps over the lazy dog " * 12
    exact = sparsity.compare(Runner(blob), Runner(blob), tok, text)
    assert exact.kl == 0.0
    for runner in (bench.DenseLogits(Runner(blob)),  # in memory
                   bench.DenseLogits(Runner(blob), limit=0, store=tmp_path),  # computes, fills the store
                   bench.DenseLogits(Runner(blob), limit=0, store=tmp_path)):  # all from the store
        got = sparsity.compare(Runner(blob), runner, tok, text)
        assert (got.dense_nll, got.kl) == (exact.nll, 0.0)
        both_sides = sparsity.compare(runner, runner, tok, text)  # the original dense row
        assert (both_sides.nll, both_sides.dense_nll, both_sides.kl) == (exact.nll, exact.nll, 0.0)
    assert len(list(tmp_path.glob("*.npy"))) > 4


def test_budget_curves_are_kept_in_the_cache(bench, tmp_path, monkeypatch):
    """--cache keeps a budget's per-layer curves: a later run on the same blob, windows
    and levels reads them instead of measuring them again; other levels measure anew."""
    from types import SimpleNamespace

    import numpy as np

    data = mote_blob.pack(tiny_model(seed=1, dim=32, hidden=64, n_layers=2), "int8", 16, 32)
    blob = mote_blob.load(data)
    rng = np.random.default_rng(0)
    windows = [[int(t) for t in rng.integers(3, blob.config.vocab_size, 32)] for _ in range(2)]
    runs = bench.Bench(SimpleNamespace(levels=[0.3, 0.6]), {}, tmp_path)
    first = runs.calibrator(data, blob, windows, tmp_path / "cache").curves()
    assert len(list((tmp_path / "cache").glob("curves-*.json"))) == 1
    measured = []
    monkeypatch.setattr(bench.budgets.Calibrator, "_kl_alone", lambda *a: measured.append(a) or 0.0)
    assert runs.calibrator(data, blob, windows, tmp_path / "cache").curves() == first and not measured
    runs.args.levels = [0.5]
    assert len(runs.calibrator(data, blob, windows, tmp_path / "cache").curves()[0].kl) == 2 and measured


def test_stories260k_fine_tuning_seeds_are_not_evaluation_or_calibration_seeds(bench):
    """stories260K's fine-tuning stories (--write-stories) must not be the stories it is
    evaluated or calibrated on: the same seed samples the same story."""
    finetune = set(bench.FINETUNE_SEEDS)
    assert finetune and not finetune & set(bench.EVAL_SEEDS) and not finetune & set(bench.CALIB_SEEDS)


def test_keep_replaces_only_what_is_measured_again(bench):
    runs = [{"model": m, "variant": v, "config": c} for m, v, c in [
        ("a", "original", "dense"), ("a", "original", "bytes=0.5"), ("a", "ft1", "dense"), ("a", "ft2", "dense"),
        ("b", "original", "dense")]]

    def names(rows):
        return [(r["model"], r["variant"], r["config"]) for r in rows]

    assert names(bench.kept_runs(runs, ["a"], [])) == [("b", "original", "dense")]
    assert names(bench.kept_runs(runs, ["a"], ["ft2"])) == [
        ("a", "original", "bytes=0.5"), ("a", "ft1", "dense"), ("b", "original", "dense")]
