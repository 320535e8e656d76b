"""Dynamic activation sparsity: the section and layouts round trip, calibration drops
the fraction asked for, S = 0 is exactly dense, and the C runtime (reference and x86
builds, ASan) equals the numpy reference: logits, greedy tokens and the rows, columns
and weight bytes read per token, exactly; prefill passes of several positions change no
bit."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mote.format import blob as mote_blob
from mote.eval import sparsity
from mote.format import sparsity as layouts
from mote.eval.perplexity import tokenizer_of
from mote.importers import load_model
from mote.model import MoteError
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler
from shared_models import model_path
from test_runtime_golden import BUILDS, X86, build_dump, run_dump
from tiny_model import tiny_model

PROMPT = [1, 403, 407, 261, 378]  # "Once upon a time" in tok512, BOS first
N_GENERATE = 48


@pytest.fixture(scope="module")
def stories():
    return load_model(model_path("stories260K.bin"), model_path("tok512.bin"))


@pytest.fixture(scope="module")
def calib_windows(stories):
    # calibration text: the first part of the held-out text the other models use
    text = model_path("ref-11m-silu/heldout.txt").read_text(encoding="utf-8")[:4000]
    dense = mote_blob.load(mote_blob.pack(stories, "int8", 32, 64))
    return sparsity.calibration_windows(tokenizer_of(dense), text, 64, 600)


@pytest.fixture(scope="module")
def blobs(stories, calib_windows, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sparse_blobs")
    dense_bytes = mote_blob.pack(stories, "int8", 32, 64)
    dense = mote_blob.load(dense_bytes)
    paths = {"dense": out / "dense.mote"}
    paths["dense"].write_bytes(dense_bytes)
    for name, target, points in (("s0", 0.0, layouts.POINTS), ("s40", 0.4, layouts.POINTS),
                                 ("cats50", 0.5, ("gate",)), ("teal30", 0.3, ("attn_in", "attn_out", "ffn_in"))):
        sp, _ = sparsity.calibrate(dense, calib_windows, target, points)
        paths[name] = out / f"{name}.mote"
        paths[name].write_bytes(mote_blob.pack(stories, "int8", 32, 64, sparsity=sp))
    return paths


@pytest.fixture(scope="module")
def dump_tools(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sparse_dump")
    return {b: build_dump(out / f"mote_dump_{b}", "ref" if b == "ref" or not X86 else "x86", b == "asan")
            for b in BUILDS}


def test_section_and_layouts_round_trip():
    model = tiny_model(dim=16, hidden=40, n_layers=2)  # hidden 40: a short last group of 8
    t = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    sp = layouts.Sparsity(layouts.POINTS, t, 0.25)
    dense = mote_blob.load(mote_blob.pack(model, "int8", 16))
    sparse = mote_blob.load(mote_blob.pack(model, "int8", 16, sparsity=sp))
    assert dense.sparsity is None
    assert sparse.sparsity.points == layouts.POINTS and np.array_equal(sparse.sparsity.thresholds, t)
    assert sparse.sparsity.target == np.float32(0.25)
    for name, tensor in dense.tensors.items():
        assert np.array_equal(tensor.values, sparse.tensors[name].values), name
        if tensor.scales is not None:
            assert np.array_equal(tensor.scales, sparse.tensors[name].scales), name


def test_layouts_follow_the_points():
    sp = layouts.Sparsity(("attn_out", "ffn_in"), np.zeros((1, 4), np.float32))
    assert [layouts.layout_of(f"layers.0.{n}", sp) for n in ("wq", "wo", "w_gate", "w_up", "w_down")] == [
        layouts.LAYOUT_ROWS, layouts.LAYOUT_COLUMNS, layouts.LAYOUT_COLUMNS, layouts.LAYOUT_COLUMNS,
        layouts.LAYOUT_ROWS]
    assert layouts.layout_of("tok_embedding", sp) == layouts.LAYOUT_ROWS


def test_bad_sections_are_refused():
    model = tiny_model()
    sp = layouts.Sparsity(("gate",), np.array([[0, 0, 0, 0.5]], np.float32))
    good = mote_blob.pack(model, "int8", 16, sparsity=sp)
    offset = struct.unpack_from("<I", good, 96)[0]

    def damaged(at: int, value: bytes) -> bytes:
        bad = bytearray(good)
        bad[offset + at: offset + at + len(value)] = value
        import zlib
        struct.pack_into("<I", bad, 12, zlib.crc32(memoryview(bad)[16:]))
        return bytes(bad)

    mote_blob.load(good)
    for at, value in ((0, b"XXXX"), (8, struct.pack("<I", 16)), (16, b"\1"),
                      (32, struct.pack("<f", 0.1)),  # threshold of a dense point
                      (44, struct.pack("<f", float("nan"))), (44, struct.pack("<f", -1.0))):
        with pytest.raises(MoteError):
            mote_blob.load(damaged(at, value))
    with pytest.raises(MoteError, match="q8"):
        mote_blob.pack(model, "int4", 16, sparsity=sp)


def test_calibration_drops_the_fraction_asked_for(stories, calib_windows):
    dense = mote_blob.load(mote_blob.pack(stories, "int8", 32, 64))
    sp, dropped = sparsity.calibrate(dense, calib_windows, 0.4)
    assert sp.points == layouts.POINTS and np.all(sp.thresholds > 0)
    for point, per_layer in dropped.items():
        assert all(abs(f - 0.4) < 0.01 for f in per_layer), point
    zero, _ = sparsity.calibrate(dense, calib_windows, 0.0)
    assert not zero.thresholds.any()
    with pytest.raises(MoteError, match="ReLU"):
        sparsity.calibrate(dense, calib_windows, 0.0, natural=True)


def test_zero_sparsity_is_exactly_dense_in_the_reference(blobs):
    ids = PROMPT + [300, 301, 302]
    dense = Runner(mote_blob.load(blobs["dense"])).forward_batch(ids, 0)
    s0 = Runner(mote_blob.load(blobs["s0"])).forward_batch(ids, 0)
    assert np.array_equal(dense, s0)
    s40 = Runner(mote_blob.load(blobs["s40"])).forward_batch(ids, 0)
    assert not np.array_equal(dense, s40)


def read_counts(stdout: str) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in line.split()[2:]) for line in stdout.splitlines()
            if line.startswith("reads ")]


def c_run(tool: Path, blob: Path, *extra: str) -> tuple[dict, list]:
    ids = ",".join(map(str, PROMPT))
    run = subprocess.run([str(tool), str(blob), "--tokens", ids, "--logits", str(len(PROMPT)),
                          "-n", str(N_GENERATE), "--reads", *extra],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run_dump(tool, blob, PROMPT, "--logits", str(len(PROMPT)), "-n", str(N_GENERATE), *extra), \
        read_counts(run.stdout)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name", ["s0", "s40", "cats50", "teal30"])
def test_c_runtime_matches_the_reference(dump_tools, blobs, build, name):
    blob = mote_blob.load(blobs[name])
    got, reads = c_run(dump_tools[build], blobs[name])
    greedy = generate(Runner(blob), PROMPT, N_GENERATE, Sampler(0.0))
    assert got["tokens"] == greedy
    counting = sparsity.counting_runner(blob)
    logits = counting.forward_batch(PROMPT + greedy[:-1], 0)
    assert reads == [r.as_tuple() for r in counting.reads]
    for pos in range(len(PROMPT)):
        # the batch and the token-by-token reference are equal; the C side prints %.9g
        assert np.max(np.abs(got["logits"][pos] - logits[pos])) <= 1e-6


def test_zero_sparsity_is_exactly_dense_in_c(dump_tools, blobs):
    tool = dump_tools["x86" if X86 else "ref"]
    dense, dense_reads = c_run(tool, blobs["dense"])
    s0, s0_reads = c_run(tool, blobs["s0"])
    assert dense["tokens"] == s0["tokens"]
    for pos in dense["logits"]:
        assert np.array_equal(dense["logits"][pos], s0["logits"][pos])
    # the same values, fewer weights read: zero codes exist even at S = 0 (none here
    # beyond exact zeros), so S = 0 reads at most what dense reads
    assert all(s[2] <= d[2] for s, d in zip(s0_reads, dense_reads))


def test_sparser_reads_less(dump_tools, blobs):
    tool = dump_tools["x86" if X86 else "ref"]
    _, dense_reads = c_run(tool, blobs["dense"])
    _, s40_reads = c_run(tool, blobs["s40"])
    dense_bytes = np.mean([r[2] for r in dense_reads])
    s40_bytes = np.mean([r[2] for r in s40_reads])
    assert s40_bytes < 0.85 * dense_bytes


def test_threads_change_no_bit(dump_tools, blobs):
    tool = dump_tools["x86" if X86 else "ref"]
    one, one_reads = c_run(tool, blobs["s40"])
    two, two_reads = c_run(tool, blobs["s40"], "--threads", "2")
    assert one["tokens"] == two["tokens"] and one_reads == two_reads
    for pos in one["logits"]:
        assert np.array_equal(one["logits"][pos], two["logits"][pos])


@pytest.mark.parametrize("name", ["s40", "cats50", "teal30"])
def test_prefill_in_passes_changes_no_bit(dump_tools, blobs, name):
    """Sparse matrices in a prefill pass: the column kernels and CATS run position by
    position inside it, the row-major ones once for all; the same bits as one position
    per pass."""
    tool = dump_tools["x86" if X86 else "ref"]
    ids = PROMPT + [300, 301, 302, 303, 304, 305, 306, 307]
    one = run_dump(tool, blobs[name], ids, "--logits", "64", "-n", "8", "--batch", "1")
    passes = run_dump(tool, blobs[name], ids, "--logits", "64", "-n", "8", "--batch", "5")
    assert sorted(passes["logits"]) == [4, 9, 12] + list(range(13, 20))
    assert passes["tokens"] == one["tokens"]
    for pos, got in passes["logits"].items():
        assert np.array_equal(got, one["logits"][pos]), pos


def test_c_refuses_a_bad_section(dump_tools, blobs, tmp_path):
    good = blobs["s40"].read_bytes()
    offset = struct.unpack_from("<I", good, 96)[0]
    bad = bytearray(good)
    struct.pack_into("<f", bad, offset + 32, float("inf"))
    path = tmp_path / "bad.mote"
    path.write_bytes(bytes(bad))
    run = subprocess.run([str(dump_tools["asan"]), str(path), "--tokens", "1", "--no-crc"],
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.startswith("open 8 ")  # MOTE_E_SPARSITY
    bad = bytearray(good)
    table = struct.unpack_from("<I", good, 84)[0]
    struct.pack_into("<I", bad, table + 32 * 2 + 28, 0)  # layer 0 wq: rows, the section says columns
    path.write_bytes(bytes(bad))
    run = subprocess.run([str(dump_tools["asan"]), str(path), "--tokens", "1", "--no-crc"],
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.startswith("open 6 ")  # MOTE_E_TABLE


def test_relu_natural_sparsity_is_exact_and_skips(dump_tools, tmp_path):
    model = tiny_model(seed=3, dim=16, hidden=40, n_layers=2, activation="relu")
    dense_bytes = mote_blob.pack(model, "int8", 16)
    sp, measured = sparsity.calibrate(mote_blob.load(dense_bytes), [[1, 20, 30, 40, 50, 60]], 0.0,
                                      natural=True)
    assert sp.points == ("gate",) and not sp.thresholds.any()
    assert all(0.2 < f < 0.8 for f in measured["gate"])  # random weights: about half are zeros
    paths = {"dense": tmp_path / "dense.mote", "natural": tmp_path / "natural.mote"}
    paths["dense"].write_bytes(dense_bytes)
    paths["natural"].write_bytes(mote_blob.pack(model, "int8", 16, sparsity=sp))
    ids = [1, 20, 30, 40, 50]
    ref = {k: Runner(mote_blob.load(p)).forward_batch(ids, 0) for k, p in paths.items()}
    assert np.array_equal(ref["dense"], ref["natural"])
    tool = dump_tools["ref"] if "ref" in dump_tools else dump_tools["asan"]
    runs = {}
    for k, p in paths.items():
        out = subprocess.run([str(tool), str(p), "--tokens", ",".join(map(str, ids)), "--logits", "5",
                              "--reads"], capture_output=True, text=True, timeout=60, check=True)
        runs[k] = out.stdout
    logits = {k: [line for line in v.splitlines() if line.startswith("logits")] for k, v in runs.items()}
    assert logits["dense"] == logits["natural"]
    dense_reads, natural_reads = read_counts(runs["dense"]), read_counts(runs["natural"])
    assert all(n[2] < d[2] for n, d in zip(natural_reads, dense_reads))
    counting = sparsity.counting_runner(mote_blob.load(paths["natural"]))
    counting.forward_batch(ids, 0)
    assert natural_reads == [r.as_tuple() for r in counting.reads]


def test_convert_and_eval_verbs(tmp_path, capsys):
    from mote.cli import main

    stories_bin, tok = model_path("stories260K.bin"), model_path("tok512.bin")
    calib = tmp_path / "calib.txt"
    calib.write_text(model_path("ref-11m-silu/heldout.txt").read_text(encoding="utf-8")[:3000])
    out = tmp_path / "s30.mote"
    assert main(["convert", str(stories_bin), "--tokenizer", str(tok), "-o", str(out), "--ctx", "64",
                 "--sparsity", "0.3", "--calib", str(calib), "--calib-tokens", "300"]) == 0
    report = capsys.readouterr().out
    assert "sparsity budget 0.3 of the weight bytes" in report
    sp = mote_blob.load(out).sparsity
    assert sp.points and sp.target >= 0.3  # the bytes skipped on the calibration text
    assert main(["eval", str(out), "--text", str(calib), "--max-tokens", "200", "--json"]) == 0
    import json
    record = json.loads(capsys.readouterr().out)
    assert record["mean_kl"] > 0 and record["reference_perplexity"] > 0
    assert main(["convert", str(stories_bin), "--tokenizer", str(tok), "-o", str(out),
                 "--sparsity", "0.3"]) == 2
    assert "needs --calib" in capsys.readouterr().err
    for bad in ("0", "1.5", "kl=-1", "bytes=x", "S=0.3"):
        assert main(["convert", str(stories_bin), "--tokenizer", str(tok), "-o", str(out),
                     "--sparsity", bad, "--calib", str(calib)]) == 2
        assert "--sparsity must be" in capsys.readouterr().err
