"""A tiny random Llama-shaped model (a few KB packed) for blob tests and fuzz seeds."""

from __future__ import annotations

import numpy as np

from mote.model import Config, Model, TokenizerData, expected_shapes

WORDS = [b" ", b"a", b"b", b"c", b"e", b"h", b"t", b"o", b"n", b"s", b" a", b" t", b"th",
         b"he", b"the", b" the", b"an", b"at", b"on", b"in", b"es", b"st", b"ab", b"ba",
         b"ca", b"to", b"no", b"so", b"ho", b"ne", b"se", b"ta", b"te", b"ti", b"ts", b"ss",
         b"oo", b"ee", b"nn", b"tt", b"hh"]


def tiny_tokenizer() -> TokenizerData:
    tokens = [b"", b"", b""] + [bytes([i]) for i in range(256)] + WORDS
    scores = [0.0] * 259 + [-float(len(w)) for w in WORDS]
    names = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + [
        w.decode() for w in WORDS]
    return TokenizerData(kind="llama2c", tokens=tokens, scores=scores, bos_id=1, eos_id=2,
                         special={0, 1, 2}, names=names)


def tiny_model(seed: int = 0, dim: int = 16, hidden: int = 36, n_layers: int = 1,
               n_heads: int = 2, n_kv_heads: int = 1, activation: str = "silu",
               tied: bool = True) -> Model:
    tok = tiny_tokenizer()
    config = Config(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads,
                    n_kv_heads=n_kv_heads, head_dim=dim // n_heads, vocab_size=len(tok.tokens),
                    max_seq_len=32, activation=activation, tied_classifier=tied)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("norm"):
            tensors[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            tensors[name] = (0.3 * rng.standard_normal(shape)).astype(np.float32)
    return Model(config=config, tensors=tensors, tokenizer=tok, name=f"tiny-{seed}")


def all_q4a(config: Config) -> dict[str, str]:
    """Every matrix q4a, the embedding (and a tied classifier) too; norms f32: a blob
    that exercises q4a everywhere it may be (row lookup, classifier, layers)."""
    from mote.format.blob import tensor_dtypes

    return {name: "f32" if dtype == "f32" else "q4a" for name, dtype in tensor_dtypes(config, "int4a").items()}
