"""Checkpoint importers: every supported format becomes one mote.model.Model.

`load_model` picks the importer from what the path is: a Hugging Face directory
(config.json), a GGUF file, or a llama2.c checkpoint (v1/v2 by their "ak42"
magic, v0 by a plausible header, after which the file size must match it).
"""

from __future__ import annotations

from pathlib import Path

from mote.model import Model, MoteError
from mote.importers.gguf import load_gguf
from mote.importers.hf import load_hf
from mote.importers.llama2c import AK42_MAGIC, load_llama2c, looks_like_v0

__all__ = ["load_model", "load_hf", "load_gguf", "load_llama2c"]

GGUF_MAGIC = b"GGUF"
MOTE_MAGIC = b"MOTE"
AK42_BYTES = AK42_MAGIC.to_bytes(4, "little")


def _magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError as err:
        raise MoteError(f"cannot read {path}: {err.strerror}") from err


def _detect(source: Path) -> str:
    """"hf", "gguf" or "llama2c", or a MoteError saying what `source` is instead."""
    if source.is_dir():
        if not (source / "config.json").is_file():
            raise MoteError(f"{source}: a directory without config.json is not a Hugging Face model")
        return "hf"
    if not source.is_file():
        raise MoteError(f"{source}: no such file or directory")
    magic = _magic(source)
    if magic == MOTE_MAGIC:
        raise MoteError(f"{source} is a .mote blob, not a checkpoint")
    if magic == GGUF_MAGIC:
        return "gguf"
    # v0 has no magic: a plausible header is enough to commit to it, so that a
    # file cut short gets load_llama2c's expected-vs-actual size message.
    if magic == AK42_BYTES or looks_like_v0(source):
        return "llama2c"
    raise MoteError(f"unrecognized checkpoint format: {source}")


def load_model(source: Path, tokenizer: Path | None = None) -> Model:
    """Import `source` in whatever supported format it is. `tokenizer` is needed
    only by llama2.c checkpoints without a tokenizer.bin beside them."""
    source = Path(source)
    kind = _detect(source)
    if kind == "llama2c":
        model = load_llama2c(source, tokenizer)
    elif tokenizer is not None:
        raise MoteError(f"{source}: --tokenizer applies only to llama2.c checkpoints ({kind} carries its own)")
    elif kind == "hf":
        model = load_hf(source)
    else:
        model = load_gguf(source)
    model.validate()
    return model
