"""GGUF import: every tensor type the gguf package dequantizes, requantized to Mote's
schemes with the error reported against the GGUF's own dequantized values; one clear
line (exit 2) for what cannot be imported; SmolLM2-135M-Instruct Q4_1 converting."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gguf_files import gguf_name, write_gguf
from shared_models import model_path
from tiny_model import tiny_model

from mote import cli
from mote.format import blob as blobfile
from mote.importers import load_model
from mote.importers.gguf import dequantizable_types
from mote.pipeline import DEFAULT_CTX_MAX

gguf = pytest.importorskip("gguf")

SMOLLM = "smollm2-135m-instruct-q4_1.gguf"
# the types llama.cpp's users publish, which must be among what gguf.quants dequantizes
COMMON_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")


def every_type_model():
    """Four layers of 256-wide matrices (a multiple of every block size, K-quants' 256
    included): 29 matrices, enough for one of each dequantizable type."""
    return tiny_model(dim=256, hidden=256, n_layers=4, n_heads=4, n_kv_heads=2)


def type_of_each_matrix(model) -> dict[str, str]:
    types = dequantizable_types()
    matrices = [name for name, value in model.tensors.items() if value.ndim == 2]
    assert len(matrices) >= len(types)
    return {name: types[i % len(types)] for i, name in enumerate(matrices)}


def convert(capsys, source: Path, *options: str) -> tuple[int, str, str]:
    status = cli.main(["convert", str(source), "-o", str(source.parent / "out.mote"), *options])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.rsplit("\r", 1)[-1]  # past the progress bar


def test_gguf_dequantizes_the_common_types():
    assert set(COMMON_TYPES) <= set(dequantizable_types())


def test_every_dequantizable_type_imports_as_gguf_dequantizes_it(tmp_path, capsys):
    from gguf.quants import dequantize

    model = every_type_model()
    kinds = type_of_each_matrix(model)
    path = write_gguf(tmp_path / "all.gguf", model, kinds.__getitem__)
    imported = load_model(path)
    stored = {t.name: t for t in gguf.GGUFReader(path).tensors}
    for name, kind in kinds.items():
        raw = stored[gguf_name(name)]
        assert raw.tensor_type.name == kind
        expected = dequantize(np.asarray(raw.data), raw.tensor_type).astype(np.float32)
        assert np.array_equal(imported.tensors[name], expected.reshape(imported.tensors[name].shape)), name
        assert imported.source_types[name] == kind

    status, out, err = convert(capsys, path, "--quant", "int8")
    assert status == 0, err
    assert "against the checkpoint's dequantized values" in out
    blob = blobfile.load(tmp_path / "out.mote")
    for name, kind in kinds.items():
        line = re.search(rf"^  {re.escape(name)} +{kind} -> q8  ([0-9.]+)$", out, re.M)
        assert line, (name, kind)
        want, got = imported.tensors[name], blob.tensors[name].dequantize()
        error = np.linalg.norm(want - got) / np.linalg.norm(want)
        assert float(line.group(1)) == pytest.approx(error, abs=6e-5), name


def one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("mote convert: error: "), err
    for word in words:
        assert word in err, (word, err)


def test_a_type_gguf_cannot_dequantize_is_one_line(tmp_path, capsys):
    model = tiny_model(dim=64, hidden=64)
    path = write_gguf(tmp_path / "q81.gguf", model, lambda name: "Q8_1" if name.endswith("w_up") else "F32")
    one_line_error(*convert(capsys, path)[::2], "blk.0.ffn_up.weight has type Q8_1",
                   "cannot dequantize", "Q4_K")


def test_an_architecture_other_than_llama_is_one_line(tmp_path, capsys):
    path = write_gguf(tmp_path / "q.gguf", tiny_model(), arch="qwen2")
    one_line_error(*convert(capsys, path)[::2], "GGUF architecture 'qwen2' is not supported (only llama)")


def test_a_pre_tokenizer_mote_does_not_split_is_one_line(tmp_path, capsys):
    model = load_model(model_path("mcu-1m-silu"))
    for pre, words in (("llama3", ["'llama3'", "smollm"]), (None, ["pre-tokenizer None"])):
        path = write_gguf(tmp_path / "p.gguf", model, pre=pre)
        one_line_error(*convert(capsys, path)[::2], *words)


def test_smollm_q4_1_converts_to_int4(smollm_int4):
    report = smollm_int4.with_suffix(".txt").read_text()
    blob = blobfile.load(smollm_int4)
    c = blob.config
    assert (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len) == (576, 30, 9, 3, 49152, 8192)
    assert blob.ctx_len == DEFAULT_CTX_MAX  # trained at 8192: the default is capped
    assert blob.tensors["layers.0.wq"].dtype == "q4a" and blob.tensors["tok_embedding"].dtype == "q8"
    # Q4_1 blocks are q4a groups of 32, Q8_0 blocks q8 ones: their codes are kept, nothing is lost
    rows = re.findall(r"^  (\S+) +(Q4_1 -> q4a|Q8_0 -> q8)  ([0-9.]+)$", report, re.M)
    assert len(rows) == 1 + 7 * 30
    assert all(float(err) == 0 for _, _, err in rows)


def exact_types_model():
    return tiny_model(dim=64, hidden=96, n_layers=1, n_heads=4, n_kv_heads=2)


EXACT_TYPES = {"wq": "Q4_1", "wk": "Q4_0", "wv": "Q8_0", "wo": "Q4_1", "w_gate": "Q4_0", "w_up": "Q4_1",
               "w_down": "Q8_0", "tok_embedding": "Q8_0"}


@pytest.mark.parametrize("quant,group,dtypes", [
    ("int4", "32", {"Q4_1": "q4a", "Q4_0": "q4", "Q8_0": "q4"}),
    ("int4a", "32", {"Q4_1": "q4a", "Q4_0": "q4a", "Q8_0": "q4a"}),
    ("int8", "32", {"Q4_1": "q8", "Q4_0": "q8", "Q8_0": "q8"}),
    ("int4", "16", {"Q4_1": "q4", "Q4_0": "q4", "Q8_0": "q4"}),
])
def test_gguf_blocks_the_format_holds_convert_exactly(tmp_path, capsys, quant, group, dtypes):
    """A Q4_1 block of 32 is a q4a group, Q4_0 a q4 (or q4a) group, Q8_0 a q8 group: at
    group 32 convert keeps their codes and the blob holds exactly the GGUF's values;
    another group size or a dtype with no exact form requantizes."""
    model = exact_types_model()
    kinds = {name: EXACT_TYPES[name.rsplit(".", 1)[-1]] for name, v in model.tensors.items() if v.ndim == 2}
    path = write_gguf(tmp_path / "exact.gguf", model, kinds.__getitem__)
    imported = load_model(path)
    status, out, err = convert(capsys, path, "--quant", quant, "--group", group)
    assert status == 0, err
    blob = blobfile.load(tmp_path / "out.mote")
    for name, kind in kinds.items():
        want = "q8" if name == "tok_embedding" else dtypes[kind]
        exact = group == "32" and (want == "q4a" and kind != "Q8_0" or want == "q4" and kind == "Q4_0"
                                   or want == "q8" and kind == "Q8_0")
        assert blob.tensors[name].dtype == want, name
        line = re.search(rf"^  {re.escape(name)} +{kind} -> {want}  ([0-9.]+)$", out, re.M)
        assert line, (name, out)
        same = np.array_equal(blob.tensors[name].dequantize(), imported.tensors[name])
        assert same == exact and (float(line.group(1)) == 0) == exact, (name, kind, line.group(0))


def test_smollm_q4_1_converts_to_int8(tmp_path, capsys):
    status, out, err = convert(capsys, model_path(SMOLLM), "--quant", "int8", "--ctx", "64")
    assert status == 0, err
    errors = [float(e) for e in re.findall(r"^  \S+ +Q4_1 -> q8  ([0-9.]+)$", out, re.M)]
    assert len(errors) == 7 * 30 and max(errors) < 0.02
