"""Generate firmware/core/blob_format.h from mote.format.spec.

    python -m mote.format.gen_header [OUT]     (make -C firmware blob-format)

The header is committed so the firmware builds without Python; tests/test_format_spec.py
regenerates it in memory and fails when the committed file is stale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mote.format import spec

HEADER_PATH = Path(__file__).resolve().parents[3] / "firmware" / "core" / "blob_format.h"
_SIZES = {"u8": 1, "u16": 2, "u32": 4, "f32": 4}


def field_bytes(kind: str) -> int:
    return int(kind.split(":")[1]) if kind.startswith("bytes:") else _SIZES[kind]


def _check_contiguous(what: str, fields: tuple, total: int) -> None:
    """Fields tile [0, total) in order: the generator refuses a spec with gaps."""
    end = 0
    for name, offset, kind in fields:
        if offset != end:
            raise ValueError(f"{what}.{name} at {offset}, expected {end}")
        end = offset + field_bytes(kind)
    if end != total:
        raise ValueError(f"{what} fields end at {end}, expected {total}")


def _fields(prefix: str, fields: tuple) -> list[str]:
    out = []
    for name, offset, kind in fields:
        out.append(f"#define {prefix}{name.upper()} {offset}u")
        if kind.startswith("bytes:"):
            out.append(f"#define {prefix}{name.upper()}_BYTES {field_bytes(kind)}u")
    return out


def _assert(name: str, cond: str) -> str:
    # C99 has no _Static_assert: a negative array size stops the build instead
    return f"typedef char mote_format_assert_{name}[({cond}) ? 1 : -1];"


def render() -> str:
    s = spec
    _check_contiguous("header", s.HEADER, s.HEADER_BYTES)
    _check_contiguous("entry", s.ENTRY, s.TABLE_ENTRY_BYTES)
    _check_contiguous("sparsity", s.SPARSITY, s.SPARSITY_HEADER_BYTES)
    _check_contiguous("chat", s.CHAT, s.CHAT_HEADER_BYTES)
    if [f"{seg}_bytes" for seg in s.CHAT_SEGMENTS] != [n for n, _, _ in s.CHAT if n.endswith("_bytes")]:
        raise ValueError("the chat header's segment lengths must follow CHAT_SEGMENTS")
    last_h, last_e, last_s, last_c = s.HEADER[-1], s.ENTRY[-1], s.SPARSITY[-1], s.CHAT[-1]
    known_flags = sum(1 << bit for _, bit in s.FLAGS)
    codes = dict(s.DTYPES)
    if [c for _, c, _ in s.KINDS] != list(range(1, len(s.KINDS) + 1)):
        raise ValueError("kind codes must be 1, 2, ... in order (MOTE_KIND_DTYPES_INIT indexes them)")
    lines = [
        "/* blob_format.h - GENERATED from host/mote/format/spec.py by",
        " * host/mote/format/gen_header.py (make -C firmware blob-format); do not edit.",
        " * The .mote blob's constants, offsets and limits (docs/blob-format.md). */",
        "#ifndef MOTE_BLOB_FORMAT_H",
        "#define MOTE_BLOB_FORMAT_H",
        "",
        f"#define MOTE_MAGIC {s.MAGIC:#010x}u",
        f"#define MOTE_VERSION {s.VERSION}u",
        f"#define MOTE_HEADER_BYTES {s.HEADER_BYTES}u",
        f"#define MOTE_ALIGN {s.ALIGN}u",
        f"#define MOTE_TABLE_ENTRY_BYTES {s.TABLE_ENTRY_BYTES}u",
        f"#define MOTE_GLOBAL_LAYER {s.GLOBAL_LAYER:#x}u",
        f"#define MOTE_CRC_START {s.CRC_START}u",
        "",
        "/* limits */",
        f"#define MOTE_MAX_LAYERS {s.MAX_LAYERS}u",
        f"#define MOTE_MAX_DIM {s.MAX_DIM}u",
        f"#define MOTE_MAX_SEQ_LEN {s.MAX_SEQ_LEN}u",
        f"#define MOTE_MIN_GROUP {s.MIN_GROUP}u",
        f"#define MOTE_MAX_GROUP {s.MAX_GROUP}u",
        f"#define MOTE_ROPE_THETA_MAX {s.ROPE_THETA_MAX!r}f",
        f"#define MOTE_NORM_EPS_MAX {s.NORM_EPS_MAX!r}f",
        "",
        "/* header field offsets */",
        *_fields("MOTE_H_", s.HEADER),
        "",
        "/* header flags */",
        *(f"#define MOTE_FLAG_{name.upper()} (1u << {bit})" for name, bit in s.FLAGS),
        f"#define MOTE_FLAGS_KNOWN {known_flags:#x}u",
        "",
        "/* codes */",
        *(f"#define MOTE_ACTIVATION_{n.upper()} {c}u" for n, c in s.ACTIVATIONS),
        *(f"#define MOTE_DTYPE_{n.upper()} {c}u" for n, c in s.DTYPES),
        f"#define MOTE_DTYPE_CODES {max(c for _, c in s.DTYPES) + 1}u",
        "/* names by dtype code (a designated initializer; unnamed codes are NULL) */",
        "#define MOTE_DTYPE_NAMES_INIT { " + ", ".join(f'[{c}] = "{n}"' for n, c in s.DTYPES) + " }",
        *(f"#define MOTE_LAYOUT_CODE_{n.upper()} {c}u" for n, c in s.LAYOUTS),
        *(f"#define MOTE_KIND_{n.upper()} {c}u" for n, c, _ in s.KINDS),
        f"#define MOTE_LAYER_KINDS {len(s.LAYER_KINDS)}u",
        "/* per kind code, a bit mask of the dtype codes allowed for it */",
        "#define MOTE_KIND_DTYPES_INIT { 0u, " + ", ".join(
            f"{sum(1 << codes[d] for d in allowed):#x}u" for _, _, allowed in s.KINDS) + " }",
        "",
        "/* tensor table entry field offsets */",
        *_fields("MOTE_T_", s.ENTRY),
        "",
        "/* sparsity section */",
        f"#define MOTE_SPARSITY_MAGIC {s.SPARSITY_MAGIC:#010x}u",
        f"#define MOTE_SPARSITY_HEADER_BYTES {s.SPARSITY_HEADER_BYTES}u",
        *_fields("MOTE_S_", s.SPARSITY),
        *(f"#define MOTE_SPARSE_POINT_{n.upper()} {c}u" for n, c in s.SPARSE_POINTS),
        f"#define MOTE_SPARSE_POINT_COUNT {len(s.SPARSE_POINTS)}u",
        "",
        "/* chat section: the header, then the segments in this order, lengths in the header */",
        f"#define MOTE_CHAT_MAGIC {s.CHAT_MAGIC:#010x}u",
        f"#define MOTE_CHAT_HEADER_BYTES {s.CHAT_HEADER_BYTES}u",
        *_fields("MOTE_C_", s.CHAT),
        *(f"#define MOTE_CHAT_SEG_{seg.upper()} {i}u" for i, seg in enumerate(s.CHAT_SEGMENTS)),
        f"#define MOTE_CHAT_SEGMENTS {len(s.CHAT_SEGMENTS)}u",
        "/* per segment: 0 no content mark, 1 exactly one, 2 at most one (none when empty),",
        " * 3 plain text */",
        "#define MOTE_CHAT_CONTENT_INIT { " + ", ".join(
            f"{ {'0': 0, '1': 1, '0..1': 2, 'text': 3}[s.CHAT_CONTENT[seg]]}u" for seg in s.CHAT_SEGMENTS) + " }",
        f"#define MOTE_CHAT_MAX_STOPS {s.CHAT_MAX_STOPS}u",
        f"#define MOTE_CHAT_SEGMENT_MAX {s.CHAT_SEGMENT_MAX}u",
        f"#define MOTE_CHAT_SYSTEM_MAX {s.CHAT_SYSTEM_MAX}u",
        f"#define MOTE_CHAT_TOKEN_MARK {s.CHAT_TOKEN_MARK:#x}u",
        f"#define MOTE_CHAT_CONTENT_MARK {s.CHAT_CONTENT_MARK:#x}u",
        "",
        "/* why a blob is refused (mote_status_str; the host's BlobError says the same) */",
        *(f'#define MOTE_REASON_{status.upper()} "{text}"' for status, text in s.REASONS),
        "",
        "/* the layout tiles the header, an entry and the sparsity header exactly */",
        _assert("header", f"MOTE_H_{last_h[0].upper()} + MOTE_H_{last_h[0].upper()}_BYTES"
                " == MOTE_HEADER_BYTES"),
        _assert("entry", f"MOTE_T_{last_e[0].upper()} + {field_bytes(last_e[2])}u"
                " == MOTE_TABLE_ENTRY_BYTES"),
        _assert("sparsity", f"MOTE_S_{last_s[0].upper()} + MOTE_S_{last_s[0].upper()}_BYTES"
                " == MOTE_SPARSITY_HEADER_BYTES"),
        _assert("chat", f"MOTE_C_{last_c[0].upper()} + MOTE_C_{last_c[0].upper()}_BYTES"
                " == MOTE_CHAT_HEADER_BYTES"),
        _assert("aligned", "MOTE_HEADER_BYTES % MOTE_ALIGN == 0 && "
                "MOTE_SPARSITY_HEADER_BYTES % 4u == 0"),
        _assert("layer_field", "MOTE_MAX_LAYERS < MOTE_GLOBAL_LAYER"),
        _assert("group_sum_exact_in_f32", "127u * 127u * MOTE_MAX_GROUP < (1u << 24)"),
        _assert("f32", "sizeof(float) == 4"),
        "",
        "#endif /* MOTE_BLOB_FORMAT_H */",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mote.format.gen_header",
                                     description="write the C header of the blob format from its spec")
    parser.add_argument("out", nargs="?", type=Path, default=HEADER_PATH)
    out = parser.parse_args(argv).out
    out.write_text(render())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
