"""Vocabulary conversions shared by the importers.

Two families of BPE vocabulary reach Mote, and each becomes one TokenizerData kind:
- sentencepiece style (llama2.c tokenizer.bin, GGUF "llama", Llama-2's
  tokenizer.json): pieces spell a space as "▁" and raw bytes as "<0xHH>";
  merges are chosen by score -> kind "llama2c";
- GPT-2 byte-level (tokenizer.json with a ByteLevel pre-tokenizer, GGUF "gpt2"):
  every byte is spelled by one printable unicode character; merges are a ranked
  list of pairs -> kind "bytelevel".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache

from mote.model import MoteError, TokenizerData

SENTENCEPIECE_SPACE = "\u2581"  # "▁"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def byte_piece_value(piece: str) -> int | None:
    """The byte a sentencepiece byte-fallback piece "<0xHH>" stands for, else None."""
    match = _BYTE_PIECE.fullmatch(piece)
    return int(match.group(1), 16) if match else None


def sentencepiece_piece_bytes(piece: str) -> bytes:
    """Raw bytes of a sentencepiece piece: "<0x0A>" -> b"\\n", "▁the" -> b" the"."""
    value = byte_piece_value(piece)
    if value is not None:
        return bytes([value])
    return piece.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: printable bytes stand for themselves,
    the other 68 bytes are shifted to code points 256, 257, ... in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    mapping = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + shifted)] = b
            shifted += 1
    return mapping


def bytelevel_token_bytes(spelling: str) -> bytes:
    """Raw bytes of a byte-level token ("Ġthe" -> b" the"). A character outside
    the byte alphabet (only in hand-added tokens) stands for its own UTF-8 bytes,
    as the `tokenizers` ByteLevel decoder treats it."""
    table = _unicode_to_byte()
    out = bytearray()
    for char in spelling:
        byte = table.get(char)
        if byte is None:
            out += char.encode("utf-8")
        else:
            out.append(byte)
    return bytes(out)


def dense_vocab(source: str, pieces: dict[str, int]) -> list[str]:
    """Token spellings indexed by id; every id from 0 to the largest must be used once."""
    names: list[str | None] = [None] * (max(pieces.values(), default=-1) + 1)
    for piece, token_id in pieces.items():
        if token_id < 0 or names[token_id] is not None:
            raise MoteError(f"{source}: token id {token_id} is negative or used twice")
        names[token_id] = piece
    missing = [i for i, name in enumerate(names) if name is None]
    if missing:
        raise MoteError(f"{source}: vocabulary has no token with id {missing[0]}")
    return names  # type: ignore[return-value]


def parse_merges(source: str, merges: Iterable[str | Sequence[str]]) -> list[tuple[str, str]]:
    """Merges as (left, right) spellings; tokenizer.json and GGUF write "a b"
    strings, newer tokenizer.json files write [a, b] lists."""
    pairs = []
    for merge in merges:
        if isinstance(merge, str):
            parts = merge.split(" ")
        else:
            parts = list(merge)
        if len(parts) != 2 or not all(isinstance(p, str) for p in parts):
            raise MoteError(f"{source}: malformed merge {merge!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def merge_ids(source: str, merges: list[tuple[str, str]], ids: dict[str, int]) -> list[tuple[int, int]]:
    """Merges as token-id pairs, best first. Both halves and their concatenation
    must be tokens, or the encoder could not apply the merge."""
    out = []
    for left, right in merges:
        for piece in (left, right, left + right):
            if piece not in ids:
                raise MoteError(f"{source}: merge {left!r} {right!r} uses {piece!r}, which is not a token")
        out.append((ids[left], ids[right]))
    return out


def bytelevel_tokenizer(
    source: str,
    names: list[str],
    merges: list[tuple[str, str]],
    special: set[int],
    bos_id: int,
    eos_id: int,
    plain_text: Collection[int] = (),
) -> TokenizerData:
    """TokenizerData kind "bytelevel" from spellings in GPT-2's byte alphabet.
    Ids in `plain_text` (added and special tokens) are spelled as ordinary
    text, not in the byte alphabet: their bytes are their UTF-8 encoding."""
    ids = {name: i for i, name in enumerate(names)}
    tokens = [
        name.encode("utf-8") if i in plain_text or i in special else bytelevel_token_bytes(name)
        for i, name in enumerate(names)
    ]
    return TokenizerData(
        kind="bytelevel",
        tokens=tokens,
        merges=merge_ids(source, merges, ids),
        bos_id=bos_id,
        eos_id=eos_id,
        special=special,
        names=names,
    )
