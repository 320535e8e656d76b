"""Write the fuzz seed corpus (tests/fuzz/corpus/): tiny valid blobs of every kind the
format allows and a few broken ones, a few KB each. Deterministic: rerunning rewrites
the same bytes. Run: python tests/fuzz/make_corpus.py"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from mote import chat  # noqa: E402
from mote.format import blob as mote_blob  # noqa: E402
from mote.format.sparsity import POINTS, Sparsity  # noqa: E402
from tiny_model import all_q4a, tiny_model  # noqa: E402


def main() -> None:
    out = HERE / "corpus"
    out.mkdir(exist_ok=True)
    seeds = {
        "int8_tied": mote_blob.pack(tiny_model(1), quant="int8", group_size=32, ctx=8),
        "int4_g6": mote_blob.pack(tiny_model(2, hidden=30), quant="int4", group_size=6, ctx=8),
        "mixed_untied_relu": mote_blob.pack(
            tiny_model(3, activation="relu", tied=False, n_layers=2), quant="mixed",
            group_size=8, ctx=4),
        # every sparsity point on: input-major and bundled layouts, thresholds section
        "int8_sparse": mote_blob.pack(
            tiny_model(4, n_layers=2), quant="int8", group_size=8, ctx=8,
            sparsity=Sparsity(POINTS, np.full((2, len(POINTS)), 0.05, np.float32), 0.25)),
        # a chat section: segments with token and content marks, a default system prompt
        "int8_chat": mote_blob.pack(
            tiny_model(5), quant="int8", group_size=16, ctx=8,
            chat=chat.named("llama2", tiny_model(5).tokenizer, "Be brief.")),
        # q4a everywhere (an untied classifier): scale and offset pairs, a ragged group
        "q4a_untied_g10": mote_blob.pack(
            tiny_model(6, tied=False), quant=all_q4a(tiny_model(6, tied=False).config), group_size=10,
            ctx=8),
    }
    good = seeds["int8_tied"]
    seeds["truncated"] = good[: len(good) // 2]
    bad_crc = bytearray(good)
    bad_crc[len(good) // 2] ^= 1
    seeds["bad_crc"] = bytes(bad_crc)
    out_of_bounds = bytearray(good)
    entry = struct.unpack_from("<I", good, 84)[0] + 32
    struct.pack_into("<I", out_of_bounds, entry + 12, len(good) + 32)
    struct.pack_into("<I", out_of_bounds, 12, zlib.crc32(memoryview(out_of_bounds)[16:]))
    seeds["table_out_of_bounds"] = bytes(out_of_bounds)
    # the embedding's data pointed at the tensor table: in bounds, only overlapping
    overlap = bytearray(good)
    struct.pack_into("<I", overlap, entry - 32 + 12, struct.unpack_from("<I", good, 84)[0])
    mote_blob.seal(overlap)
    seeds["table_overlap"] = bytes(overlap)
    # non-finite stored floats: a NaN norm (layer 0's attn_norm) and an infinite scale
    # (layer 0's wq), the CRC right
    for name, index, fmt, value in (("nan_norm", 1, "<f", float("nan")), ("inf_scale", 2, "<H", 0x7C00)):
        buf = bytearray(good)
        at = struct.unpack_from("<I", good, entry - 32 + 32 * index + (12 if fmt == "<f" else 20))[0]
        struct.pack_into(fmt, buf, at, value)
        mote_blob.seal(buf)
        seeds[name] = bytes(buf)
    # an oversized count with the CRC right (the reader must not size anything by it)
    huge = bytearray(good)
    struct.pack_into("<I", huge, 28, 0x7FFFFFFF)  # n_layers
    mote_blob.seal(huge)
    seeds["huge_n_layers"] = bytes(huge)
    for name, data in seeds.items():
        (out / f"{name}.mote").write_bytes(data)
    total = sum(len(d) for d in seeds.values())
    print(f"{len(seeds)} seeds, {total} bytes in {out}")


if __name__ == "__main__":
    main()
