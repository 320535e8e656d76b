"""The blob format is described once (mote.format.spec): the committed C header is what
the generator makes of it, blob.py's structs put every field at the spec's offset, and
the tables of docs/blob-format.md say what the spec says."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from mote.format import blob as mote_blob
from mote.format import gen_header, spec

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "blob-format.md"


def test_committed_header_is_generated_from_the_spec():
    committed = gen_header.HEADER_PATH.read_text()
    assert committed == gen_header.render(), (
        "firmware/core/blob_format.h is stale: run make -C firmware blob-format")


def test_the_generator_refuses_a_spec_with_a_gap(monkeypatch):
    gap = tuple((n, o + 4 if n == "sparsity_bytes" else o, k) for n, o, k in spec.HEADER)
    monkeypatch.setattr(spec, "HEADER", gap)
    with pytest.raises(ValueError, match="sparsity_bytes at 104, expected 100"):
        gen_header.render()


def test_blob_py_structs_put_each_field_at_its_spec_offset():
    for fields, packer in ((spec.HEADER, mote_blob._HEADER), (spec.ENTRY, mote_blob._ENTRY)):
        for i, (name, offset, kind) in enumerate(fields):
            size = gen_header.field_bytes(kind)
            marker = b"\xab" * (size - 1) + b"\x3f"  # a normal float too
            values = [b"" if k.startswith("bytes") else 0 for _, _, k in fields]
            values[i] = marker if kind.startswith("bytes") else struct.unpack(
                {"u8": "<B", "u16": "<H", "u32": "<I", "f32": "<f"}[kind], marker)[0]
            packed = packer.pack(*values)
            assert packed == bytes(offset) + marker + bytes(len(packed) - offset - size), name


def _table(heading: str, nth: int = 0) -> list[list[str]]:
    """Data rows of the nth table after `heading` in the doc, cells stripped."""
    tables, rows = [], []
    for line in DOC.read_text().split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            tables.append(rows[2:])  # past the column names and the |---| row
            rows = []
    return tables[nth]


def _doc_type(kind: str) -> str:
    return f"{kind.split(':')[1]} bytes" if kind.startswith("bytes:") else kind


def test_doc_header_table_matches_the_spec():
    rows = _table("## Header")
    assert [(int(r[0]), r[1], r[2]) for r in rows] == \
        [(o, _doc_type(k), "reserved" if n in spec.RESERVED else n) for n, o, k in spec.HEADER]
    values = {r[2]: r[3] for r in rows}
    assert values["header_bytes"] == str(spec.HEADER_BYTES)
    assert values["magic"].startswith(f"`{spec.MAGIC:#010X}`".replace("0X", "0x"))


def test_doc_entry_and_kind_tables_match_the_spec():
    entries = _table("## Tensor table", 0)
    assert [(int(r[0]), r[1], re.split(r"[ :(]", r[2])[0]) for r in entries] == \
        [(o, k, n) for n, o, k in spec.ENTRY]
    dtypes = {"f32": ("f32",), "q8, q4 or q4a": ("q8", "q4", "q4a")}
    kinds = _table("## Tensor table", 1)
    assert [(r[1], int(r[0]), dtypes[r[3].split(" (")[0]]) for r in kinds] == list(spec.KINDS)


def test_the_doc_restates_no_drifting_limits():
    text = DOC.read_text()
    assert "format version 1" not in text.splitlines()[0]
    assert "2..1024" not in text and "4·1026" not in text
    assert struct.pack("<I", spec.MAGIC) == b"MOTE" and "`0x45544F4D`" in text
