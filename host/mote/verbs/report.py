"""Printing shared by convert and inspect: what a blob holds and where it fits."""

from __future__ import annotations

from pathlib import Path

from mote.format.blob import Blob


def summary(blob: Blob) -> dict:
    c = blob.config
    return {
        "name": blob.name,
        "params": c.n_params(),
        "dim": c.dim, "hidden_dim": c.hidden_dim, "n_layers": c.n_layers,
        "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads, "head_dim": c.head_dim,
        "vocab_size": c.vocab_size, "max_seq_len": c.max_seq_len,
        "activation": c.activation, "tied_classifier": c.tied_classifier,
        "rope_theta": c.rope_theta, "norm_eps": c.norm_eps,
        "ctx_len": blob.ctx_len, "group_size": blob.group_size,
        "blob_bytes": blob.total_bytes, "arena_bytes": blob.arena_bytes,
        "dtypes": blob.dtype_summary(),
        "chat_template": blob.chat.name if blob.chat else "completion",
        "default_system": blob.chat.default_system if blob.chat else None,
    }


def print_summary(blob: Blob, path: Path) -> None:
    s = summary(blob)
    dtypes = ", ".join(f"{n} {d}" for d, n in s["dtypes"].items())
    print(f"{path}: {s['name']}, {s['params']:,} parameters")
    print(f"  dim {s['dim']}, hidden {s['hidden_dim']}, {s['n_layers']} layers, "
          f"{s['n_heads']} heads / {s['n_kv_heads']} kv heads of {s['head_dim']}, "
          f"vocab {s['vocab_size']}, {s['activation']}, "
          f"{'tied' if s['tied_classifier'] else 'untied'} classifier")
    print(f"  tensors: {dtypes}; group {s['group_size']}")
    print(f"  blob {s['blob_bytes']:,} bytes; arena {s['arena_bytes']:,} bytes at context {s['ctx_len']}")
    if blob.chat:
        print(f"  chat template {blob.chat.name}; default system prompt: {s['default_system']!r}")
    else:
        print("  no chat template: the console completes each line on its own")


def fit_rows(blob_bytes: int, arena_bytes: int) -> list[dict]:
    from mote.boards import catalog as boards

    return [{"board": name, "fits": ok, "detail": detail}
            for name, ok, detail in boards.fit_table(blob_bytes, arena_bytes)]


def print_fit(blob_bytes: int, arena_bytes: int) -> None:
    print("  boards:")
    for row in fit_rows(blob_bytes, arena_bytes):
        verdict = "fits" if row["fits"] else "does not fit"
        print(f"    {row['board']:10s} {verdict}: {row['detail']}")
