"""Import GGUF files (llama.cpp) of architecture "llama".

Read with the `gguf` package. A tensor may have any type that package dequantizes
(`gguf.quants.dequantize`: F32, F16, BF16, Q4_0 ... Q8_0, the K-quants, the
IQ-quants, ...): it becomes float32 exactly as gguf.quants computes it, and convert
then requantizes it to Mote's schemes and reports the error against those values.
A Q4_0, Q4_1 or Q8_0 tensor also keeps its own codes (mote.quant.native), which
convert stores unchanged where the scheme's dtype and group allow (error 0).
llama.cpp's converter already permutes Q and K into the interleaved RoPE order Mote
uses, so tensors are taken as they are. GGUFReader hands tensors over in numpy order
(rows, cols), the reverse of GGUF's `ne` dimension list.

The vocabulary is taken as llama.cpp reads it: "llama" (sentencepiece) or "gpt2"
(byte-level BPE) with a pre-tokenizer (`tokenizer.ggml.pre`) whose split Mote's
encoder implements: GPT-2's, alone or after splitting off every digit.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mote.model import Config, Model, MoteError, TokenizerData, expected_shapes
from mote.importers.config_schema import build_config
from mote.importers.vocab import bytelevel_tokenizer, parse_merges, sentencepiece_piece_bytes
from mote.quant.native import from_gguf

LAYER_NAMES = {
    "attn_norm": "attn_norm.weight",
    "wq": "attn_q.weight",
    "wk": "attn_k.weight",
    "wv": "attn_v.weight",
    "wo": "attn_output.weight",
    "ffn_norm": "ffn_norm.weight",
    "w_gate": "ffn_gate.weight",
    "w_up": "ffn_up.weight",
    "w_down": "ffn_down.weight",
}
GLOBAL_NAMES = {"tok_embedding": "token_embd.weight", "final_norm": "output_norm.weight", "classifier": "output.weight"}
# tokenizer.ggml.pre values whose split llama.cpp defines as GPT-2's pattern, and as
# every \p{N} on its own followed by that pattern (llama-vocab.cpp's pre-types GPT2
# and SMOLLM); any other pre-tokenizer is refused rather than approximated.
GPT2_SPLIT = ("gpt-2", "phi-2", "mpt", "olmo")
DIGITS_THEN_GPT2_SPLIT = ("smollm", "starcoder", "refact", "codeshell")

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type)
TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 2, 3, 4, 5, 6


class _Metadata:
    def __init__(self, path: Path, reader: Any):
        self.path = path
        self.fields = reader.fields

    def get(self, key: str, default: Any = None) -> Any:
        field = self.fields.get(key)
        return default if field is None else field.contents()

    def need(self, key: str) -> Any:
        if key not in self.fields:
            raise MoteError(f"{self.path}: missing metadata {key}")
        return self.fields[key].contents()

    def raw_strings(self, key: str) -> list[bytes]:
        """A string array as raw bytes (token pieces need not be valid UTF-8)."""
        field = self.fields[key]
        return [bytes(field.parts[i]) for i in field.data]


def _decimal(value: float) -> float:
    """GGUF stores these as float32: take the shortest decimal that rounds to it
    (1e-05, not 9.999999747378752e-06), the value the exporter started from."""
    return float(str(np.float32(value)))


def _config(meta: _Metadata, vocab_size: int, tied: bool) -> Config:
    arch = meta.need("general.architecture")
    if arch != "llama":
        raise MoteError(f"{meta.path}: GGUF architecture {arch!r} is not supported (only llama)")
    keys = {
        "dim": "llama.embedding_length", "hidden_dim": "llama.feed_forward_length",
        "n_layers": "llama.block_count", "n_heads": "llama.attention.head_count",
        "max_seq_len": "llama.context_length", "norm_eps": "llama.attention.layer_norm_rms_epsilon",
    }
    raw = {name: (key, meta.need(key)) for name, key in keys.items()}
    raw["n_kv_heads"] = ("llama.attention.head_count_kv", meta.get("llama.attention.head_count_kv"))
    raw["head_dim"] = ("llama.attention.key_length", meta.get("llama.attention.key_length"))
    raw["vocab_size"] = (f"{GLOBAL_NAMES['tok_embedding']} rows", vocab_size)
    raw["rope_theta"] = ("llama.rope.freq_base", meta.get("llama.rope.freq_base", 10000.0))
    for name in ("rope_theta", "norm_eps"):
        key, value = raw[name]
        if isinstance(value, float):
            raw[name] = (key, _decimal(value))
    config = build_config(meta.path, raw, activation="silu", tied=tied)
    rope_dims = meta.get("llama.rope.dimension_count", config.head_dim)
    if rope_dims != config.head_dim:
        raise MoteError(f"{meta.path}: RoPE on {rope_dims!r} of {config.head_dim} head dimensions is not supported")
    scaling = meta.get("llama.rope.scaling.type", "none")
    if scaling != "none":
        raise MoteError(f"{meta.path}: RoPE scaling {scaling!r} is not supported")
    return config


@lru_cache(maxsize=1)
def dequantizable_types() -> tuple[str, ...]:
    """The tensor types the installed `gguf` package can dequantize, found by asking
    it to dequantize one block of zeros of each type it knows."""
    from gguf import GGMLQuantizationType
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import dequantize

    found = []
    for qtype in GGMLQuantizationType:
        if qtype not in GGML_QUANT_SIZES:
            continue
        try:
            dequantize(np.zeros((1, GGML_QUANT_SIZES[qtype][1]), np.uint8), qtype)
        except NotImplementedError:
            continue
        found.append(qtype.name)
    return tuple(found)


def _dequantize(path: Path, tensor: Any) -> np.ndarray:
    """The tensor as float32, as gguf.quants dequantizes it."""
    from gguf.quants import dequantize

    kind = tensor.tensor_type.name
    if kind not in dequantizable_types():
        raise MoteError(f"{path}: tensor {tensor.name} has type {kind}, which the gguf package cannot "
                        f"dequantize; supported: {', '.join(dequantizable_types())}")
    values = dequantize(np.asarray(tensor.data), tensor.tensor_type)
    return np.asarray(values, dtype=np.float32).reshape(tuple(int(n) for n in reversed(tensor.shape)))


def _tokenizer(meta: _Metadata) -> TokenizerData:
    model = meta.need("tokenizer.ggml.model")
    raw = meta.raw_strings("tokenizer.ggml.tokens") if "tokenizer.ggml.tokens" in meta.fields else []
    if not raw:
        raise MoteError(f"{meta.path}: no tokenizer.ggml.tokens")
    names = [piece.decode("utf-8", errors="replace") for piece in raw]
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(raw)
    if len(types) != len(raw):
        raise MoteError(f"{meta.path}: {len(types)} token types for {len(raw)} tokens")
    special = {i for i, t in enumerate(types) if t in (TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_UNUSED)}

    if model == "llama":  # sentencepiece; llama.cpp defaults <s> = 1, </s> = 2
        if meta.get("tokenizer.ggml.add_space_prefix", True) is not True:
            raise MoteError(f"{meta.path}: a sentencepiece vocabulary without the leading space "
                            "(tokenizer.ggml.add_space_prefix false) is not supported")
        scores = meta.get("tokenizer.ggml.scores")
        if scores is None or len(scores) != len(raw):
            raise MoteError(f"{meta.path}: sentencepiece vocabulary needs one score per token")
        tokens = [
            piece.replace("\u2581".encode(), b" ") if t != TOKEN_BYTE else sentencepiece_piece_bytes(name)
            for piece, name, t in zip(raw, names, types)
        ]
        return TokenizerData(
            kind="llama2c",
            tokens=tokens,
            scores=[float(s) for s in scores],
            bos_id=int(meta.get("tokenizer.ggml.bos_token_id", 1)),
            eos_id=int(meta.get("tokenizer.ggml.eos_token_id", 2)),
            special=special,
            names=names,
        )
    if model == "gpt2":
        merges = meta.get("tokenizer.ggml.merges")
        if merges is None:
            raise MoteError(f"{meta.path}: byte-level vocabulary without tokenizer.ggml.merges")
        pre = meta.get("tokenizer.ggml.pre")
        if pre not in GPT2_SPLIT + DIGITS_THEN_GPT2_SPLIT:
            raise MoteError(f"{meta.path}: pre-tokenizer {pre!r} (tokenizer.ggml.pre) is not supported; Mote "
                            f"splits as llama.cpp does for {', '.join(GPT2_SPLIT + DIGITS_THEN_GPT2_SPLIT)}")
        tok = bytelevel_tokenizer(
            str(meta.path),
            names,
            parse_merges(str(meta.path), merges),
            special=special,
            bos_id=int(meta.get("tokenizer.ggml.bos_token_id", -1)),
            eos_id=int(meta.get("tokenizer.ggml.eos_token_id", -1)),
            plain_text={i for i, t in enumerate(types) if t in (TOKEN_CONTROL, TOKEN_USER_DEFINED)},
        )
        tok.split_digits = pre in DIGITS_THEN_GPT2_SPLIT
        return tok
    raise MoteError(f"{meta.path}: tokenizer model {model!r} is not supported (only llama and gpt2)")


def _read(path: Path) -> Any:
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except Exception as err:  # GGUFReader parses untrusted bytes and may fail in many ways
        raise MoteError(f"{path}: not a readable GGUF file ({err})") from err


def load_gguf_vocabulary(path: Path) -> tuple[TokenizerData, str | None]:
    """The vocabulary and the Jinja chat template of a GGUF file, without its tensors."""
    path = Path(path)
    meta = _Metadata(path, _read(path))
    return _tokenizer(meta), _chat_template(meta)


def _chat_template(meta: _Metadata) -> str | None:
    template = meta.get("tokenizer.chat_template")
    return template if isinstance(template, str) else None


def load_gguf(path: Path) -> Model:
    """A GGUF file of a llama model as a Model."""
    path = Path(path)
    reader = _read(path)
    meta = _Metadata(path, reader)
    by_name = {t.name: t for t in reader.tensors}
    embedding = by_name.get(GLOBAL_NAMES["tok_embedding"])
    if embedding is None:
        raise MoteError(f"{path}: missing tensor {GLOBAL_NAMES['tok_embedding']}")
    vocab_size = int(embedding.shape[-1])  # GGUF ne order: (dim, vocab)
    config = _config(meta, vocab_size, tied=GLOBAL_NAMES["classifier"] not in by_name)

    wanted = {mote: g for mote, g in GLOBAL_NAMES.items() if mote != "classifier" or not config.tied_classifier}
    for layer in range(config.n_layers):
        for mote, g in LAYER_NAMES.items():
            wanted[f"layers.{layer}.{mote}"] = f"blk.{layer}.{g}"
    unused = sorted(set(by_name) - set(wanted.values()))
    if unused:
        raise MoteError(f"{path}: unexpected tensor {unused[0]} (not a plain llama model?)")

    shapes = expected_shapes(config)
    tensors, source_types, source_codes = {}, {}, {}
    for mote, g in wanted.items():
        if g not in by_name:
            raise MoteError(f"{path}: missing tensor {g}")
        array = _dequantize(path, by_name[g])
        if tuple(array.shape) != shapes[mote]:
            raise MoteError(f"{path}: tensor {g} has shape {tuple(array.shape)}, expected {shapes[mote]}")
        tensors[mote] = array
        source_types[mote] = by_name[g].tensor_type.name
        if array.ndim == 2:
            native = from_gguf(source_types[mote], by_name[g].data, *array.shape)
            if native is not None:
                source_codes[mote] = native
    model = Model(config=config, tensors=tensors, tokenizer=_tokenizer(meta), name=path.stem,
                  source_types=source_types, source_codes=source_codes, chat_template=_chat_template(meta))
    model.validate()
    return model
