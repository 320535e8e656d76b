"""Import Andrej Karpathy's llama2.c checkpoints and tokenizer.bin files.

Checkpoint versions (layouts as llama2.c's export.py writes them and run.c /
runq.c read them):
- v0 (legacy, run.c): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
  vocab_size, max_seq_len; a negative vocab_size means the classifier is not
  shared), then float32 tensors, each one stacked over all layers:
  token embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
  the RoPE tables freq_cis_real and freq_cis_imag (ignored), classifier.
- v1: a 256-byte header ("ak42" magic u32, version i32, the 7 params, a uint8
  shared-classifier flag, zero padding), then float32: rms_att, rms_ffn,
  rms_final, token embedding, wq, wk, wv, wo, w1, w2, w3, classifier.
- v2 (runq.c): the v1 header plus an int32 group size after the flag; the norms
  in float32, then every matrix quantized on its own (the token embedding, wq of
  each layer, ..., w3 of each layer, the classifier) as int8 values followed by
  one float32 scale per group of `group_size` consecutive values.

llama2.c's wq and wk already use the interleaved RoPE convention Mote keeps; its
w1, w3, w2 are Mote's w_gate, w_up, w_down.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from mote.model import Config, Model, MoteError, TokenizerData
from mote.importers.config_schema import build_config
from mote.importers.vocab import byte_piece_value

AK42_MAGIC = 0x616B3432  # "ak42" read as a little-endian u32 (bytes b"24ka")
AK42_HEADER_BYTES = 256
V0_HEADER_BYTES = 7 * 4

PER_LAYER = ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down")
# Tensor order in each layout; per-layer names are stacked over all layers.
# llama2.c's w1 / w2 / w3 are w_gate / w_down / w_up, hence the order below.
V0_ORDER = ("tok_embedding", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm",
            "w_gate", "w_down", "w_up", "final_norm", "freq_cis_real", "freq_cis_imag")
V1_ORDER = ("attn_norm", "ffn_norm", "final_norm", "tok_embedding",
            "wq", "wk", "wv", "wo", "w_gate", "w_down", "w_up")
V2_FP32_ORDER = ("attn_norm", "ffn_norm", "final_norm")
V2_QUANT_ORDER = ("tok_embedding", "wq", "wk", "wv", "wo", "w_gate", "w_down", "w_up")

BOS_ID, EOS_ID = 1, 2  # llama2.c's (sentencepiece's) <s> and </s>; 0 is <unk>


PARAM_KEYS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "max_seq_len")


def _plausible(params: tuple[int, ...]) -> bool:
    """Whether 7 header ints can be a llama2.c header at all (v0 has no magic, so
    this is what tells one from any other file)."""
    dim, _, _, n_heads, n_kv_heads, _, _ = params
    return (min(params) > 0 and not dim % n_heads and not n_heads % n_kv_heads
            and not (dim // n_heads) % 2 and max(params) <= 1 << 24)


def _config(path: Path, params: tuple[int, ...], tied: bool) -> Config:
    if not _plausible(params):
        raise MoteError(f"{path}: implausible llama2.c header {params}")
    raw = {name: (f"header {name}", value) for name, value in zip(PARAM_KEYS, params)}
    raw["head_dim"] = ("header dim / n_heads", params[0] // params[3])
    # llama2.c's run.c fixes these; its header has no field for them
    raw["rope_theta"] = ("rope_theta", 10000.0)
    raw["norm_eps"] = ("norm_eps", 1e-5)
    return build_config(path, raw, activation="silu", tied=tied)


def _shape(c: Config, name: str) -> tuple[int, ...]:
    """Shape of one entry of a layout; per-layer tensors get a leading layer axis."""
    matrices = {
        "tok_embedding": (c.vocab_size, c.dim),
        "classifier": (c.vocab_size, c.dim),
        "final_norm": (c.dim,),
        "freq_cis_real": (c.max_seq_len * c.head_dim // 2,),
        "freq_cis_imag": (c.max_seq_len * c.head_dim // 2,),
        "attn_norm": (c.dim,),
        "ffn_norm": (c.dim,),
        "wq": (c.q_dim, c.dim),
        "wk": (c.kv_dim, c.dim),
        "wv": (c.kv_dim, c.dim),
        "wo": (c.dim, c.q_dim),
        "w_gate": (c.hidden_dim, c.dim),
        "w_up": (c.hidden_dim, c.dim),
        "w_down": (c.dim, c.hidden_dim),
    }
    shape = matrices[name]
    return (c.n_layers, *shape) if name in PER_LAYER else shape


def _with_classifier(order: tuple[str, ...], c: Config) -> tuple[str, ...]:
    return order if c.tied_classifier else (*order, "classifier")


def _check_size(path: Path, kind: str, expected: int) -> None:
    actual = path.stat().st_size
    if actual != expected:
        raise MoteError(
            f"{path}: {kind} checkpoint should be {expected} bytes for its header, "
            f"but the file is {actual} bytes (truncated or not this format)"
        )


def _unstack(stacked: dict[str, np.ndarray], c: Config) -> dict[str, np.ndarray]:
    """Mote's tensor names from layouts with per-layer tensors stacked."""
    tensors = {}
    for name, array in stacked.items():
        if name.startswith("freq_cis"):
            continue  # llama2.c's precomputed RoPE tables; Mote computes its own
        if name in PER_LAYER:
            for layer in range(c.n_layers):
                tensors[f"layers.{layer}.{name}"] = array[layer]
        else:
            tensors[name] = array
    return tensors


def _read_fp32(path: Path, c: Config, order: tuple[str, ...], offset: int, kind: str) -> dict[str, np.ndarray]:
    sizes = [int(np.prod(_shape(c, name))) for name in order]
    _check_size(path, kind, offset + 4 * sum(sizes))
    # One read of the whole payload; the tensors are views into it (no copies).
    flat = np.fromfile(path, dtype="<f4", offset=offset)
    stacked, start = {}, 0
    for name, size in zip(order, sizes):
        stacked[name] = flat[start : start + size].reshape(_shape(c, name))
        start += size
    return _unstack(stacked, c)


def _v0_params(path: Path) -> tuple[tuple[int, ...], bool]:
    with open(path, "rb") as f:
        head = f.read(V0_HEADER_BYTES)
    if len(head) < V0_HEADER_BYTES:
        raise MoteError(f"{path}: too short for a llama2.c checkpoint header")
    params = struct.unpack("<7i", head)
    tied = params[5] > 0  # v0 flags an unshared classifier with a negative vocab_size
    return (*params[:5], abs(params[5]), params[6]), tied


def _v0_config(path: Path) -> Config:
    return _config(path, *_v0_params(path))


def looks_like_v0(path: Path) -> bool:
    """Whether the file starts with a plausible llama2.c v0 header (v0 has no magic):
    plausible, not yet within the runtime's limits, so that a v0 model with too many
    layers is told so rather than called unrecognized."""
    try:
        return _plausible(_v0_params(path)[0])
    except MoteError:
        return False


def _load_v0(path: Path) -> tuple[Config, dict[str, np.ndarray]]:
    c = _v0_config(path)
    return c, _read_fp32(path, c, _with_classifier(V0_ORDER, c), V0_HEADER_BYTES, "llama2.c v0")


def _load_ak42(path: Path) -> tuple[Config, dict[str, np.ndarray]]:
    with open(path, "rb") as f:
        header = f.read(AK42_HEADER_BYTES)
    if len(header) < AK42_HEADER_BYTES:
        raise MoteError(f"{path}: truncated llama2.c header ({len(header)} of {AK42_HEADER_BYTES} bytes)")
    magic, version = struct.unpack_from("<Ii", header, 0)
    if magic != AK42_MAGIC:
        raise MoteError(f"{path}: not a llama2.c 'ak42' checkpoint (magic {magic:#010x})")
    params = struct.unpack_from("<7i", header, 8)
    (shared,) = struct.unpack_from("<B", header, 36)
    c = _config(path, params, tied=bool(shared))
    if version == 1:
        return c, _read_fp32(path, c, _with_classifier(V1_ORDER, c), AK42_HEADER_BYTES, "llama2.c v1")
    if version == 2:
        (group_size,) = struct.unpack_from("<i", header, 37)
        return c, _read_v2(path, c, group_size)
    raise MoteError(f"{path}: llama2.c checkpoint version {version} is not supported (only 0, 1, 2)")


def _read_v2(path: Path, c: Config, group_size: int) -> dict[str, np.ndarray]:
    if group_size <= 0:
        raise MoteError(f"{path}: llama2.c v2 group size {group_size} is not positive")
    fp32_sizes = [int(np.prod(_shape(c, name))) for name in V2_FP32_ORDER]
    # every quantized matrix, one entry per layer for the per-layer ones
    quantized = [
        (name, _shape(c, name)[1:] if name in PER_LAYER else _shape(c, name))
        for name in _with_classifier(V2_QUANT_ORDER, c)
    ]
    expected = AK42_HEADER_BYTES + 4 * sum(fp32_sizes)
    for name, shape in quantized:
        numel = int(np.prod(shape))
        if numel % group_size:
            raise MoteError(f"{path}: {name} has {numel} values, not a multiple of group size {group_size}")
        copies = c.n_layers if name in PER_LAYER else 1
        expected += copies * (numel + 4 * (numel // group_size))
    _check_size(path, "llama2.c v2", expected)

    raw = np.fromfile(path, dtype=np.uint8)
    offset = AK42_HEADER_BYTES
    stacked: dict[str, np.ndarray] = {}
    for name, size in zip(V2_FP32_ORDER, fp32_sizes):
        stacked[name] = raw[offset : offset + 4 * size].view("<f4").reshape(_shape(c, name))
        offset += 4 * size
    for name, shape in quantized:
        numel = int(np.prod(shape))
        n_groups = numel // group_size
        out = np.empty(_shape(c, name), dtype=np.float32)
        for target in out if name in PER_LAYER else [out]:
            q = raw[offset : offset + numel].view(np.int8).reshape(n_groups, group_size)
            offset += numel
            scales = raw[offset : offset + 4 * n_groups].view("<f4")
            offset += 4 * n_groups
            target[...] = (q * scales[:, None]).reshape(shape)
        stacked[name] = out
    return _unstack(stacked, c)


def load_llama2c_tokenizer(path: Path) -> TokenizerData:
    """llama2.c tokenizer.bin: int32 max_token_length, then per token a float32
    score, an int32 byte length and the bytes. "<0xHH>" tokens are byte fallbacks."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MoteError(f"cannot read tokenizer {path}: {err.strerror}") from err
    if len(data) < 4:
        raise MoteError(f"{path}: too short for a llama2.c tokenizer")
    offset = 4  # max_token_length: a buffer size hint, not needed here
    tokens: list[bytes] = []
    names: list[str] = []
    scores: list[float] = []
    while offset < len(data):
        if offset + 8 > len(data):
            raise MoteError(f"{path}: truncated in the header of token {len(tokens)}")
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        if length < 0 or offset + length > len(data):
            raise MoteError(f"{path}: token {len(tokens)} has bad length {length} (truncated file?)")
        raw = data[offset : offset + length]
        offset += length
        name = raw.decode("utf-8", errors="replace")
        byte = byte_piece_value(name) if length == 6 else None
        tokens.append(raw if byte is None else bytes([byte]))
        names.append(name)
        scores.append(score)
    if len(tokens) <= EOS_ID:
        raise MoteError(f"{path}: only {len(tokens)} tokens, not a llama2.c tokenizer")
    return TokenizerData(
        kind="llama2c",
        tokens=tokens,
        scores=scores,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        special={0, BOS_ID, EOS_ID},  # <unk>, <s>, </s>
        names=names,
    )


def find_tokenizer(checkpoint: Path, vocab_size: int) -> Path:
    for candidate in ("tokenizer.bin", f"tok{vocab_size}.bin"):
        path = checkpoint.parent / candidate
        if path.is_file():
            return path
    raise MoteError(
        f"{checkpoint}: no tokenizer.bin or tok{vocab_size}.bin beside it; "
        "pass the llama2.c tokenizer with --tokenizer"
    )


def is_ak42(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == struct.pack("<I", AK42_MAGIC)


def load_llama2c(checkpoint: Path, tokenizer: Path | None = None) -> Model:
    """A llama2.c checkpoint (v0, v1 or v2) and its tokenizer.bin as a Model."""
    checkpoint = Path(checkpoint)
    try:
        config, tensors = _load_ak42(checkpoint) if is_ak42(checkpoint) else _load_v0(checkpoint)
    except OSError as err:
        raise MoteError(f"cannot read checkpoint {checkpoint}: {err.strerror}") from err
    tokenizer_path = Path(tokenizer) if tokenizer else find_tokenizer(checkpoint, config.vocab_size)
    tok = load_llama2c_tokenizer(tokenizer_path)
    if len(tok.tokens) != config.vocab_size:
        raise MoteError(
            f"tokenizer {tokenizer_path} has {len(tok.tokens)} tokens but checkpoint "
            f"{checkpoint} has a vocabulary of {config.vocab_size}; pass the matching --tokenizer"
        )
    model = Model(config=config, tensors=tensors, tokenizer=tok, name=checkpoint.stem)
    model.validate()
    return model
