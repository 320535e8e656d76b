"""Quantization that keeps quality: the group scale search, activation-aware weights
from calibration text, and mixed precision by measured sensitivity (--quant auto)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from shared_models import model_path

from mote.boards.catalog import load_board
from mote.eval.perplexity import perplexity, tokenizer_of
from mote.format import blob as blobfile
from mote.model import MoteError
from mote.pipeline import ConvertOptions, convert
from mote.quant.gptq import gptq_matrix
from mote.quant.groups import CODE_RANGE, quantize_matrix
from mote.quant.precision import Option, choose
from mote.reference.forward import Runner

EVAL_TOKENS = 2048


def output_error(w: np.ndarray, q, gram: np.ndarray) -> float:
    """tr((W - Q) H (W - Q)^T): the squared error of the matrix's outputs that GPTQ minimises."""
    d = w - q.dequantize()
    return float(np.einsum("ri,ij,rj->", d, gram, d))


def weighted_error(w: np.ndarray, deq: np.ndarray, h: np.ndarray) -> float:
    return float(np.sum(h * np.square(w - deq)))


def rtn(w: np.ndarray, qmax: int, group: int) -> np.ndarray:
    """Round to nearest with the group's amax / qmax as scale: what the writer did before."""
    g = w.reshape(w.shape[0], -1, group)
    s = (np.abs(g).max(axis=-1, keepdims=True) / qmax).astype(np.float16).astype(np.float32)
    return (np.clip(np.rint(g / s), -qmax, qmax) * s).reshape(w.shape)


def test_the_search_beats_round_to_nearest_and_follows_importance():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 96)).astype(np.float32) * rng.uniform(0.2, 3, 96).astype(np.float32)
    ones = np.ones(96)
    for dtype, qmax in (("q4", 7), ("q8", 127)):
        q = quantize_matrix(w, dtype, 32)
        lo, hi = CODE_RANGE[dtype]
        assert lo <= q.codes.min() and q.codes.max() <= hi
        assert weighted_error(w, q.dequantize(), ones) < weighted_error(w, rtn(w, qmax, 32), ones)
    assert quantize_matrix(w, "q4", 32).codes.min() == -8  # the sixteenth level is used
    # inputs 0..47 matter 100 times more: their error falls, the matrix's output error too
    h = np.where(np.arange(96) < 48, 100.0, 1.0)
    plain, aware = quantize_matrix(w, "q4", 32), quantize_matrix(w, "q4", 32, importance=h)
    assert weighted_error(w[:, :48], aware.dequantize()[:, :48], 1) < weighted_error(w[:, :48], plain.dequantize()[:, :48], 1)
    assert weighted_error(w, aware.dequantize(), h) < weighted_error(w, plain.dequantize(), h)


def test_q4a_fits_shifted_groups_better_than_q4_and_follows_importance():
    """q4a's offset places its 16 levels over [min, max]: on weights that are not
    centred at zero it errs far less than q4; its codes are 0..15, its pairs f16."""
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((64, 100)) * 0.5 + rng.uniform(-2, 2, (64, 1))).astype(np.float32)
    ones = np.ones(100)
    q4, q4a = quantize_matrix(w, "q4", 32), quantize_matrix(w, "q4a", 32)
    assert q4a.codes.min() == 0 and q4a.codes.max() == 15
    assert q4a.scales.shape == (64, 4, 2) and q4a.scales.dtype == np.float16
    assert weighted_error(w, q4a.dequantize(), ones) < 0.5 * weighted_error(w, q4.dequantize(), ones)
    h = np.where(np.arange(100) < 50, 100.0, 1.0)
    aware = quantize_matrix(w, "q4a", 32, importance=h)
    assert weighted_error(w, aware.dequantize(), h) < weighted_error(w, q4a.dequantize(), h)


def test_gptq_lowers_the_output_error_on_correlated_inputs():
    """Against the importance-weighted search (the codes GPTQ starts from), error
    feedback lowers tr((W - Q) H (W - Q)^T) where the inputs are correlated, the case
    it exists for; on the calibration inputs and on fresh ones from the same source."""
    rng = np.random.default_rng(5)
    cols = 96
    mixing = np.eye(cols) + 0.4 * rng.standard_normal((cols, cols))
    channel = rng.uniform(0.2, 3, cols)

    def gram(n: int) -> np.ndarray:
        x = rng.standard_normal((n, cols)) @ mixing * channel
        return x.T @ x / n

    calib, fresh = gram(2000), gram(2000)
    w = rng.standard_normal((48, cols)).astype(np.float32)
    for dtype in ("q4", "q4a", "q8"):
        searched = quantize_matrix(w, dtype, 32, importance=np.diag(calib))
        fed_back = gptq_matrix(w, dtype, 32, calib)
        lo, hi = CODE_RANGE[dtype]
        assert lo <= fed_back.codes.min() and fed_back.codes.max() <= hi
        assert np.array_equal(fed_back.scales, searched.scales)  # the scales are the search's
        for h in (calib, fresh):
            assert output_error(w, fed_back, h) < 0.8 * output_error(w, searched, h), dtype


def test_zero_groups_and_partial_groups():
    w = np.zeros((3, 40), np.float32)
    w[1, 35:] = [1.0, -2.0, 0.5, 3.0, -0.25]  # only the short last group of row 1
    q = quantize_matrix(w, "q4", 32)
    assert q.scales.shape == (3, 2) and not q.scales[0].any() and not q.codes[0].any()
    assert np.abs(q.dequantize()[1, 35:] - w[1, 35:]).max() <= np.abs(q.scales[1, 1].astype(np.float32)) / 2
    # GPTQ too, with an input that is silent on the calibration text
    x = np.random.default_rng(1).standard_normal((200, 40))
    x[:, 3] = 0
    g = gptq_matrix(w, "q4", 32, x.T @ x / 200)
    assert not g.scales[0].any() and not g.codes[0].any() and np.isfinite(g.dequantize()).all()
    for a in (quantize_matrix(w, "q4a", 32), gptq_matrix(w, "q4a", 32, x.T @ x / 200)):
        assert not a.scales[0].any() and not a.dequantize()[0].any() and np.isfinite(a.dequantize()).all()
        assert np.abs(a.dequantize()[1, 35:] - w[1, 35:]).max() <= np.abs(a.scales[1, 1, 0].astype(np.float32)) / 2


def test_choose_takes_the_least_kl_per_byte_then_steps_back_what_is_not_needed():
    options = [Option("a", "q4", 0.010, 100), Option("b", "q4", 0.001, 50), Option("c", "q4", 0.004, 100),
               Option("d", "q4", -0.001, 10)]
    assert choose(options, 0) == []
    assert [c.name for c in choose(options, 55)] == ["d", "b"]
    # d, b, c by KL per byte save 160; b is then not needed, and d with c cost less than d, b and c
    assert [c.name for c in choose(options, 61)] == ["d", "c"]


def test_choose_between_q4_and_q4a():
    def dtypes(options, must_save):
        return {c.name: c.dtype for c in choose(options, must_save)}

    # a's q4a costs a tenth of its q4 for 20 fewer bytes: taken where its saving is enough
    a = [Option("a", "q4", 0.010, 100), Option("a", "q4a", 0.001, 80)]
    b = [Option("b", "q4", 0.050, 100), Option("b", "q4a", 0.049, 80)]  # q4a: hardly less KL for fewer bytes
    assert dtypes(a + b, 80) == {"a": "q4a"}
    assert dtypes(a + b, 100) == {"a": "q4"}  # q4a saves too little: the larger saving it is
    assert dtypes(a + b, 170) == {"a": "q4a", "b": "q4"}
    assert dtypes(a + b, 200) == {"a": "q4", "b": "q4"}
    # a q4a that costs more than q4 is never chosen
    assert dtypes([Option("a", "q4", 0.01, 100), Option("a", "q4a", 0.02, 80)], 50) == {"a": "q4"}


@pytest.fixture(scope="module")
def mcu(tmp_path_factory):
    """mcu-1m-silu: calibration on the first 20 % of heldout.txt, evaluation on the rest."""
    path = model_path("mcu-1m-silu")
    heldout = (path / "heldout.txt").read_text(encoding="utf-8")
    cut = len(heldout) // 5
    calib = tmp_path_factory.mktemp("calib") / "calib.txt"
    calib.write_text(heldout[:cut], encoding="utf-8")
    return path, calib, heldout[cut:]


def ppl(blob: blobfile.Blob, text: str) -> float:
    return perplexity(Runner(blob), tokenizer_of(blob), text, EVAL_TOKENS).ppl


def test_calibration_makes_int4_better(mcu):
    path, calib, text = mcu
    plain = convert(path, ConvertOptions(quant="int4")).blob
    aware = convert(path, ConvertOptions(quant="int4", calib=calib, calib_tokens=2048)).blob
    assert ppl(aware, text) < ppl(plain, text)


def test_auto_at_the_size_of_mixed_beats_mixed_and_reports_its_choice(mcu, tmp_path):
    path, calib, text = mcu
    mixed = convert(path, ConvertOptions(quant="mixed", calib=calib, calib_tokens=512))
    out = tmp_path / "auto.mote"
    done = subprocess.run([sys.executable, "-m", "mote", "convert", str(path), "-o", str(out), "--quant", "auto",
                           "--budget", str(len(mixed.data)), "--calib", str(calib), "--calib-tokens", "512"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"matrices for a budget of {len(mixed.data):,} bytes" in done.stdout
    auto = blobfile.load(out)
    four_bit = {n: t.dtype for n, t in auto.tensors.items() if t.dtype in ("q4", "q4a")}
    assert four_bit and all(f"  {d:3s} {n} " in done.stdout for n, d in four_bit.items())  # the choice reported
    assert out.stat().st_size <= len(mixed.data)
    assert {t.dtype for t in auto.tensors.values()} - set(four_bit.values()) == {"f32", "q8"}
    assert ppl(auto, text) < ppl(mixed.blob, text)


def test_auto_refusals(mcu):
    path, calib, _ = mcu
    for options, message in ((dict(budget=10**6), "on --calib TEXT"),
                             (dict(calib=calib), "needs --budget BYTES or --board B"),
                             (dict(calib=calib, calib_tokens=64, budget=100_000), "over the budget of 100,000")):
        with pytest.raises(MoteError, match=message):
            convert(path, ConvertOptions(quant="auto", **options))
    # --board B: its model partition is the budget (the smaller one when --budget is given too)
    board = dataclasses.replace(load_board("qemu-m7"), model_size=90_000)
    for budget in (None, 10**6):
        with pytest.raises(MoteError, match="over the budget of 90,000"):
            convert(path, ConvertOptions(quant="auto", calib=calib, calib_tokens=64, budget=budget), board)
    with pytest.raises(MoteError, match="--budget is for --quant auto"):
        convert(path, ConvertOptions(quant="int4", budget=10**6))
