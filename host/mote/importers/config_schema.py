"""The one check every importer's hyperparameters pass through before anything is
built from them.

Each importer maps its own keys onto Config's fields and hands over the raw values
(whatever the checkpoint held: a JSON value, a GGUF scalar, a header int) with the
key it came from; `build_config` checks them against FIELDS and the firmware's
limits (mote.format.spec) and returns a Config, or raises one MoteError naming the
key, the value and what is allowed. What the runtime's header check (blob.c's
read_config) would refuse is refused here, before tensors are read or layers
counted, so that a bad value can neither crash, nor hang, nor convert into a blob
no runtime loads.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from mote.format import spec
from mote.model import Config, MoteError

# Config field -> (kind, low, high): ints are allowed in [low, high]; reals in
# (low, high) for rope_theta and [low, high) for norm_eps, as blob.c compares them
# in float32. Widths are bounded by MAX_DIM, as the runtime bounds them.
INT_FIELDS = {
    "dim": (1, spec.MAX_DIM),
    "hidden_dim": (1, spec.MAX_DIM),
    "n_layers": (1, spec.MAX_LAYERS),
    "n_heads": (1, spec.MAX_DIM),
    "n_kv_heads": (1, spec.MAX_DIM),
    "head_dim": (2, spec.MAX_DIM),
    "vocab_size": (1, spec.MAX_DIM),
    "max_seq_len": (1, spec.MAX_SEQ_LEN),
}
REAL_FIELDS = {
    "rope_theta": (0.0, spec.ROPE_THETA_MAX, False),  # (low, high, low included)
    "norm_eps": (0.0, spec.NORM_EPS_MAX, True),
}
REFUSED = dict(spec.REASONS)["header"]  # the runtime's words for these values

Raw = tuple[str, Any]  # (the checkpoint's key, its raw value)


def _int(path: Path, key: str, value: Any, low: int, high: int) -> int:
    # bool is an int to Python, but `true` layers is no count
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise MoteError(f"{path}: {key} {value!r}: must be an integer in {low}..{high}")
    value = int(value)
    if not low <= value <= high:
        raise MoteError(f"{path}: {key} {value}: must be in {low}..{high} (the runtime refuses it: {REFUSED})")
    return value


def _real(path: Path, key: str, value: Any, low: float, high: float, low_ok: bool) -> float:
    interval = f"{'[' if low_ok else '('}{low:g}, {high:g})"
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise MoteError(f"{path}: {key} {value!r}: must be a number in {interval}")
    number = float(value)
    # the blob stores it as float32: 1e-50 becomes 0 and 3.9e38 infinity there
    as_f32 = float(np.float32(number)) if math.isfinite(number) and abs(number) < 3.4e38 else number
    inside = (low <= as_f32 if low_ok else low < as_f32) and as_f32 < float(np.float32(high))
    if not (math.isfinite(number) and inside):
        raise MoteError(f"{path}: {key} {number!r}: must be in {interval} (the runtime refuses it: {REFUSED})")
    return number


def build_config(path: Path, raw: dict[str, Raw], activation: str, tied: bool) -> Config:
    """A Config from `raw` (Config field -> (source key, value)), checked. A missing
    or None head_dim is dim / n_heads, a missing or None n_kv_heads is n_heads."""
    values: dict[str, Any] = {}
    for name in ("dim", "n_heads"):
        key, value = raw[name]
        values[name] = _int(path, key, value, *INT_FIELDS[name])
    derived = {"head_dim": values["dim"] // values["n_heads"], "n_kv_heads": values["n_heads"]}
    for name, limits in INT_FIELDS.items():
        if name in values:
            continue
        key, value = raw[name]
        if value is None and name in derived:
            values[name] = derived[name]
            if name == "head_dim" and values["dim"] % values["n_heads"]:
                raise MoteError(f"{path}: {raw['dim'][0]} {values['dim']} is not a multiple of "
                                f"{raw['n_heads'][0]} {values['n_heads']}, and no head_dim is given")
        values[name] = _int(path, key, values.get(name, value), *limits)
    for name, limits in REAL_FIELDS.items():
        key, value = raw[name]
        values[name] = _real(path, key, value, *limits)
    heads, kv_heads, head_dim = values["n_heads"], values["n_kv_heads"], values["head_dim"]
    if heads % kv_heads:
        raise MoteError(f"{path}: {raw['n_heads'][0]} {heads} is not a multiple of "
                        f"{raw['n_kv_heads'][0]} {kv_heads}")
    if head_dim % 2:
        raise MoteError(f"{path}: head_dim {head_dim}: must be even (RoPE rotates pairs)")
    for what, width in (("heads x head_dim", heads * head_dim), ("kv heads x head_dim", kv_heads * head_dim)):
        if width > spec.MAX_DIM:
            raise MoteError(f"{path}: {what} = {width}: must be at most {spec.MAX_DIM} "
                            f"(the runtime refuses it: {REFUSED})")
    return Config(activation=activation, tied_classifier=tied, **values)


def choice(path: Path, key: str, value: Any, allowed: dict[str, str]) -> str:
    """`value` looked up in `allowed` (source spelling -> Mote's), or one MoteError."""
    if not isinstance(value, str) or value not in allowed:
        raise MoteError(f"{path}: {key} {value!r} is not supported (only {' or '.join(sorted(set(allowed.values())))})")
    return allowed[value]
