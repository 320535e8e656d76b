"""GGUF files written with gguf.GGUFWriter the way llama.cpp's converter lays them out,
for importer and convert tests (a module, not a fixture, so several test files share it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mote.model import Model

LAYER = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
         "ffn_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down"}
GLOBAL = {"tok_embedding": "token_embd.weight", "final_norm": "output_norm.weight", "classifier": "output.weight"}


def gguf_name(mote_name: str) -> str:
    if mote_name.startswith("layers."):
        _, layer, short = mote_name.split(".")
        return f"blk.{layer}.{LAYER[short]}.weight"
    return GLOBAL[mote_name]


def tensor_bytes(value: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """`value` stored as GGUF type `kind`: through gguf.quants.quantize where the package
    can quantize that type, else random blocks of the right size (any bytes are a valid
    block; clearing bit 6 of every byte keeps each float field's exponent below the
    maximum, so every block dequantizes to finite values)."""
    import gguf
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import quantize

    qtype = getattr(gguf.GGMLQuantizationType, kind)
    try:
        return quantize(value, qtype)
    except NotImplementedError:
        block, size = GGML_QUANT_SIZES[qtype]
        shape = (value.shape[0], value.shape[1] // block * size)
        return (rng.integers(0, 256, shape, dtype=np.uint8) & 0xBF).astype(np.uint8)


def write_gguf(path: Path, model: Model, matrix_type: str | Callable[[str], str] = "F32",
               arch: str = "llama", pre: str | None = "gpt-2", chat_template: str | None = None,
               seed: int = 0) -> Path:
    """`model` as a GGUF file: norms F32, every matrix of `matrix_type` (a type name, or a
    function of the Mote tensor name giving one). Byte-level vocabularies get the
    pre-tokenizer `pre` (None: no tokenizer.ggml.pre)."""
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(seed)
    c, tok = model.config, model.tokenizer
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(c.max_seq_len)
    w.add_embedding_length(c.dim)
    w.add_feed_forward_length(c.hidden_dim)
    w.add_block_count(c.n_layers)
    w.add_head_count(c.n_heads)
    w.add_head_count_kv(c.n_kv_heads)
    w.add_rope_dimension_count(c.head_dim)
    w.add_rope_freq_base(c.rope_theta)
    w.add_layer_norm_rms_eps(c.norm_eps)
    types = [gguf.TokenType.CONTROL if i in tok.special else gguf.TokenType.NORMAL for i in range(len(tok.tokens))]
    if tok.kind == "llama2c":  # sentencepiece pieces: "▁" for space, <0xHH> byte tokens
        w.add_tokenizer_model("llama")
        pieces = []
        for i, (raw, name) in enumerate(zip(tok.tokens, tok.names)):
            if len(raw) == 1 and name == f"<0x{raw[0]:02X}>":
                pieces.append(name.encode())
                types[i] = gguf.TokenType.BYTE
            else:
                pieces.append(raw.replace(b" ", "\u2581".encode()))
        types[0] = gguf.TokenType.UNKNOWN
        w.add_token_list(pieces)
        w.add_token_scores(tok.scores)
    else:
        w.add_tokenizer_model("gpt2")
        if pre is not None:
            w.add_tokenizer_pre(pre)
        w.add_token_list(tok.names)
        w.add_token_merges([f"{tok.names[a]} {tok.names[b]}" for a, b in tok.merges])
    w.add_token_types(types)
    w.add_bos_token_id(tok.bos_id)
    w.add_eos_token_id(tok.eos_id)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    for name, value in model.tensors.items():
        if value.ndim == 1:
            kind = "F32"  # norms stay F32, as in llama.cpp
        else:
            kind = matrix_type(name) if callable(matrix_type) else matrix_type
        if kind not in ("F32", "F16") and value.shape[1] % 32:
            kind = "F16"  # quant blocks need rows of a multiple of 32 (stories260K's w_down)
        if kind in ("F32", "F16"):
            w.add_tensor(gguf_name(name), value.astype(np.float32 if kind == "F32" else np.float16))
        else:
            qtype = getattr(gguf.GGMLQuantizationType, kind)
            w.add_tensor(gguf_name(name), tensor_bytes(value, kind, rng), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
