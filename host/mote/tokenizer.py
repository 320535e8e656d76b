"""The blob's tokenizer section: packing it, and the Python BPE tokenizer that reads it.

`pack_tokenizer` turns a TokenizerData into the section described in
docs/blob-format.md ("Tokenizer section layout"); `Tokenizer` reads a section back
and encodes and decodes with exactly the algorithm of firmware/core/tokenizer.c, so
it is the C code's oracle. Both kinds share one merge rule: repeatedly merge the
adjacent pair with the lowest rank, the leftmost on ties.
- kind llama2c: the text (with a dummy-prefix space) becomes one token per code
  point, or that code point's byte tokens; the merge table is derived from the
  vocabulary (a pair merges when its concatenation is a token) and ranked by score,
  which reproduces llama2.c's "best score, leftmost" loop.
- kind bytelevel: the text is cut by GPT-2's pre-tokenizer regex (hand-written
  here, as in C, over Unicode class tables stored in the section), after cutting
  every \\p{N} character off on its own when the section says so (SmolLM's
  pre-tokenizer); each piece starts as byte tokens and the ranked merges apply, as
  in Hugging Face `tokenizers` and llama.cpp.
"""

from __future__ import annotations

import bisect
import heapq
import re
import struct
import unicodedata
from collections import namedtuple
from functools import lru_cache

from mote.model import MoteError, TokenizerData

MAGIC = 0x4E4B4F54  # the bytes "T O K N"
KIND_LLAMA2C = 1
KIND_BYTELEVEL = 2
KINDS = {"llama2c": KIND_LLAMA2C, "bytelevel": KIND_BYTELEVEL}

FLAG_DUMMY_PREFIX = 1  # encode prepends the token of " " to non-empty text
FLAG_STRIP_AFTER_BOS = 2  # decode drops the leading space of the token after BOS
FLAG_SPLIT_DIGITS = 4  # bytelevel: every \p{N} character is a piece of its own
KNOWN_FLAGS = FLAG_DUMMY_PREFIX | FLAG_STRIP_AFTER_BOS | FLAG_SPLIT_DIGITS
TOKEN_SPECIAL = 1  # per-token flag: decodes to nothing

HEADER_BYTES = 96
MAX_VOCAB = 65536  # ids are u16 in the merge and byte tables
MAX_TOKEN_BYTES = 256  # lets the console size its decode buffer statically
NO_RANK = 0xFFFF
# byte_tokens entry of a byte the vocabulary has no token for (SmolLM2 lacks 0x04 and
# 20 more): the encoder drops that byte after merging, as llama.cpp does. Possible only
# below MAX_VOCAB tokens, where 0xFFFF is no token id.
NO_BYTE_TOKEN = 0xFFFF
# llama2.c starts its best score at -1e10, so a token scoring lower never merges.
LLAMA2C_MIN_SCORE = -1e10

# Header: (name, struct code) in file order; reserved bytes follow up to HEADER_BYTES.
_HEADER = (
    ("magic", "I"), ("kind", "I"), ("vocab_size", "I"), ("n_merges", "I"),
    ("max_token_bytes", "I"), ("bos_id", "i"), ("eos_id", "i"), ("flags", "I"),
    ("token_offsets_offset", "I"), ("token_bytes_offset", "I"),
    ("token_flags_offset", "I"), ("byte_tokens_offset", "I"), ("merges_offset", "I"),
    ("n_codepoints", "I"), ("codepoints_offset", "I"),
    ("n_letters", "I"), ("letters_offset", "I"),
    ("n_numbers", "I"), ("numbers_offset", "I"),
    ("n_spaces", "I"), ("spaces_offset", "I"),
)
_HEADER_STRUCT = struct.Struct("<" + "".join(code for _, code in _HEADER))
_RESERVED = HEADER_BYTES - _HEADER_STRUCT.size

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # llama2.c's byte-fallback token names


def _byte_piece_value(name: str) -> int | None:
    match = _BYTE_PIECE.fullmatch(name)
    return int(match.group(1), 16) if match else None


# Character classes of GPT-2's pre-tokenizer pattern.
LETTER, NUMBER, SPACE, OTHER = range(4)
_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


# ---------------------------------------------------------------------------
# Unicode class tables (stored in bytelevel sections)


@lru_cache(maxsize=1)
def unicode_class_tables() -> tuple[list[tuple[int, int]], ...]:
    """(letters, numbers, spaces) as sorted inclusive (first, last) code point ranges,
    as the `tokenizers` regex (Oniguruma) sees them: \\p{L} is categories L*, \\p{N} is
    N*, and \\s is U+0009..U+000D, U+0085 and categories Zs, Zl, Zp. Uses Python's
    unicodedata, so code points this Python's Unicode version leaves unassigned count
    as neither letter, number nor space. One pass, keeping only the ranges."""
    tables: tuple[list[tuple[int, int]], ...] = ([], [], [])
    for cp in range(0x110000):
        category = unicodedata.category(chr(cp))
        classes = (category[0] == "L", category[0] == "N",
                   9 <= cp <= 13 or cp == 0x85 or category in ("Zs", "Zl", "Zp"))
        for ranges, member in zip(tables, classes):
            if not member:
                continue
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return tables


# ---------------------------------------------------------------------------
# Packing


def _byte_tokens(tok: TokenizerData, normal: dict[bytes, int]) -> list[int]:
    """Token id of each raw byte: llama2.c's "<0xHH>" pieces, or byte-level's
    single-byte tokens."""
    table = [-1] * 256
    if tok.kind == "llama2c":
        if tok.names is not None:
            for i, name in enumerate(tok.names):
                value = _byte_piece_value(name)
                if value is not None and table[value] < 0 and i not in tok.special:
                    table[value] = i
        else:  # llama2.c itself hard-codes byte b as token b + 3
            for b in range(256):
                if b + 3 < len(tok.tokens) and tok.tokens[b + 3] == bytes([b]):
                    table[b] = b + 3
    else:
        for b in range(256):
            table[b] = normal.get(bytes([b]), -1)
    missing = [b for b in range(256) if table[b] < 0]
    if missing and len(tok.tokens) > NO_BYTE_TOKEN:
        raise MoteError(f"tokenizer has no token for byte 0x{missing[0]:02X}, and with "
                        f"{len(tok.tokens)} tokens no id is free to mark that")
    for b, token in enumerate(table):
        if token < 0:
            table[b] = NO_BYTE_TOKEN
        elif tok.tokens[token] != bytes([b]):
            raise MoteError(f"byte token {token} for 0x{b:02X} decodes to {tok.tokens[token]!r}")
    return table


def _llama2c_merges(tok: TokenizerData, normal: dict[bytes, int]) -> list[tuple[int, int, int, int]]:
    """Every split of a token t into tokens a + b gives (a, b, t, rank), rank the
    dense rank of t's score (best score rank 0, equal scores equal rank)."""
    if tok.scores is None or len(tok.scores) != len(tok.tokens):
        raise MoteError("llama2c tokenizer needs one score per token")
    found = []
    for text, t in normal.items():
        if tok.scores[t] <= LLAMA2C_MIN_SCORE:
            continue
        for cut in range(1, len(text)):
            a, b = normal.get(text[:cut]), normal.get(text[cut:])
            if a is not None and b is not None:
                found.append((a, b, t))
    distinct = sorted({tok.scores[t] for _, _, t in found}, reverse=True)
    if len(distinct) >= NO_RANK:
        raise MoteError(f"tokenizer has {len(distinct)} distinct merge scores, at most {NO_RANK - 1} fit")
    rank = {score: r for r, score in enumerate(distinct)}
    return [(a, b, t, rank[tok.scores[t]]) for a, b, t in found]


def _bytelevel_merges(tok: TokenizerData, normal: dict[bytes, int]) -> list[tuple[int, int, int, int]]:
    """Ranked merges: (a, b, the token spelling a + b, index in the list)."""
    if tok.merges is None:
        raise MoteError("bytelevel tokenizer needs a merge list")
    if len(tok.merges) >= NO_RANK:
        raise MoteError(f"tokenizer has {len(tok.merges)} merges, at most {NO_RANK - 1} fit")
    out: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for rank, (a, b) in enumerate(tok.merges):
        if not (0 <= a < len(tok.tokens) and 0 <= b < len(tok.tokens)) or a in tok.special or b in tok.special:
            raise MoteError(f"merge {rank} ({a}, {b}) uses an invalid or special token")
        merged = normal.get(tok.tokens[a] + tok.tokens[b])
        if merged is None:
            raise MoteError(f"merge {rank} ({a}, {b}) makes {tok.tokens[a] + tok.tokens[b]!r}, not a token")
        out.setdefault((a, b), (a, b, merged, rank))  # a repeated pair keeps its best rank
    return list(out.values())


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def pack_tokenizer(tok: TokenizerData) -> bytes:
    """The tokenizer section for `tok` (docs/blob-format.md, "Tokenizer section layout")."""
    if tok.kind not in KINDS:
        raise MoteError(f"unknown tokenizer kind {tok.kind!r}")
    vocab = len(tok.tokens)
    if not 0 < vocab <= MAX_VOCAB:
        raise MoteError(f"tokenizer has {vocab} tokens, Mote supports 1..{MAX_VOCAB}")
    for name, token in (("bos", tok.bos_id), ("eos", tok.eos_id)):
        if not -1 <= token < vocab:
            raise MoteError(f"{name} id {token} outside the vocabulary")
    if any(not 0 <= s < vocab for s in tok.special):
        raise MoteError("special token id outside the vocabulary")
    max_token_bytes = max(len(t) for t in tok.tokens)
    if max_token_bytes > MAX_TOKEN_BYTES:
        raise MoteError(f"a token is {max_token_bytes} bytes long, at most {MAX_TOKEN_BYTES} are supported")

    # Tokens an encoder may produce from text, by their bytes (lowest id on duplicates).
    byte_pieces: set[int] = set()
    if tok.kind == "llama2c" and tok.names is not None:
        byte_pieces = {i for i, name in enumerate(tok.names) if _byte_piece_value(name) is not None}
    elif tok.kind == "llama2c":
        byte_pieces = set(range(3, min(259, vocab)))
    normal: dict[bytes, int] = {}
    for i, text in enumerate(tok.tokens):
        if i not in tok.special and i not in byte_pieces and text:
            normal.setdefault(text, i)
    byte_table = _byte_tokens(tok, normal)

    flags = 0
    codepoints: list[tuple[int, int]] = []
    classes: tuple[list[tuple[int, int]], ...] = ([], [], [])
    if tok.kind == "llama2c":
        merges = _llama2c_merges(tok, normal)
        flags = FLAG_DUMMY_PREFIX | FLAG_STRIP_AFTER_BOS
        for text, i in normal.items():
            chars = text.decode("utf-8", errors="ignore")
            if len(chars) == 1 and chars.encode("utf-8") == text:
                codepoints.append((ord(chars), i))
        codepoints.sort()
        if not any(cp == 0x20 for cp, _ in codepoints):
            raise MoteError("llama2c tokenizer has no token for ' ' (its dummy prefix)")
    else:
        merges = _bytelevel_merges(tok, normal)
        classes = unicode_class_tables()
        flags = FLAG_SPLIT_DIGITS if tok.split_digits else 0
    if tok.split_digits and tok.kind != "bytelevel":
        raise MoteError("splitting digits is a byte-level pre-tokenizer option")
    merges.sort()

    offsets = [0]
    for text in tok.tokens:
        offsets.append(offsets[-1] + len(text))
    arrays = [
        struct.pack(f"<{vocab + 1}I", *offsets),
        _pad4(b"".join(tok.tokens)),
        _pad4(bytes(TOKEN_SPECIAL if i in tok.special else 0 for i in range(vocab))),
        struct.pack("<256H", *byte_table),
        b"".join(struct.pack("<4H", *m) for m in merges),
        b"".join(struct.pack("<2I", *c) for c in codepoints),
        *(b"".join(struct.pack("<2I", *r) for r in table) for table in classes),
    ]
    starts = []
    cursor = HEADER_BYTES
    for array in arrays:
        starts.append(cursor)
        cursor += len(array)
    header = _HEADER_STRUCT.pack(
        MAGIC, KINDS[tok.kind], vocab, len(merges), max_token_bytes, tok.bos_id, tok.eos_id,
        flags, starts[0], starts[1], starts[2], starts[3], starts[4],
        len(codepoints), starts[5], len(classes[0]), starts[6], len(classes[1]), starts[7],
        len(classes[2]), starts[8],
    )
    return header + bytes(_RESERVED) + b"".join(arrays)


# ---------------------------------------------------------------------------
# Reading and validating a section


_Header = namedtuple("_Header", [name for name, _ in _HEADER])


def _array(buf: bytes, what: str, offset: int, count: int, item_bytes: int) -> bytes:
    """The bytes of an array, after the checks mote_tok_open makes."""
    end = offset + count * item_bytes
    if offset % 4 or offset < HEADER_BYTES or end > len(buf):
        raise MoteError(f"tokenizer section: {what} at {offset} (+{end - offset} bytes) is misaligned "
                        f"or outside the {len(buf)}-byte section")
    return buf[offset:end]


def _range_table(buf: bytes, what: str, offset: int, count: int) -> list[tuple[int, int]]:
    pairs = list(struct.iter_unpack("<2I", _array(buf, what, offset, count, 8)))
    previous = -1
    for first, last in pairs:
        if not previous < first <= last <= 0x10FFFF:
            raise MoteError(f"tokenizer section: {what} ranges are not sorted and disjoint")
        previous = last
    return pairs


class Tokenizer:
    """Encoder and decoder over a tokenizer section, identical to tokenizer.c."""

    def __init__(self, section: bytes):
        buf = bytes(section)
        if len(buf) < HEADER_BYTES:
            raise MoteError(f"tokenizer section is {len(buf)} bytes, shorter than its header")
        h = _Header(*_HEADER_STRUCT.unpack_from(buf))
        if h.magic != MAGIC:
            raise MoteError("tokenizer section: bad magic")
        if h.kind not in KINDS.values():
            raise MoteError(f"tokenizer section: unknown kind {h.kind}")
        if any(buf[_HEADER_STRUCT.size:HEADER_BYTES]):
            raise MoteError("tokenizer section: reserved header bytes are not zero")
        vocab = h.vocab_size
        if not 0 < vocab <= MAX_VOCAB:
            raise MoteError(f"tokenizer section: vocab_size {vocab} outside 1..{MAX_VOCAB}")
        if not (-1 <= h.bos_id < vocab and -1 <= h.eos_id < vocab):
            raise MoteError("tokenizer section: bos or eos id outside the vocabulary")
        if h.flags & ~KNOWN_FLAGS:
            raise MoteError(f"tokenizer section: unknown flags 0x{h.flags:x}")
        if h.max_token_bytes > MAX_TOKEN_BYTES:
            raise MoteError(f"tokenizer section: max_token_bytes {h.max_token_bytes} above {MAX_TOKEN_BYTES}")

        offsets = struct.unpack(f"<{vocab + 1}I",
                                _array(buf, "token offsets", h.token_offsets_offset, vocab + 1, 4))
        text = _array(buf, "token bytes", h.token_bytes_offset, offsets[-1], 1)
        if offsets[0] != 0 or any(not 0 <= b - a <= h.max_token_bytes for a, b in zip(offsets, offsets[1:])):
            raise MoteError("tokenizer section: token offsets decrease or a token exceeds max_token_bytes")
        self.tokens = [text[a:b] for a, b in zip(offsets, offsets[1:])]
        self.special = [f & TOKEN_SPECIAL != 0 for f in
                        _array(buf, "token flags", h.token_flags_offset, vocab, 1)]
        self.byte_tokens = list(struct.unpack("<256H", _array(buf, "byte tokens", h.byte_tokens_offset, 256, 2)))
        for b, token in enumerate(self.byte_tokens):
            if token == NO_BYTE_TOKEN and vocab <= NO_BYTE_TOKEN:
                continue
            if token >= vocab or self.tokens[token] != bytes([b]):
                raise MoteError(f"tokenizer section: byte token of 0x{b:02X} is wrong")

        self.merges: dict[tuple[int, int], tuple[int, int]] = {}  # (a, b) -> (rank, merged)
        previous = -1
        for a, b, merged, rank in struct.iter_unpack("<4H", _array(buf, "merges", h.merges_offset, h.n_merges, 8)):
            key = a << 16 | b
            if key <= previous or max(a, b, merged) >= vocab or rank == NO_RANK:
                raise MoteError("tokenizer section: merges unsorted, repeated, or with an id outside the vocabulary")
            previous = key
            self.merges[a, b] = (rank, merged)

        self.codepoints: dict[int, int] = {}
        previous = -1
        for cp, token in struct.iter_unpack("<2I", _array(buf, "code points", h.codepoints_offset, h.n_codepoints, 8)):
            if not previous < cp <= 0x10FFFF or token >= vocab:
                raise MoteError("tokenizer section: code point table unsorted or with an id outside the vocabulary")
            previous = cp
            self.codepoints[cp] = token
        if h.flags & FLAG_DUMMY_PREFIX and 0x20 not in self.codepoints:
            raise MoteError("tokenizer section: dummy prefix set but ' ' has no token")
        tables = [_range_table(buf, what, offset, count) for what, offset, count in (
            ("letter", h.letters_offset, h.n_letters), ("number", h.numbers_offset, h.n_numbers),
            ("space", h.spaces_offset, h.n_spaces))]
        self._class_starts = [[first for first, _ in t] for t in tables]
        self._class_tables = tables

        self.kind = h.kind
        self.vocab_size = vocab
        self.bos_id, self.eos_id = h.bos_id, h.eos_id
        self.flags = h.flags
        self.max_token_bytes = h.max_token_bytes

    @classmethod
    def from_section(cls, buf: bytes) -> Tokenizer:
        return cls(buf)

    @classmethod
    def from_data(cls, tok: TokenizerData) -> Tokenizer:
        return cls(pack_tokenizer(tok))

    # -- encoding -----------------------------------------------------------

    def encode(self, text: str, bos: bool) -> list[int]:
        """Token ids of `text` (BOS first when `bos` and the vocabulary has one)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise MoteError(f"text is not valid UTF-8: {err.reason}") from None
        ids = [self.bos_id] if bos and self.bos_id >= 0 else []
        if self.kind == KIND_LLAMA2C:
            symbols = []
            if self.flags & FLAG_DUMMY_PREFIX and text:
                symbols.append(self.codepoints[0x20])
            for char in text:
                token = self.codepoints.get(ord(char))
                if token is None:
                    symbols.extend(self.byte_tokens[b] for b in char.encode("utf-8"))
                else:
                    symbols.append(token)
            ids += self._merge(symbols)
        else:
            for piece in self.pieces(text):
                ids += self._merge([self.byte_tokens[b] for b in piece.encode("utf-8")])
        # a byte without a token took part in merging as a symbol no pair merges with
        if self.vocab_size > NO_BYTE_TOKEN:
            return ids  # then 0xFFFF is a token, and every byte has one
        return [i for i in ids if i != NO_BYTE_TOKEN]

    def _merge(self, symbols: list[int]) -> list[int]:
        """Merge the adjacent pair of lowest rank, leftmost on ties, until none is
        left; a heap over (rank, position) with stale entries skipped."""
        n = len(symbols)
        nxt = list(range(1, n + 1))
        prev = list(range(-1, n - 1))
        alive = [True] * n
        heap: list[tuple[int, int, int, int]] = []

        def push(i: int) -> None:
            j = nxt[i]
            if j < n:
                found = self.merges.get((symbols[i], symbols[j]))
                if found is not None:
                    heapq.heappush(heap, (found[0], i, symbols[i], symbols[j]))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, a, b = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j >= n or symbols[i] != a or symbols[j] != b:
                continue  # stale: one side has merged since this entry was pushed
            symbols[i] = self.merges[a, b][1]
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prev[nxt[j]] = i
            if prev[i] >= 0:
                push(prev[i])
            push(i)
        return [s for s, keep in zip(symbols, alive) if keep]

    def char_class(self, cp: int) -> int:
        for cls, (starts, table) in enumerate(zip(self._class_starts, self._class_tables)):
            k = bisect.bisect_right(starts, cp) - 1
            if k >= 0 and cp <= table[k][1]:
                return cls
        return OTHER

    def pieces(self, text: str) -> list[str]:
        """GPT-2's pre-tokenizer, `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|
        ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`, written out as tokenizer.c does; with
        FLAG_SPLIT_DIGITS, every \\p{N} character is first cut off as a piece of its own
        and the pattern runs on the text between them."""
        classes = [self.char_class(ord(c)) for c in text]
        out = []
        if not self.flags & FLAG_SPLIT_DIGITS:
            return self._gpt2_pieces(text, classes)
        start = 0
        for i, cls in enumerate(classes):
            if cls == NUMBER:
                out += self._gpt2_pieces(text[start:i], classes[start:i])
                out.append(text[i])
                start = i + 1
        return out + self._gpt2_pieces(text[start:], classes[start:])

    def _gpt2_pieces(self, text: str, classes: list[int]) -> list[str]:
        out = []
        i = 0
        while i < len(text):
            end = self._piece_end(text, classes, i)
            out.append(text[i:end])
            i = end
        return out

    @staticmethod
    def _piece_end(text: str, classes: list[int], i: int) -> int:
        n = len(text)
        if text[i] == "'":
            for suffix in _CONTRACTIONS:
                if text.startswith(suffix, i + 1):
                    return i + 1 + len(suffix)
        start = i
        if text[i] == " " and i + 1 < n and classes[i + 1] != SPACE:
            start = i + 1  # " ?" joins a space to the letter, number or other run after it
        cls = classes[start]
        if cls != SPACE:
            end = start + 1
            while end < n and classes[end] == cls:
                end += 1
            return end
        end = i + 1
        while end < n and classes[end] == SPACE:
            end += 1
        if end == n or end - 1 == i:
            return end  # \s+ at the end of the text, or a single space before a non-space
        return end - 1  # \s+(?!\S): leave the last space to join the next piece

    # -- decoding -----------------------------------------------------------

    def token_bytes(self, token: int, prev: int) -> bytes:
        """Raw bytes `token` contributes after `prev` (-1 at the start)."""
        if not 0 <= token < self.vocab_size:
            raise MoteError(f"token id {token} outside the vocabulary of {self.vocab_size}")
        if self.special[token]:
            return b""
        piece = self.tokens[token]
        if self.flags & FLAG_STRIP_AFTER_BOS and prev == self.bos_id >= 0 and piece[:1] == b" ":
            piece = piece[1:]
        return piece

    def decode(self, ids: list[int]) -> bytes:
        """Concatenated raw bytes of `ids`: special tokens give nothing, and (llama2c)
        the token after BOS loses its leading space."""
        out = bytearray()
        prev = -1
        for token in ids:
            out += self.token_bytes(token, prev)
            prev = token
        return bytes(out)

    def stream(self) -> StreamDecoder:
        return StreamDecoder(self)


def _utf8_length(lead: int) -> int:
    """Bytes in the sequence `lead` starts; 0 for a byte no valid sequence starts with."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _continues(pending: bytes, byte: int) -> bool:
    """Whether `byte` is a valid next byte after the incomplete sequence `pending`
    (second bytes after E0, ED, F0, F4 are narrowed to exclude overlong forms,
    surrogates and code points above U+10FFFF)."""
    low, high = 0x80, 0xBF
    if len(pending) == 1:
        low, high = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF),
                     0xF4: (0x80, 0x8F)}.get(pending[0], (low, high))
    return low <= byte <= high


REPLACEMENT = "\ufffd".encode("utf-8")


class StreamDecoder:
    """Streaming decode, as mote_tok_decode: emits complete UTF-8 characters only.
    Bytes of a character split across tokens wait in `pending`; a byte that cannot
    continue them flushes them as one U+FFFD, and a byte no character starts with
    is one U+FFFD (the result equals bytes.decode("utf-8", "replace"))."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.pending = b""
        self.prev = -1

    def decode(self, token: int) -> bytes:
        piece = self.tokenizer.token_bytes(token, self.prev)
        self.prev = token
        out = bytearray()
        for byte in piece:
            if self.pending and not _continues(self.pending, byte):
                out += REPLACEMENT
                self.pending = b""
            if self.pending:
                self.pending += bytes([byte])
            else:
                length = _utf8_length(byte)
                if length == 0:
                    out += REPLACEMENT
                    continue
                self.pending = bytes([byte])
            if len(self.pending) == _utf8_length(self.pending[0]):
                out += self.pending
                self.pending = b""
        return bytes(out)

    def flush(self) -> bytes:
        """What an interrupted stream still holds: an incomplete character as U+FFFD."""
        out = REPLACEMENT if self.pending else b""
        self.pending = b""
        return out
