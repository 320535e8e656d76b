"""The in-memory model every importer produces and every later stage consumes.

Tensors are float32 numpy arrays in Mote's canonical convention:
- matrices are (out_features, in_features), so y = W @ x;
- wq and wk rows use the interleaved RoPE convention of Meta's original Llama
  and llama2.c: rotation pairs are dimensions (2i, 2i+1) within each head.
  Hugging Face checkpoints store them "rotate-half" ordered; the HF importer
  permutes them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class MoteError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 2."""


@dataclass(frozen=True)
class Config:
    dim: int  # residual stream width
    hidden_dim: int  # FFN inner width
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    max_seq_len: int  # context the model was trained for
    activation: str = "silu"  # FFN gate activation: "silu" or "relu"
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tied_classifier: bool = True  # classifier reuses the token embedding

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    def n_params(self) -> int:
        per_layer = (
            2 * self.dim  # two norms
            + self.q_dim * self.dim * 2  # wq, wo
            + self.kv_dim * self.dim * 2  # wk, wv
            + self.hidden_dim * self.dim * 3  # gate, up, down
        )
        total = self.vocab_size * self.dim + self.n_layers * per_layer + self.dim
        if not self.tied_classifier:
            total += self.vocab_size * self.dim
        return total


@dataclass
class TokenizerData:
    """A tokenizer reduced to what Mote's BPE encoder needs.

    kind "llama2c": sentencepiece-style vocabulary from llama2.c's tokenizer.bin:
      text is split into UTF-8 code points (a code point missing from the
      vocabulary becomes its byte tokens), a space is prepended ("dummy prefix"),
      and adjacent pairs whose concatenation is a token are merged, best score
      first. `scores` holds one float per token.
    kind "bytelevel": GPT-2 style byte-level BPE from a Hugging Face
      tokenizer.json: text is split by the GPT-2 pre-tokenizer regex, every byte
      is a token, and `merges` (pairs of token ids, best first) are applied.
    `tokens[i]` is the raw byte string token i decodes to (byte-level tokens are
    mapped back from their printable-unicode spelling; llama2.c's <0xXX> tokens
    are the single byte XX). Special/control tokens are listed in `special` and
    decode to nothing.
    """

    kind: str
    tokens: list[bytes]
    scores: list[float] | None = None
    merges: list[tuple[int, int]] | None = None
    bos_id: int = -1
    eos_id: int = -1
    special: set[int] = field(default_factory=set)
    # text form of each token as the source spells it (for display, and for
    # looking up special tokens by name)
    names: list[str] | None = None
    # bytelevel only: every \p{N} character is a piece of its own before GPT-2's split
    # (Hugging Face's Digits(individual_digits) pre-tokenizer; llama.cpp's "smollm")
    split_digits: bool = False


@dataclass
class Model:
    config: Config
    # Tensor names: "tok_embedding" (vocab, dim), "final_norm" (dim,),
    # "classifier" (vocab, dim) only when not tied, and per layer l:
    # "layers.{l}.attn_norm" (dim,), ".wq" (q_dim, dim), ".wk" (kv_dim, dim),
    # ".wv" (kv_dim, dim), ".wo" (dim, q_dim), ".ffn_norm" (dim,),
    # ".w_gate" (hidden, dim), ".w_up" (hidden, dim), ".w_down" (dim, hidden).
    tensors: dict[str, np.ndarray]
    tokenizer: TokenizerData
    name: str = "model"
    # how the checkpoint stored each tensor ("Q4_1", "F16", ...), where the importer
    # knows: convert names it beside the quantization error it reports
    source_types: dict[str, str] = field(default_factory=dict)
    # the checkpoint's own group codes where Mote can store them unchanged, as
    # mote.quant.groups.QuantizedMatrix (mote.quant.native: GGUF Q4_0, Q4_1, Q8_0); the
    # quantizer takes them as they are. Any: mote.quant depends on this module, not back
    source_codes: dict[str, Any] = field(default_factory=dict)
    # the checkpoint's Jinja chat template (tokenizer.chat_template, tokenizer_config.json)
    chat_template: str | None = None

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return expected_shapes(self.config)

    def validate(self) -> None:
        """Raise MoteError naming the first missing, mis-shaped or non-finite tensor."""
        for name, shape in self.expected_shapes().items():
            if name not in self.tensors:
                raise MoteError(f"{self.name}: missing tensor {name} (expected shape {shape})")
            got = tuple(self.tensors[name].shape)
            if got != shape:
                raise MoteError(f"{self.name}: tensor {name} has shape {got}, expected {shape}")
            # a NaN or inf quantizes into a scale that poisons its whole group, silently
            finite = np.isfinite(self.tensors[name])
            if not finite.all():
                bad = int(finite.size - np.count_nonzero(finite))
                raise MoteError(f"{self.name}: tensor {name} has {bad} NaN or infinite values")
        if len(self.tokenizer.tokens) != self.config.vocab_size:
            raise MoteError(
                f"{self.name}: tokenizer has {len(self.tokenizer.tokens)} tokens, "
                f"model vocabulary is {self.config.vocab_size}"
            )


def expected_shapes(c: Config) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"tok_embedding": (c.vocab_size, c.dim)}
    for layer in range(c.n_layers):
        p = f"layers.{layer}."
        shapes[p + "attn_norm"] = (c.dim,)
        shapes[p + "wq"] = (c.q_dim, c.dim)
        shapes[p + "wk"] = (c.kv_dim, c.dim)
        shapes[p + "wv"] = (c.kv_dim, c.dim)
        shapes[p + "wo"] = (c.dim, c.q_dim)
        shapes[p + "ffn_norm"] = (c.dim,)
        shapes[p + "w_gate"] = (c.hidden_dim, c.dim)
        shapes[p + "w_up"] = (c.hidden_dim, c.dim)
        shapes[p + "w_down"] = (c.dim, c.hidden_dim)
    shapes["final_norm"] = (c.dim,)
    if not c.tied_classifier:
        shapes["classifier"] = (c.vocab_size, c.dim)
    return shapes
