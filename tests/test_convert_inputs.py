"""Bad `mote convert` checkpoint inputs: each ends in exit 2 and one line
`mote convert: error: ...` naming what is wrong, never a traceback, a hang, or a
blob the runtime then refuses (issue 16). Every bad input is built in tmp_path from
a small valid checkpoint, which itself converts (test_valid_inputs_convert), so
that each case fails for the one thing changed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from shared_models import model_path
from tiny_model import tiny_model

from mote import cli
from mote.format import blob as blobfile
from mote.format import spec
from mote.format.sparsity import POINTS
from mote.importers.config_schema import build_config
from mote.model import Config, Model, MoteError, expected_shapes

REFUSED = dict(spec.REASONS)["header"]
HF_BASE = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 24,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
    "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 500.0, "hidden_act": "silu",
    "tie_word_embeddings": True,
}
HF_LAYER = {"attn_norm": "input_layernorm", "wq": "self_attn.q_proj", "wk": "self_attn.k_proj",
            "wv": "self_attn.v_proj", "wo": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
            "w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj"}
HF_GLOBAL = {"tok_embedding": "model.embed_tokens.weight", "final_norm": "model.norm.weight"}


def write_hf(directory: Path, config: dict | None = None, shape_from: dict | None = None,
             poison: tuple[str, float] | None = None) -> Path:
    """A tied HF Llama directory (the mcu-1m-silu tokenizer, 1024 tokens) whose
    config.json is HF_BASE updated by `config`; its tensors have the shapes of
    HF_BASE updated by `shape_from` (default: HF_BASE). `poison` = (HF tensor name,
    value) writes that value into one element of that tensor."""
    shaped = {**HF_BASE, **(shape_from or {})}
    c = Config(dim=shaped["hidden_size"], hidden_dim=shaped["intermediate_size"],
               n_layers=shaped["num_hidden_layers"], n_heads=shaped["num_attention_heads"],
               n_kv_heads=shaped["num_key_value_heads"],
               head_dim=shaped["hidden_size"] // shaped["num_attention_heads"],
               vocab_size=1024, max_seq_len=32)
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in expected_shapes(c).items():
        if name.startswith("layers."):
            _, layer, short = name.split(".")
            hf = f"model.layers.{layer}.{HF_LAYER[short]}.weight"
        else:
            hf = HF_GLOBAL[name]
        tensors[hf] = (0.2 * rng.standard_normal(shape)).astype(np.float32)
    if poison:
        tensors[poison[0]].flat[3] = poison[1]
    directory.mkdir()
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({**HF_BASE, **(config or {})}))
    shutil.copyfile(model_path("mcu-1m-silu") / "tokenizer.json", directory / "tokenizer.json")
    return directory


GGUF_LAYER = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
              "ffn_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down"}


def write_gguf(path: Path, metadata: dict | None = None) -> Path:
    """tiny_model() as a GGUF file, F32 tensors, sentencepiece vocabulary; `metadata`
    replaces llama.* keys: key (without "llama.") -> value, a str or an int (u32),
    or (value, GGUFValueType)."""
    gguf = pytest.importorskip("gguf")
    t = gguf.GGUFValueType
    model = tiny_model()
    c, tok = model.config, model.tokenizer
    keys = {"context_length": c.max_seq_len, "embedding_length": c.dim, "feed_forward_length": c.hidden_dim,
            "block_count": c.n_layers, "attention.head_count": c.n_heads,
            "attention.head_count_kv": c.n_kv_heads, "rope.dimension_count": c.head_dim,
            "rope.freq_base": (c.rope_theta, t.FLOAT32),
            "attention.layer_norm_rms_epsilon": (c.norm_eps, t.FLOAT32), **(metadata or {})}
    w = gguf.GGUFWriter(path, "llama")
    for key, value in keys.items():
        value, vtype = value if isinstance(value, tuple) else (value, t.STRING if isinstance(value, str) else t.UINT32)
        w.add_key_value(f"llama.{key}", value, vtype)
    w.add_tokenizer_model("llama")
    types, pieces = [], []
    for i, (raw, name) in enumerate(zip(tok.tokens, tok.names)):
        if len(raw) == 1 and name == f"<0x{raw[0]:02X}>":
            pieces.append(name.encode())
            types.append(gguf.TokenType.BYTE)
        else:
            pieces.append(name.encode() if i in tok.special else raw.replace(b" ", "\u2581".encode()))
            types.append(gguf.TokenType.CONTROL if i in tok.special else gguf.TokenType.NORMAL)
    w.add_token_list(pieces)
    w.add_token_scores(tok.scores)
    w.add_token_types(types)
    for name, value in model.tensors.items():
        if name.startswith("layers."):
            _, layer, short = name.split(".")
            gname = f"blk.{layer}.{GGUF_LAYER[short]}.weight"
        else:
            gname = {"tok_embedding": "token_embd.weight", "final_norm": "output_norm.weight"}[name]
        w.add_tensor(gname, value.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def convert(capsys, source: Path, *options: str) -> tuple[int, str]:
    out = source.parent / "out.mote"
    status = cli.main(["convert", str(source), "-o", str(out), *options])
    err = capsys.readouterr().err
    if status != 0:
        assert not out.exists()
    return status, err


def assert_one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2, err
    err = err.rsplit("\r", 1)[-1]  # what is left of the progress bar: it erases itself with \r
    assert err.count("\n") == 1 and err.startswith("mote convert: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_valid_inputs_convert(tmp_path, capsys):
    """The bases every bad case is made from convert as they are."""
    assert convert(capsys, write_hf(tmp_path / "hf"))[0] == 0
    assert convert(capsys, write_gguf(tmp_path / "m.gguf"))[0] == 0
    # the 2^24-context case's model converts at a context the 32-bit arena holds
    big = {"hidden_size": 64, "num_key_value_heads": 4, "max_position_embeddings": 1 << 24}
    assert convert(capsys, write_hf(tmp_path / "big", big, big), "--ctx", "256")[0] == 0


HF_CASES = [
    # values that used to end in a traceback
    ({"hidden_act": ["silu"]}, ["hidden_act ['silu']", "silu"]),
    ({"num_key_value_heads": "2"}, ["num_key_value_heads '2'", "integer"]),
    ({"head_dim": "x"}, ["head_dim 'x'", "integer"]),
    ({"rms_norm_eps": "1e-6"}, ["rms_norm_eps '1e-6'", "number"]),
    ({"rms_norm_eps": None}, ["rms_norm_eps None", "number"]),
    ({"rope_scaling": "linear"}, ["rope_scaling 'linear'", "object"]),
    ({"rope_parameters": "default"}, ["rope_parameters 'default'", "object"]),
    ({"rope_theta": "10000"}, ["rope_theta '10000'", "number"]),
    ({"rope_theta": None}, ["rope_theta None", "number"]),
    ({"rope_theta": 1e300}, ["rope_theta 1e+300", REFUSED]),
    ({"rope_parameters": {"rope_theta": "x"}}, ["rope_theta 'x'"]),
    ({"max_position_embeddings": 1 << 31}, [f"max_position_embeddings {1 << 31}", str(spec.MAX_SEQ_LEN)]),
    ({"max_position_embeddings": 1 << 33}, [f"max_position_embeddings {1 << 33}", str(spec.MAX_SEQ_LEN)]),
    ({"max_position_embeddings": 2.5}, ["max_position_embeddings 2.5", "integer"]),
    ({"num_attention_heads": 0}, ["num_attention_heads 0"]),
    ({"num_attention_heads": True}, ["num_attention_heads True", "integer"]),
    ({"hidden_size": 15}, ["not a multiple"]),
    # a count that used to hang (a 2^31-layer tensor list)
    ({"num_hidden_layers": 1 << 31}, [f"num_hidden_layers {1 << 31}", f"1..{spec.MAX_LAYERS}"]),
    # values that used to convert into a blob every runtime refuses
    ({"rms_norm_eps": -1}, ["rms_norm_eps -1.0", "[0, 1)", REFUSED]),
    ({"rms_norm_eps": 5}, ["rms_norm_eps 5.0", REFUSED]),
    ({"rms_norm_eps": math.nan}, ["rms_norm_eps nan", REFUSED]),
    ({"rope_theta": 0}, ["rope_theta 0.0", REFUSED]),
    ({"rope_theta": -10000.0}, ["rope_theta -10000.0", REFUSED]),
    ({"num_hidden_layers": spec.MAX_LAYERS + 1}, [f"num_hidden_layers {spec.MAX_LAYERS + 1}", REFUSED]),
]


@pytest.mark.parametrize(("change", "words"), HF_CASES, ids=[json.dumps(c) for c, _ in HF_CASES])
def test_bad_hf_config(tmp_path, capsys, change, words):
    assert_one_line_error(*convert(capsys, write_hf(tmp_path / "hf", change)), "config.json", *words)


def test_arena_beyond_32_bits(tmp_path, capsys):
    """A trained context of 2^24 is within the spec, but this model's arena at that
    context is more than the header's u32 arena_bytes (it used to be struct.error);
    by default the arena is sized for 2048 positions, so the context is asked for."""
    big = {"hidden_size": 64, "num_key_value_heads": 4, "max_position_embeddings": 1 << 24}
    directory = write_hf(tmp_path / "big", big, big)
    assert_one_line_error(*convert(capsys, directory, "--ctx", str(1 << 24)), f"context {1 << 24}", "--ctx")


def test_deeply_nested_config(tmp_path, capsys):
    directory = write_hf(tmp_path / "hf")
    (directory / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(*convert(capsys, directory), "config.json", "nested too deeply")


def test_weight_map_entry_not_a_file_name(tmp_path, capsys):
    directory = write_hf(tmp_path / "hf")
    index = {"weight_map": {"model.embed_tokens.weight": ["model.safetensors"]}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_one_line_error(*convert(capsys, directory), "weight_map entry 'model.embed_tokens.weight'",
                          "['model.safetensors']")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weight(tmp_path, capsys, value):
    tensor = "model.layers.1.mlp.up_proj.weight"
    directory = write_hf(tmp_path / "hf", poison=(tensor, value))
    assert_one_line_error(*convert(capsys, directory), "tensor layers.1.w_up", "NaN or infinite")


@pytest.mark.parametrize(("quant", "value"), [("int8", 1e7), ("int4", 1e6)])
def test_weight_beyond_f16_scales(tmp_path, capsys, quant, value):
    """Finite, but its group's f16 scale would be infinite: the runtime refuses such a blob
    ("values"), so convert refuses the model first."""
    directory = write_hf(tmp_path / "hf", poison=("model.layers.1.mlp.up_proj.weight", value))
    assert_one_line_error(*convert(capsys, directory, "--quant", quant), "tensor layers.1.w_up",
                          "beyond what", "f16 group scales")


GGUF_CASES = [
    ({"context_length": 1 << 31}, [f"llama.context_length {1 << 31}", str(spec.MAX_SEQ_LEN)]),
    ({"attention.head_count": 0}, ["llama.attention.head_count 0"]),
    ({"embedding_length": "16"}, ["llama.embedding_length '16'", "integer"]),
    ({"block_count": 1 << 31}, [f"llama.block_count {1 << 31}", f"1..{spec.MAX_LAYERS}"]),
    ({"attention.layer_norm_rms_epsilon": ("1e-5", None)}, ["layer_norm_rms_epsilon '1e-5'"]),
    ({"rope.freq_base": (-1.0, "FLOAT32")}, ["llama.rope.freq_base -1.0", REFUSED]),
]


@pytest.mark.parametrize(("change", "words"), GGUF_CASES, ids=[json.dumps(c) for c, _ in GGUF_CASES])
def test_bad_gguf_metadata(tmp_path, capsys, change, words):
    gguf = pytest.importorskip("gguf")
    fixed = {}
    for key, value in change.items():  # (value, type name): a typed scalar; (str, None): a string
        if isinstance(value, tuple):
            value = value[0] if value[1] is None else (value[0], getattr(gguf.GGUFValueType, value[1]))
        fixed[key] = value
    assert_one_line_error(*convert(capsys, write_gguf(tmp_path / "m.gguf", fixed)), "m.gguf", *words)


@pytest.mark.parametrize("tokens", ["-5", "0"])
def test_calib_tokens_must_be_positive(tmp_path, capsys, tokens):
    (tmp_path / "calib.txt").write_text("the cat sat on the mat. " * 200)
    status, err = convert(capsys, write_hf(tmp_path / "hf"), "--sparsity", "0.5",
                          "--calib", str(tmp_path / "calib.txt"), "--calib-tokens", tokens)
    assert_one_line_error(status, err, f"--calib-tokens must be at least 1, got {tokens}")


def _schema_config(**values) -> Config:
    c = tiny_model().config
    raw = {name: (name, getattr(c, name)) for name in
           ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "vocab_size",
            "max_seq_len", "rope_theta", "norm_eps")}
    raw.update({name: (name, value) for name, value in values.items()})
    return build_config(Path("x"), raw, "silu", tied=True)


THETAS = [0.0, -1.0, 1e-50, 1e-30, 1.0, 1e4, 2.9e38, 3.0e38, 3.5e38, 1e300, math.inf, math.nan]
EPSILONS = [-1e-9, -0.0, 0.0, 1e-50, 1e-6, 0.5, 0.9999999, 0.99999999, 1.0, 5.0, math.inf, math.nan]


@pytest.mark.parametrize(("field", "value"), [("rope_theta", v) for v in THETAS] +
                         [("norm_eps", v) for v in EPSILONS] + [("n_layers", n) for n in (1, 64, 65)])
def test_schema_agrees_with_the_runtime_check(field, value):
    """convert accepts exactly what the blob loader (blob.c's checks, mirrored by
    mote.format.blob.load) accepts: pack the value regardless and compare."""
    try:
        _schema_config(**{field: value})
        accepted = True
    except MoteError as err:
        assert REFUSED in str(err)
        accepted = False
    base = tiny_model()
    c = Config(**{**base.config.__dict__, field: value})
    model = Model(config=c, tensors=tiny_model(n_layers=c.n_layers).tensors, tokenizer=base.tokenizer)
    try:
        data = blobfile.pack(model)
    except OverflowError:  # beyond float32: the header cannot even hold it
        loads = False
    else:
        try:
            blobfile.load(data)
            loads = True
        except blobfile.BlobError as err:
            assert err.status == "header"
            loads = False
    assert accepted == loads, (field, value)


def test_sparsity_trained_takes_the_loops_thresholds(tmp_path, capsys):
    """--sparsity trained packs the thresholds train_meta.json records (the points
    trained with --drop, within --sparse-points); without a training record, or with
    one trained without drops, it is one line."""
    hf = write_hf(tmp_path / "hf")
    assert_one_line_error(*convert(capsys, hf, "--sparsity", "trained"), "train_meta.json")
    recorded = {"gate": [0.5, 0.25], "attn_in": [0.125, 0.0625]}
    (hf / "train_meta.json").write_text(json.dumps({"sparsity": {"thresholds": recorded}}))
    for points, want in (("attn_in,attn_out,ffn_in,gate", ("attn_in", "gate")), ("gate", ("gate",))):
        assert convert(capsys, hf, "--sparsity", "trained", "--sparse-points", points)[0] == 0
        sp = blobfile.load(hf.parent / "out.mote").sparsity
        assert sp.points == want
        for p in want:
            assert sp.thresholds[:, POINTS.index(p)].tolist() == recorded[p]
        (hf.parent / "out.mote").unlink()
    assert_one_line_error(*convert(capsys, hf, "--sparsity", "trained", "--sparse-points", "ffn_in"),
                          "no thresholds of the loop")
    (hf / "train_meta.json").write_text(json.dumps({"sparsity": {"thresholds": {"gate": [0.5]}}}))
    assert_one_line_error(*convert(capsys, hf, "--sparsity", "trained"), "one per layer")
