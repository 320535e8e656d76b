"""Importers: llama2.c (v0/v1/v2 + tokenizer.bin), Hugging Face Llama, GGUF.

Real models come from tests/conftest.py fixtures. Formats we have no sample of
(llama2.c v1/v2 and unshared v0, bf16 safetensors, GGUF) are written here by
small writers that follow each format's own definition, then imported back.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from gguf_files import write_gguf
from mote.importers import load_model
from mote.importers.hf import interleaved_to_rotate_half, load_hf
from mote.importers.llama2c import AK42_MAGIC, load_llama2c, load_llama2c_tokenizer
from mote.model import Config, Model, MoteError, expected_shapes


# --------------------------------------------------------------------------
# helpers

def numpy_logits(model: Model, ids: list[int]) -> np.ndarray:
    """Float64 forward pass over `ids` with interleaved RoPE (pairs 2i, 2i+1),
    the convention Mote's tensors are in: an oracle independent of the importers."""
    c, t = model.config, {k: v.astype(np.float64) for k, v in model.tensors.items()}
    n = len(ids)
    angles = np.arange(n)[:, None] * c.rope_theta ** (-np.arange(0, c.head_dim, 2) / c.head_dim)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]

    def rope(v: np.ndarray, heads: int) -> np.ndarray:
        v = v.reshape(n, heads, c.head_dim // 2, 2)
        a, b = v[..., 0], v[..., 1]
        return np.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(n, heads, c.head_dim)

    def rmsnorm(v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + c.norm_eps) * w

    x = t["tok_embedding"][ids]
    future = np.triu(np.full((n, n), -np.inf), 1)
    rep = c.n_heads // c.n_kv_heads
    for layer in range(c.n_layers):
        p = f"layers.{layer}."
        h = rmsnorm(x, t[p + "attn_norm"])
        q = rope(h @ t[p + "wq"].T, c.n_heads)
        k = np.repeat(rope(h @ t[p + "wk"].T, c.n_kv_heads), rep, axis=1)
        v = np.repeat((h @ t[p + "wv"].T).reshape(n, c.n_kv_heads, c.head_dim), rep, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(c.head_dim) + future
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", weights, v).reshape(n, -1) @ t[p + "wo"].T
        h = rmsnorm(x, t[p + "ffn_norm"])
        gate = h @ t[p + "w_gate"].T
        gate = gate / (1 + np.exp(-gate)) if c.activation == "silu" else np.maximum(gate, 0)
        x = x + (gate * (h @ t[p + "w_up"].T)) @ t[p + "w_down"].T
    classifier = t["tok_embedding"] if c.tied_classifier else t["classifier"]
    return rmsnorm(x, t["final_norm"]) @ classifier.T


def random_model(config: Config, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in expected_shapes(config).items()}


def stacked(tensors: dict[str, np.ndarray], c: Config, name: str) -> np.ndarray:
    per_layer = ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down")
    if name in per_layer:
        return np.stack([tensors[f"layers.{layer}.{name}"] for layer in range(c.n_layers)])
    return tensors[name]


def llama2c_params(c: Config, vocab: int) -> bytes:
    return struct.pack("<7i", c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, vocab, c.max_seq_len)


# llama2.c's export order (w1, w2, w3 = gate, down, up)
V0_ORDER = ["tok_embedding", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_down", "w_up", "final_norm"]
V1_ORDER = ["attn_norm", "ffn_norm", "final_norm", "tok_embedding", "wq", "wk", "wv", "wo", "w_gate", "w_down", "w_up"]


def write_llama2c_v0(path: Path, c: Config, tensors: dict[str, np.ndarray]) -> None:
    vocab = c.vocab_size if c.tied_classifier else -c.vocab_size
    with open(path, "wb") as f:
        f.write(llama2c_params(c, vocab))
        for name in V0_ORDER:
            f.write(stacked(tensors, c, name).astype("<f4").tobytes())
        rope_table = np.full(c.max_seq_len * c.head_dim // 2, 7.0, dtype="<f4")  # must be skipped
        f.write(rope_table.tobytes() * 2)
        if not c.tied_classifier:
            f.write(tensors["classifier"].astype("<f4").tobytes())


def ak42_header(c: Config, version: int, group_size: int | None = None) -> bytes:
    header = struct.pack("<Ii", AK42_MAGIC, version) + llama2c_params(c, c.vocab_size)
    header += struct.pack("<B", int(c.tied_classifier))
    if group_size is not None:
        header += struct.pack("<i", group_size)
    return header.ljust(256, b"\0")


def write_llama2c_v1(path: Path, c: Config, tensors: dict[str, np.ndarray]) -> None:
    names = V1_ORDER + ([] if c.tied_classifier else ["classifier"])
    with open(path, "wb") as f:
        f.write(ak42_header(c, 1))
        for name in names:
            f.write(stacked(tensors, c, name).astype("<f4").tobytes())


def quantize_q80(w: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """llama2.c export.py's quantize_q80: symmetric int8 per group of consecutive values."""
    groups = w.astype(np.float32).reshape(-1, group_size)
    scale = np.abs(groups).max(axis=1) / np.float32(127.0)
    return np.round(groups / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def write_llama2c_v2(path: Path, c: Config, tensors: dict[str, np.ndarray], group_size: int) -> None:
    quantized = [tensors["tok_embedding"]]
    for name in ("wq", "wk", "wv", "wo", "w_gate", "w_down", "w_up"):
        quantized += [tensors[f"layers.{layer}.{name}"] for layer in range(c.n_layers)]
    if not c.tied_classifier:
        quantized.append(tensors["classifier"])
    with open(path, "wb") as f:
        f.write(ak42_header(c, 2, group_size))
        for name in ("attn_norm", "ffn_norm", "final_norm"):
            f.write(stacked(tensors, c, name).astype("<f4").tobytes())
        for w in quantized:  # runq.c layout: each tensor's int8 values, then its scales
            q, s = quantize_q80(w, group_size)
            f.write(q.tobytes() + s.astype("<f4").tobytes())


SMALL = Config(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4,
               vocab_size=512, max_seq_len=8, tied_classifier=False)


# --------------------------------------------------------------------------
# llama2.c

def test_stories260k_config_and_tensors(stories260k):
    checkpoint, tokenizer = stories260k
    model = load_llama2c(checkpoint, tokenizer)
    assert model.config == Config(dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, head_dim=8,
                                  vocab_size=512, max_seq_len=512, tied_classifier=True)
    assert {name: t.shape for name, t in model.tensors.items()} == model.expected_shapes()
    assert all(t.dtype == np.float32 for t in model.tensors.values())
    # Spot-check against offsets computed by hand from llama2.c's v0 layout.
    raw = np.fromfile(checkpoint, dtype="<f4", offset=28)
    L, d, h, kv = 5, 64, 172, 32
    assert np.array_equal(model.tensors["tok_embedding"], raw[: 512 * d].reshape(512, d))
    wq0 = 512 * d + L * d
    assert np.array_equal(model.tensors["layers.0.wq"], raw[wq0 : wq0 + d * d].reshape(d, d))
    w1 = wq0 + L * (d * d + 2 * kv * d + d * d) + L * d
    w2, w3 = w1 + L * h * d, w1 + 2 * L * h * d
    assert np.array_equal(model.tensors["layers.4.w_gate"], raw[w1 + 4 * h * d : w1 + 5 * h * d].reshape(h, d))
    assert np.array_equal(model.tensors["layers.1.w_down"], raw[w2 + h * d : w2 + 2 * h * d].reshape(d, h))
    assert np.array_equal(model.tensors["layers.0.w_up"], raw[w3 : w3 + h * d].reshape(h, d))
    final = w3 + L * h * d
    assert np.array_equal(model.tensors["final_norm"], raw[final : final + d])


def test_stories260k_greedy_continuation(stories260k):
    """The published greedy sample (models/README.md) follows from the imported
    weights under interleaved RoPE: a check of the whole tensor mapping."""
    model = load_llama2c(*stories260k)
    tok = model.tokenizer
    ids = [tok.bos_id, 403, 407, 261, 378]  # <s> "Once upon a time" per tok512
    assert b"".join(tok.tokens[i] for i in ids[1:]) == b" Once upon a time"
    for _ in range(8):
        ids.append(int(numpy_logits(model, ids)[-1].argmax()))
    assert b"".join(tok.tokens[i] for i in ids[1:]) == b" Once upon a time, there was a little girl"


def test_tok512(stories260k):
    tok = load_llama2c_tokenizer(stories260k[1])
    assert tok.kind == "llama2c" and len(tok.tokens) == len(tok.scores) == len(tok.names) == 512
    assert (tok.bos_id, tok.eos_id, tok.special) == (1, 2, {0, 1, 2})
    assert tok.names[:3] == ["<unk>", "\n<s>\n", "\n</s>\n"]
    assert [tok.tokens[3 + b] for b in range(256)] == [bytes([b]) for b in range(256)]  # byte fallbacks
    assert tok.names[3 + 0x0A] == "<0x0A>"
    assert tok.tokens[259:262] == [b" t", b"he", b" a"] and tok.scores[259:262] == [0.0, -1.0, -2.0]


def test_v0_unshared_classifier(tmp_path):
    tensors = random_model(SMALL)
    path = tmp_path / "unshared.bin"
    write_llama2c_v0(path, SMALL, tensors)
    model = load_model(path, _tok512_like(tmp_path))
    assert model.config == SMALL and not model.config.tied_classifier
    for name, value in tensors.items():
        assert np.array_equal(model.tensors[name], value), name


def _tok512_like(directory: Path) -> Path:
    """A 512-token llama2.c tokenizer.bin written from scratch."""
    path = directory / "tok.bin"
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    pieces += [b"t%d" % i for i in range(512 - len(pieces))]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", 8))
        for i, piece in enumerate(pieces):
            f.write(struct.pack("<fi", -float(i), len(piece)) + piece)
    return path


def test_v1_roundtrip(tmp_path, stories260k):
    source = load_llama2c(*stories260k)
    path = tmp_path / "v1.bin"
    write_llama2c_v1(path, source.config, source.tensors)
    model = load_model(path, stories260k[1])
    assert model.config == source.config
    for name, value in source.tensors.items():
        assert np.array_equal(model.tensors[name], value), name


@pytest.mark.parametrize("group_size", [4, 64])
def test_v2_dequantizes_within_quantization_error(tmp_path, group_size):
    tensors = random_model(SMALL, seed=group_size)
    path = tmp_path / "v2.bin"
    write_llama2c_v2(path, SMALL, tensors, group_size)
    model = load_model(path, _tok512_like(tmp_path))
    assert model.config == SMALL
    for name, value in tensors.items():
        got = model.tensors[name]
        assert got.dtype == np.float32 and got.shape == value.shape
        if value.ndim == 1:  # norms stay float32
            assert np.array_equal(got, value), name
            continue
        q, s = quantize_q80(value, group_size)
        assert np.array_equal(got, (q * s[:, None]).reshape(value.shape)), name
        bound = np.repeat(s, group_size).reshape(value.shape) * 0.5001
        assert np.all(np.abs(got - value) <= bound), name


def test_llama2c_bad_files(tmp_path, stories260k):
    checkpoint, tokenizer = stories260k
    data = checkpoint.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-100])
    with pytest.raises(MoteError, match=f"should be {len(data)} bytes.*is {len(data) - 100} bytes"):
        load_model(tmp_path / "cut.bin", tokenizer)
    (tmp_path / "long.bin").write_bytes(data + b"\0\0\0\0")
    with pytest.raises(MoteError, match=f"should be {len(data)} bytes"):
        load_llama2c(tmp_path / "long.bin", tokenizer)

    (tmp_path / "garbage.bin").write_bytes(b"this is not a model, just some text " * 100)
    with pytest.raises(MoteError, match="unrecognized checkpoint format"):
        load_model(tmp_path / "garbage.bin")
    (tmp_path / "blob.mote").write_bytes(b"MOTE" + bytes(300))
    with pytest.raises(MoteError, match="is a .mote blob, not a checkpoint"):
        load_model(tmp_path / "blob.mote")
    (tmp_path / "v9.bin").write_bytes(ak42_header(SMALL, 9) + bytes(64))
    with pytest.raises(MoteError, match="version 9 is not supported"):
        load_model(tmp_path / "v9.bin", tokenizer)

    lonely = tmp_path / "lonely" / "model.bin"
    lonely.parent.mkdir()
    lonely.write_bytes(data)
    with pytest.raises(MoteError, match="--tokenizer"):
        load_model(lonely)
    (tmp_path / "lonely" / "tok512.bin").write_bytes(tokenizer.read_bytes())
    assert load_model(lonely).tokenizer.tokens == load_llama2c_tokenizer(tokenizer).tokens

    (tmp_path / "badtok.bin").write_bytes(tokenizer.read_bytes()[:-3])
    with pytest.raises(MoteError, match="token 511 has bad length"):
        load_llama2c(checkpoint, tmp_path / "badtok.bin")
    with pytest.raises(MoteError, match="has 512 tokens but checkpoint"):
        load_llama2c(_v0_with_vocab(tmp_path, 600), tokenizer)


def _v0_with_vocab(directory: Path, vocab: int) -> Path:
    c = Config(**{**SMALL.__dict__, "vocab_size": vocab, "tied_classifier": True})
    path = directory / f"vocab{vocab}.bin"
    write_llama2c_v0(path, c, random_model(c))
    return path


# --------------------------------------------------------------------------
# Hugging Face

def test_hf_configs(ref_silu, ref_relu, mcu_silu):
    ref = load_model(ref_silu)  # two fp16 shards + index
    assert ref.config == Config(dim=320, hidden_dim=864, n_layers=8, n_heads=8, n_kv_heads=4, head_dim=40,
                                vocab_size=4096, max_seq_len=256, activation="silu", tied_classifier=True)
    assert {name: t.shape for name, t in ref.tensors.items()} == ref.expected_shapes()
    assert all(t.dtype == np.float32 for t in ref.tensors.values())
    assert load_model(ref_relu).config.activation == "relu"
    mcu = load_model(mcu_silu)  # one file
    assert mcu.config == Config(dim=128, hidden_dim=352, n_layers=5, n_heads=4, n_kv_heads=2, head_dim=32,
                                vocab_size=1024, max_seq_len=256, tied_classifier=True)


def test_hf_qk_permutation_undoes_to_the_stored_tensor(ref_silu):
    from safetensors import safe_open

    model = load_hf(ref_silu)
    index = json.loads((ref_silu / "model.safetensors.index.json").read_text())["weight_map"]
    for name, heads in (("q_proj", 8), ("k_proj", 4), ("v_proj", None)):
        hf_name = f"model.layers.3.self_attn.{name}.weight"
        with safe_open(ref_silu / index[hf_name], framework="np") as f:
            stored = f.get_tensor(hf_name).astype(np.float32)
        ours = model.tensors[f"layers.3.w{name[0]}"]
        if heads is None:
            assert np.array_equal(ours, stored)
        else:
            assert not np.array_equal(ours, stored)
            assert np.array_equal(interleaved_to_rotate_half(ours, heads), stored)


def test_hf_logits_match_transformers(mcu_silu):
    """Interleaved RoPE on our permuted weights == transformers' rotate-half RoPE on
    the stored ones, through the whole network; without the permutation it fails."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = load_hf(mcu_silu)
    ids = [40, 300, 7, 901, 55, 2, 600, 123, 17, 999, 64, 5]
    hf = transformers.LlamaForCausalLM.from_pretrained(mcu_silu, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0].double().numpy()
    got = numpy_logits(model, ids)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()

    c = model.config
    unpermuted = dict(model.tensors)
    for layer in range(c.n_layers):
        unpermuted[f"layers.{layer}.wq"] = interleaved_to_rotate_half(model.tensors[f"layers.{layer}.wq"], c.n_heads)
        unpermuted[f"layers.{layer}.wk"] = interleaved_to_rotate_half(model.tensors[f"layers.{layer}.wk"], c.n_kv_heads)
    wrong = numpy_logits(Model(c, unpermuted, model.tokenizer), ids)
    assert np.abs(wrong - expected).max() > 1e-2 * np.abs(expected).max()


def test_hf_bytelevel_tokenizer(mcu_silu):
    from tokenizers import Tokenizer

    tok = load_hf(mcu_silu).tokenizer
    reference = Tokenizer.from_file(str(mcu_silu / "tokenizer.json"))
    assert tok.kind == "bytelevel" and len(tok.tokens) == len(tok.names) == 1024
    assert (tok.bos_id, tok.eos_id, tok.special) == (0, 1, {0, 1, 2})
    assert tok.tokens[:3] == [b"<s>", b"</s>", b"<unk>"] and tok.names[259] == "Ġt"
    assert sorted(tok.tokens[3:259]) == [bytes([b]) for b in range(256)]

    text = (mcu_silu / "heldout.txt").read_text(encoding="utf-8")[:3000]
    ids = reference.encode(text).ids
    assert b"".join(tok.tokens[i] for i in ids) == text.encode("utf-8")

    # Byte-level BPE driven only by our tokens and ranked merges reproduces
    # the library's ids: the merges are the right pairs in the right order.
    rank = {pair: r for r, pair in enumerate(tok.merges)}
    merged = {(a, b): tok.tokens.index(tok.tokens[a] + tok.tokens[b]) for a, b in tok.merges}
    byte_id = {tok.tokens[i]: i for i in range(len(tok.tokens)) if i not in tok.special}
    ours = []
    for word, _ in reference.pre_tokenizer.pre_tokenize_str(text):
        parts = [byte_id[bytes([b])] for b in
                 b"".join(tok.tokens[reference.token_to_id(ch)] for ch in word)]
        while len(parts) > 1:
            best = min(range(len(parts) - 1), key=lambda i: rank.get((parts[i], parts[i + 1]), 1 << 30))
            pair = (parts[best], parts[best + 1])
            if pair not in rank:
                break
            parts[best : best + 2] = [merged[pair]]
        ours += parts
    assert ours == ids


HF_TINY = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 24,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
    "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 500.0, "hidden_act": "silu",
    "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
}


def write_tiny_hf(directory: Path, tokenizer_from: Path, dtype: str = "bfloat16", config: dict | None = None,
                  drop: str | None = None, extra: dict | None = None) -> dict[str, np.ndarray]:
    """A small LlamaForCausalLM directory saved by safetensors.torch; returns its
    tensors (HF names) as float32."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    cfg = {**HF_TINY, **(config or {})}
    c = Config(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4, vocab_size=1024,
               max_seq_len=32, tied_classifier=False)
    ours = random_model(c, seed=3)
    names = {"tok_embedding": "model.embed_tokens.weight", "final_norm": "model.norm.weight",
             "classifier": "lm_head.weight"}
    hf_layer = {"attn_norm": "input_layernorm", "wq": "self_attn.q_proj", "wk": "self_attn.k_proj",
                "wv": "self_attn.v_proj", "wo": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                "w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj"}
    tensors = {}
    for name, value in ours.items():
        if name.startswith("layers."):
            _, layer, short = name.split(".")
            tensors[f"model.layers.{layer}.{hf_layer[short]}.weight"] = value
        else:
            tensors[names[name]] = value
    tensors.update(extra or {})
    tensors.pop(drop, None)
    directory.mkdir(exist_ok=True)
    as_torch = {k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in tensors.items()}
    save_file(as_torch, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps(cfg))
    shutil.copyfile(tokenizer_from / "tokenizer.json", directory / "tokenizer.json")
    return {k: v.float().numpy() for k, v in as_torch.items()}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_hf_dtypes_and_untied_classifier(tmp_path, mcu_silu, dtype):
    stored = write_tiny_hf(tmp_path / "tiny", mcu_silu, dtype)
    model = load_model(tmp_path / "tiny")
    assert model.config.rope_theta == 500.0 and model.config.norm_eps == 1e-6
    assert not model.config.tied_classifier
    assert np.array_equal(model.tensors["classifier"], stored["lm_head.weight"])
    assert np.array_equal(model.tensors["layers.1.w_down"], stored["model.layers.1.mlp.down_proj.weight"])
    assert np.array_equal(interleaved_to_rotate_half(model.tensors["layers.0.wq"], 4),
                          stored["model.layers.0.self_attn.q_proj.weight"])
    assert np.array_equal(interleaved_to_rotate_half(model.tensors["layers.1.wk"], 2),
                          stored["model.layers.1.self_attn.k_proj.weight"])
    assert model.tokenizer.tokens == load_hf(mcu_silu).tokenizer.tokens


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(config={"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}), "architecture GPT2LMHeadModel"),
        (dict(config={"hidden_act": "gelu"}), "hidden_act 'gelu'"),
        (dict(config={"rope_scaling": {"rope_type": "linear", "factor": 2.0}}), "RoPE scaling type 'linear'"),
        (dict(config={"attention_bias": True}), "attention_bias"),
        (dict(drop="model.layers.1.mlp.up_proj.weight"), "missing tensor model.layers.1.mlp.up_proj.weight"),
        (dict(drop="lm_head.weight"), "tie_word_embeddings is false but tensor lm_head.weight is missing"),
        (dict(extra={"model.layers.0.mlp.down_proj.weight": np.zeros((16, 25), np.float32)}),
         r"model.layers.0.mlp.down_proj.weight has shape \(16, 25\), expected \(16, 24\)"),
        (dict(extra={"model.layers.0.self_attn.q_proj.bias": np.zeros(16, np.float32)}), "biases are not supported"),
        (dict(config={"vocab_size": 1000}), r"model.embed_tokens.weight has shape \(1024, 16\), expected \(1000, 16\)"),
    ],
)
def test_hf_errors(tmp_path, mcu_silu, change, message):
    write_tiny_hf(tmp_path / "bad", mcu_silu, "float32", **change)
    with pytest.raises(MoteError, match=message):
        load_model(tmp_path / "bad")


def test_hf_tokenizer_errors(tmp_path, mcu_silu):
    write_tiny_hf(tmp_path / "tiny", mcu_silu, "float32")
    path = tmp_path / "tiny" / "tokenizer.json"
    path.write_text("{ this is not json")
    with pytest.raises(MoteError, match="unreadable tokenizer"):
        load_model(tmp_path / "tiny")
    spec = json.loads((mcu_silu / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    path.write_text(json.dumps(spec))
    with pytest.raises(MoteError, match="sentencepiece-style tokenizer.json is not supported yet"):
        load_model(tmp_path / "tiny")
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    path.write_text(json.dumps(spec))
    with pytest.raises(MoteError, match="pre-tokenizer Whitespace is not supported"):
        load_model(tmp_path / "tiny")
    path.unlink()
    with pytest.raises(MoteError, match="no tokenizer.json"):
        load_model(tmp_path / "tiny")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MoteError, match="without config.json"):
        load_model(tmp_path / "empty")
    with pytest.raises(MoteError, match="--tokenizer applies only to llama2.c"):
        load_model(mcu_silu, tokenizer=tmp_path / "tok.bin")


# --------------------------------------------------------------------------
# GGUF (files written by tests/gguf_files.py, the way llama.cpp's converter lays them out)

def assert_close_to(got: np.ndarray, want: np.ndarray, kind: str, name: str) -> None:
    assert got.dtype == np.float32 and got.shape == want.shape, name
    if kind == "F32" or want.ndim == 1:
        assert np.array_equal(got, want), name
    elif kind == "F16" or want.shape[1] % 32:
        assert np.array_equal(got, want.astype(np.float16).astype(np.float32)), name
    else:  # Q8_0: blocks of 32, scale amax/127 rounded to f16 (relative error <= 2^-11):
        # error <= half a step + 127 steps * 2^-11 < 0.57 steps
        step = np.abs(want.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
        assert np.all(np.abs(got - want).reshape(-1, 32) <= step * 0.57), name


@pytest.mark.parametrize("kind", ["F32", "F16", "Q8_0"])
@pytest.mark.parametrize("source", ["stories260k", "mcu_silu"])
def test_gguf_roundtrip(tmp_path, request, source, kind):
    fixture = request.getfixturevalue(source)
    original = load_model(*fixture) if source == "stories260k" else load_model(fixture)
    path = tmp_path / "model.gguf"
    write_gguf(path, original, kind)
    model = load_model(path)
    assert model.config == original.config
    assert set(model.tensors) == set(original.tensors)
    for name, value in original.tensors.items():
        assert_close_to(model.tensors[name], value, kind, name)
    got, want = model.tokenizer, original.tokenizer
    assert (got.kind, got.tokens, got.scores, got.merges) == (want.kind, want.tokens, want.scores, want.merges)
    assert (got.bos_id, got.eos_id, got.special) == (want.bos_id, want.eos_id, want.special)


def test_gguf_errors(tmp_path, stories260k):
    original = load_model(*stories260k)
    write_gguf(tmp_path / "other.gguf", original, "F32", arch="qwen2")
    with pytest.raises(MoteError, match="GGUF architecture 'qwen2' is not supported"):
        load_model(tmp_path / "other.gguf")
    write_gguf(tmp_path / "q81.gguf", original, "Q8_1")
    with pytest.raises(MoteError, match="token_embd.weight has type Q8_1, which the gguf package cannot "
                                        "dequantize; supported: F32, F16, Q4_0, Q4_1"):
        load_model(tmp_path / "q81.gguf")
    original.tensors["layers.2.wv"] = original.tensors["layers.2.wv"][:, :32].copy()
    write_gguf(tmp_path / "shape.gguf", original, "F32")
    with pytest.raises(MoteError, match=r"blk.2.attn_v.weight has shape \(32, 32\), expected \(32, 64\)"):
        load_model(tmp_path / "shape.gguf")
    del original.tensors["layers.2.wv"]
    write_gguf(tmp_path / "missing.gguf", original, "F32")
    with pytest.raises(MoteError, match="missing tensor blk.2.attn_v.weight"):
        load_model(tmp_path / "missing.gguf")
    (tmp_path / "cut.gguf").write_bytes((tmp_path / "shape.gguf").read_bytes()[:200])
    with pytest.raises(MoteError, match="not a readable GGUF file"):
        load_model(tmp_path / "cut.gguf")
