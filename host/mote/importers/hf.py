"""Import Hugging Face Llama checkpoints (LlamaForCausalLM, safetensors).

A directory with config.json, model.safetensors (or shards listed in
model.safetensors.index.json) holding F32, F16 or BF16 tensors, and
tokenizer.json. Hugging Face stores the rows of q_proj and k_proj in
"rotate-half" order (within a head, dimension i pairs with i + head_dim/2); Mote,
like Meta's original Llama and llama2.c, pairs dimensions 2i and 2i+1, so those
rows are permuted back here.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
from safetensors import safe_open

from mote.model import Config, Model, MoteError, TokenizerData, expected_shapes
from mote.importers.config_schema import build_config, choice
from mote.importers.vocab import (
    SENTENCEPIECE_SPACE,
    bytelevel_tokenizer,
    dense_vocab,
    parse_merges,
)

# Mote tensor name (after "layers.{l}.") -> Hugging Face name (after "model.layers.{l}.")
LAYER_NAMES = {
    "attn_norm": "input_layernorm.weight",
    "wq": "self_attn.q_proj.weight",
    "wk": "self_attn.k_proj.weight",
    "wv": "self_attn.v_proj.weight",
    "wo": "self_attn.o_proj.weight",
    "ffn_norm": "post_attention_layernorm.weight",
    "w_gate": "mlp.gate_proj.weight",
    "w_up": "mlp.up_proj.weight",
    "w_down": "mlp.down_proj.weight",
}
GLOBAL_NAMES = {
    "tok_embedding": "model.embed_tokens.weight",
    "final_norm": "model.norm.weight",
    "classifier": "lm_head.weight",
}
ACTIVATIONS = {"silu": "silu", "swish": "silu", "relu": "relu"}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise MoteError(f"cannot read {path}: {err.strerror}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MoteError(f"{path}: not valid JSON ({err})") from err
    except RecursionError:
        raise MoteError(f"{path}: JSON nested too deeply to be a configuration") from None
    if not isinstance(data, dict):
        raise MoteError(f"{path}: expected a JSON object")
    return data


def _rope_theta(path: Path, cfg: dict[str, Any]) -> Any:
    """rope_theta from the top level (transformers < 5) or rope_parameters (>= 5),
    as stored (build_config checks it); any RoPE scaling (linear, dynamic, llama3,
    yarn, ...) is refused."""
    sections = {}
    for key in ("rope_parameters", "rope_scaling"):
        section = cfg.get(key) or {}
        if not isinstance(section, dict):
            raise MoteError(f"{path}: {key} {section!r}: must be an object or null")
        sections[key] = section
        rope_type = section.get("rope_type", section.get("type", "default"))
        if rope_type != "default":
            raise MoteError(f"{path}: RoPE scaling type {rope_type!r} is not supported (only default RoPE)")
    if cfg.get("partial_rotary_factor", 1.0) != 1.0:
        raise MoteError(f"{path}: partial rotary embeddings are not supported")
    params = sections["rope_parameters"]
    if "rope_theta" in params:
        return params["rope_theta"]
    return cfg.get("rope_theta", 10000.0)


def _config(path: Path, cfg: dict[str, Any]) -> Config:
    architectures = cfg.get("architectures") or []
    model_type = cfg.get("model_type")
    is_llama = model_type == "llama" or (model_type is None and architectures == ["LlamaForCausalLM"])
    if not is_llama or (architectures and architectures != ["LlamaForCausalLM"]):
        described = ", ".join(map(str, architectures)) if isinstance(architectures, list) else str(architectures)
        raise MoteError(f"{path}: architecture {described or model_type} is not supported (only LlamaForCausalLM)")
    for flag in ("attention_bias", "mlp_bias"):
        if cfg.get(flag):
            raise MoteError(f"{path}: {flag} is set; Llama models with biases are not supported")
    activation = choice(path, "hidden_act", cfg.get("hidden_act", "silu"), ACTIVATIONS)
    keys = {
        "dim": "hidden_size", "hidden_dim": "intermediate_size", "n_layers": "num_hidden_layers",
        "n_heads": "num_attention_heads", "n_kv_heads": "num_key_value_heads", "head_dim": "head_dim",
        "vocab_size": "vocab_size", "max_seq_len": "max_position_embeddings",
    }
    raw = {name: (key, cfg.get(key)) for name, key in keys.items()}
    raw["rope_theta"] = ("rope_theta", _rope_theta(path, cfg))
    raw["norm_eps"] = ("rms_norm_eps", cfg.get("rms_norm_eps", 1e-6))
    # tied is settled by _load_tensors once the tensor names are known
    return build_config(path, raw, activation, tied=True)


def rotate_half_to_interleaved(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows of a q_proj / k_proj from Hugging Face's rotate-half order to interleaved
    pairs: within each head, new row 2i is old row i and new row 2i+1 is old row
    i + head_dim/2 (llama2.c export.py's permute_reverse)."""
    rows, cols = w.shape
    half = rows // n_heads // 2
    return np.ascontiguousarray(w.reshape(n_heads, 2, half, cols).transpose(0, 2, 1, 3).reshape(rows, cols))


def interleaved_to_rotate_half(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of rotate_half_to_interleaved (what HF's conversion scripts do)."""
    rows, cols = w.shape
    half = rows // n_heads // 2
    return np.ascontiguousarray(w.reshape(n_heads, half, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols))


def _tensor_files(directory: Path) -> dict[str, Path]:
    """Every tensor name -> the safetensors file holding it."""
    index = directory / "model.safetensors.index.json"
    single = directory / "model.safetensors"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise MoteError(f"{index}: no weight_map")
        for name, file in weight_map.items():
            if not isinstance(file, str):
                raise MoteError(f"{index}: weight_map entry {name!r} is {file!r}: must be a file name")
        return {name: directory / file for name, file in weight_map.items()}
    if single.is_file():
        try:
            with safe_open(single, framework="np") as f:
                return {name: single for name in f.keys()}
        except (OSError, safetensors.SafetensorError) as err:
            raise MoteError(f"{single}: not a readable safetensors file ({err})") from err
    if any(directory.glob("*.bin")) or any(directory.glob("*.pth")):
        raise MoteError(f"{directory}: only PyTorch .bin/.pth weights found; Mote reads safetensors")
    raise MoteError(f"{directory}: no model.safetensors or model.safetensors.index.json")


class _SafetensorsReader:
    """Reads tensors as float32 one at a time, keeping each file open once."""

    def __init__(self, stack: ExitStack):
        self._stack = stack
        self._open: dict[Path, Any] = {}
        self._bf16: dict[Path, dict[str, Any]] = {}

    def _handle(self, path: Path) -> Any:
        if path not in self._open:
            try:
                self._open[path] = self._stack.enter_context(safe_open(path, framework="np"))
            except (OSError, safetensors.SafetensorError) as err:
                raise MoteError(f"{path}: not a readable safetensors file ({err})") from err
        return self._open[path]

    def read(self, path: Path, name: str) -> np.ndarray:
        handle = self._handle(path)
        if name not in handle.keys():
            raise MoteError(f"{path}: tensor {name} is listed in the index but missing from the file")
        dtype = handle.get_slice(name).get_dtype()
        if dtype in ("F32", "F16"):
            return handle.get_tensor(name).astype(np.float32, copy=False)
        if dtype == "BF16":
            return self._read_bf16(path, name)
        raise MoteError(f"{path}: tensor {name} has dtype {dtype}; only F32, F16, BF16 are supported")

    def _read_bf16(self, path: Path, name: str) -> np.ndarray:
        # numpy has no bfloat16, so safetensors cannot hand one over as an array.
        # Take the raw bytes instead (one deserialize per file): a bfloat16 is the
        # top half of a float32, so shifting it up 16 bits gives the exact value.
        if path not in self._bf16:
            self._bf16[path] = dict(safetensors.deserialize(path.read_bytes()))
        entry = self._bf16[path][name]
        halves = np.frombuffer(entry["data"], dtype="<u2")
        return (halves.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _load_tensors(directory: Path, config: Config, tie: bool | None) -> tuple[Config, dict[str, np.ndarray]]:
    files = _tensor_files(directory)
    for name in files:
        if name.endswith(".bias"):
            raise MoteError(f"{directory}: tensor {name}: biases are not supported")
    lm_head = GLOBAL_NAMES["classifier"]
    if tie is False and lm_head not in files:
        raise MoteError(f"{directory}: tie_word_embeddings is false but tensor {lm_head} is missing")
    # Tied when the config says so (a saved lm_head is then a copy of the
    # embedding) or, with no word in the config, when there is no lm_head.
    tied = bool(tie) or lm_head not in files
    config = Config(**{**config.__dict__, "tied_classifier": tied})

    wanted = {mote: hf for mote, hf in GLOBAL_NAMES.items() if mote != "classifier" or not tied}
    for layer in range(config.n_layers):
        for mote, hf in LAYER_NAMES.items():
            wanted[f"layers.{layer}.{mote}"] = f"model.layers.{layer}.{hf}"
    unused = set(files) - set(wanted.values())
    # old checkpoints keep a RoPE cache; a tied model may still carry its lm_head copy
    unused = {n for n in unused if not n.endswith("rotary_emb.inv_freq") and n != lm_head}
    if unused:
        raise MoteError(f"{directory}: unexpected tensor {sorted(unused)[0]} (not a plain Llama model?)")

    shapes = expected_shapes(config)
    tensors = {}
    with ExitStack() as stack:
        reader = _SafetensorsReader(stack)
        for mote, hf in wanted.items():
            if hf not in files:
                raise MoteError(f"{directory}: missing tensor {hf}")
            array = reader.read(files[hf], hf)
            if tuple(array.shape) != shapes[mote]:
                raise MoteError(f"{directory}: tensor {hf} has shape {tuple(array.shape)}, expected {shapes[mote]}")
            if mote.endswith(".wq"):
                array = rotate_half_to_interleaved(array, config.n_heads)
            elif mote.endswith(".wk"):
                array = rotate_half_to_interleaved(array, config.n_kv_heads)
            tensors[mote] = array
    return config, tensors


def _special_id(value: Any, ids: dict[str, int]) -> int | None:
    """A bos/eos entry of tokenizer_config.json ("<s>" or {"content": "<s>"}) as an id."""
    if isinstance(value, dict):
        value = value.get("content")
    return ids.get(value) if isinstance(value, str) else None


def _bos_eos(directory: Path, cfg: dict[str, Any], ids: dict[str, int]) -> tuple[int, int]:
    tok_cfg_path = directory / "tokenizer_config.json"
    tok_cfg = _read_json(tok_cfg_path) if tok_cfg_path.is_file() else {}
    result = []
    for which in ("bos", "eos"):
        token_id = _special_id(tok_cfg.get(f"{which}_token"), ids)
        if token_id is None:
            fallback = cfg.get(f"{which}_token_id")
            if isinstance(fallback, list):  # some configs list several eos ids
                fallback = fallback[0] if fallback else None
            token_id = fallback if isinstance(fallback, int) else -1
        result.append(token_id)
    return result[0], result[1]


def _pre_tokenizers(spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return list(spec.get("pretokenizers", []))
    return [spec]


def load_hf_tokenizer(directory: Path, cfg: dict[str, Any]) -> TokenizerData:
    """tokenizer.json as TokenizerData kind "bytelevel" (GPT-2 style byte-level BPE)."""
    from tokenizers import Tokenizer

    path = directory / "tokenizer.json"
    if not path.is_file():
        raise MoteError(f"{directory}: no tokenizer.json (Mote reads the Hugging Face fast tokenizer file)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on malformed files
        raise MoteError(f"{path}: unreadable tokenizer ({err})") from err
    # The library's own serialization is canonical (merges always present, one form).
    spec = json.loads(tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise MoteError(f"{path}: tokenizer model {model.get('type')} is not supported (only BPE)")

    pre = _pre_tokenizers(spec.get("pre_tokenizer"))
    pre_types = [p.get("type") for p in pre]
    if "Metaspace" in pre_types or model.get("byte_fallback") or SENTENCEPIECE_SPACE in str(spec.get("normalizer")):
        raise MoteError(f"{path}: sentencepiece-style tokenizer.json is not supported yet (byte-level BPE only)")
    # Digits(individual_digits) first: SmolLM's pre-tokenizer, every \p{N} on its own
    split_digits = pre_types == ["Digits", "ByteLevel"] and pre[0].get("individual_digits") is True
    if pre_types != ["ByteLevel"] and not split_digits:
        raise MoteError(
            f"{path}: pre-tokenizer {' + '.join(map(str, pre_types)) or 'none'} is not supported "
            "(Mote's byte-level encoder implements GPT-2's ByteLevel split, optionally after "
            "Digits(individual_digits=true))"
        )
    if not pre[-1].get("use_regex", True) or pre[-1].get("add_prefix_space"):
        raise MoteError(
            f"{path}: ByteLevel pre-tokenizer options use_regex=false / add_prefix_space=true are not supported"
        )
    if spec.get("normalizer"):
        raise MoteError(f"{path}: normalizer {spec['normalizer'].get('type')} is not supported")

    ids = tokenizer.get_vocab(with_added_tokens=True)
    names = dense_vocab(str(path), ids)
    added = tokenizer.get_added_tokens_decoder()
    special = {i for i, token in added.items() if token.special}
    bos_id, eos_id = _bos_eos(directory, cfg, ids)
    tok = bytelevel_tokenizer(
        str(path),
        names,
        parse_merges(str(path), model.get("merges", [])),
        special=special,
        bos_id=bos_id,
        eos_id=eos_id,
        plain_text=set(added),
    )
    tok.split_digits = split_digits
    return tok


def _chat_template(directory: Path) -> str | None:
    """tokenizer_config.json's chat_template: a Jinja string, or a list of named ones of
    which "default" is the chat template (transformers' convention)."""
    path = directory / "tokenizer_config.json"
    template = _read_json(path).get("chat_template") if path.is_file() else None
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if template is not None and not isinstance(template, str):
        raise MoteError(f"{path}: chat_template is not a Jinja string")
    return template


def load_hf(directory: Path) -> Model:
    """A Hugging Face Llama directory as a Model."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MoteError(f"{directory}: not a directory")
    cfg = _read_json(directory / "config.json")
    tie = cfg.get("tie_word_embeddings")
    config, tensors = _load_tensors(directory, _config(directory / "config.json", cfg), tie)
    tokenizer = load_hf_tokenizer(directory, cfg)
    model = Model(config=config, tensors=tensors, tokenizer=tokenizer, name=directory.name,
                  chat_template=_chat_template(directory))
    model.validate()
    return model
