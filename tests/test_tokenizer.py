"""The tokenizer section and the two tokenizers that read it: host/mote/tokenizer.py
against reference tokenizers (Hugging Face `tokenizers`; llama2.c's encode transcribed
below), and firmware/core/tokenizer.c against the Python one, string for string."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import unicodedata
from pathlib import Path

import pytest
import tokenizers
from cbuild import build_tool
from mote.importers.hf import load_hf_tokenizer
from mote.importers.llama2c import load_llama2c_tokenizer
from mote.model import MoteError, TokenizerData
from mote.tokenizer import (
    HEADER_BYTES,
    LETTER,
    NUMBER,
    OTHER,
    SPACE,
    Tokenizer,
    pack_tokenizer,
)
from shared_models import model_path
from token_strings import all_strings, smollm_strings

HF_MODELS = ("mcu-1m-silu", "ref-11m-silu")

# ---------------------------------------------------------------------------
# Tokenizers under test


@pytest.fixture(scope="module")
def tok512_data() -> TokenizerData:
    return load_llama2c_tokenizer(model_path("tok512.bin"))


def _hf_data(name: str) -> TokenizerData:
    directory = model_path(name)
    return load_hf_tokenizer(directory, json.loads((directory / "config.json").read_text()))


def tied_llama2c() -> tuple[list[bytes], list[float], TokenizerData]:
    """A small sentencepiece-style vocabulary whose merges tie on score, so the
    leftmost-on-ties rule decides: (run.c vocabulary, scores, TokenizerData)."""
    names = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    pieces = [(b" ", 0.0), (b"a", 0.0), (b"b", 0.0), (b"\xc3\xa9", 0.0), (b"aa", -1.0), (b"ab", -1.0),
              (b"ba", -1.0), (b" a", -1.0), (b"aab", -2.0), (b"aba", -2.0), (b"bab", -2.0),
              (b" ab", -3.0), (b"abab", -3.0), (b"\xc3\xa9a", -1.0)]
    vocab = names + [p for p, _ in pieces]
    scores = [0.0] * len(names) + [score for _, score in pieces]
    tokens = [n if i < 3 else bytes([i - 3]) if i < 259 else n for i, n in enumerate(vocab)]
    data = TokenizerData(kind="llama2c", tokens=tokens, scores=scores, bos_id=1, eos_id=2,
                         special={0, 1, 2}, names=[n.decode("latin-1") for n in vocab])
    return vocab, scores, data


def tied_strings() -> list[str]:
    rng = random.Random(7)
    return ["".join(rng.choice("ab é") for _ in range(rng.randint(0, 14))) for _ in range(300)]


@pytest.fixture(scope="module")
def sections(tok512_data: TokenizerData) -> dict[str, bytes]:
    out = {"tok512": pack_tokenizer(tok512_data), "tied": pack_tokenizer(tied_llama2c()[2])}
    for name in HF_MODELS:
        out[name] = pack_tokenizer(_hf_data(name))
    return out


@pytest.fixture(scope="module")
def strings() -> list[str]:
    return all_strings()


# ---------------------------------------------------------------------------
# llama2.c's encode (run.c), transcribed literally: the oracle for kind llama2c


def read_llama2c_vocab(path: Path) -> tuple[list[bytes], list[float]]:
    data = path.read_bytes()
    vocab, scores, offset = [], [], 4
    while offset < len(data):
        score, length = struct.unpack_from("<fi", data, offset)
        vocab.append(data[offset + 8 : offset + 8 + length])
        scores.append(score)
        offset += 8 + length
    return vocab, scores


def llama2c_encode(vocab: list[bytes], scores: list[float], text: bytes, bos: bool) -> list[int]:
    lookup: dict[bytes, int] = {}
    for i, piece in enumerate(vocab):
        lookup.setdefault(piece, i)
    tokens = [1] if bos else []
    if text:
        tokens.append(lookup[b" "])  # add_dummy_prefix
    buffer = b""
    for i, c in enumerate(text):
        if c & 0xC0 != 0x80:
            buffer = b""  # a new code point starts
        buffer += bytes([c])
        following = text[i + 1] if i + 1 < len(text) else 0
        if following & 0xC0 == 0x80 and len(buffer) < 4:
            continue
        if buffer in lookup:
            tokens.append(lookup[buffer])
        else:
            tokens.extend(b + 3 for b in buffer)  # byte fallback: <0x00> is token 3
        buffer = b""
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            found = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
            if found != -1 and scores[found] > best_score:
                best_score, best_id, best_idx = scores[found], found, i
        if best_idx == -1:
            break
        tokens[best_idx] = best_id
        del tokens[best_idx + 1]
    return tokens


# ---------------------------------------------------------------------------
# Python tokenizer against the references


def test_section_layout(sections: dict[str, bytes]) -> None:
    for name, section in sections.items():
        assert len(section) % 4 == 0, name
        assert section[:4] == b"TOKN", name
        offsets = struct.unpack_from("<21I", section)[8:]
        array_offsets = [o for i, o in enumerate(offsets) if i not in (5, 7, 9, 11)]  # not counts
        assert all(o % 4 == 0 and HEADER_BYTES <= o <= len(section) for o in array_offsets), name
    assert len(sections["tok512"]) < 16 * 1024  # llama2c needs no Unicode class tables
    assert len(sections["mcu-1m-silu"]) < 32 * 1024


def test_llama2c_known_prompt(sections: dict[str, bytes]) -> None:
    tok = Tokenizer.from_section(sections["tok512"])
    ids = tok.encode("Once upon a time", bos=True)
    assert ids[0] == 1 and len(ids) < 8
    assert tok.decode(ids) == b"Once upon a time"  # dummy prefix dropped after BOS
    assert tok.decode(ids[1:]) == b" Once upon a time"


def test_llama2c_matches_run_c(sections: dict[str, bytes]) -> None:
    vocab, scores = read_llama2c_vocab(model_path("tok512.bin"))
    tok = Tokenizer.from_section(sections["tok512"])
    checked = 0
    for s in all_strings(max_heldout_len=120):  # run.c's loop is quadratic
        if "\0" in s:  # run.c reads C strings
            continue
        for bos in (True, False):
            assert tok.encode(s, bos) == llama2c_encode(vocab, scores, s.encode(), bos), repr(s)
        assert tok.decode(tok.encode(s, True)) == s.encode(), repr(s)
        checked += 1
    assert checked > 250


def test_llama2c_equal_scores_merge_leftmost(sections: dict[str, bytes]) -> None:
    vocab, scores, _ = tied_llama2c()
    tok = Tokenizer.from_section(sections["tied"])
    for s in tied_strings():
        assert tok.encode(s, True) == llama2c_encode(vocab, scores, s.encode(), True), repr(s)


@pytest.mark.parametrize("name", HF_MODELS)
def test_bytelevel_matches_hf(name: str, sections: dict[str, bytes], strings: list[str]) -> None:
    reference = tokenizers.Tokenizer.from_file(str(model_path(name) / "tokenizer.json"))
    tok = Tokenizer.from_section(sections[name])
    for s in strings:
        ids = tok.encode(s, bos=False)
        assert ids == reference.encode(s).ids, repr(s)
        assert tok.decode(ids) == s.encode(), repr(s)
        assert tok.encode(s, bos=True) == [tok.bos_id, *ids]
    heldout = (model_path(name) / "heldout.txt").read_text(encoding="utf-8")[:40000]
    assert tok.encode(heldout, bos=False) == reference.encode(heldout).ids


def test_special_token_text_is_plain_text(sections: dict[str, bytes]) -> None:
    """Typed "</s>" is text, not the special token (Hugging Face would give id 1):
    a prompt cannot inject control tokens."""
    tok = Tokenizer.from_section(sections["mcu-1m-silu"])
    ids = tok.encode("a</s>b", bos=False)
    assert 1 not in ids and tok.decode(ids) == b"a</s>b"
    assert tok.decode([0, *ids, 1]) == b"a</s>b"  # specials decode to nothing


def _hf_classes(text_of_probe) -> dict[int, int]:
    """Character class of each code point as the `tokenizers` regex sees it, read off
    the pieces GPT-2's pattern cuts from probe strings."""
    pattern = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated")
    out = {}
    for cp in text_of_probe:
        c = chr(cp)
        first = [p for p, _ in split.pre_tokenize_str("a" + c + "!1")]
        if first[0] == "a" + c:
            out[cp] = LETTER
        elif first[1] == c + "!":
            out[cp] = OTHER
        else:  # number and space both stand alone here; a digit before tells them apart
            second = [p for p, _ in split.pre_tokenize_str("1" + c + "!")]
            out[cp] = NUMBER if second[0] == "1" + c else SPACE
    return out


def test_unicode_classes_match_tokenizers_regex(sections: dict[str, bytes]) -> None:
    """Every code point assigned in Python's Unicode database (a sample of a tenth of
    them above U+3000) is a letter, number, space or other exactly as for Oniguruma."""
    tok = Tokenizer.from_section(sections["mcu-1m-silu"])
    probe = [cp for cp in range(0x110000)
             if (cp < 0x3000 or cp % 10 == 0) and cp != 0x20  # " " joins the probe's "!"
             and unicodedata.category(chr(cp)) not in ("Cn", "Cs")]
    expected = _hf_classes(probe)
    wrong = [hex(cp) for cp in probe if tok.char_class(cp) != expected[cp]]
    assert wrong == []


def test_stream_decoder_equals_python_utf8_replace(sections: dict[str, bytes]) -> None:
    """Every chunk is whole UTF-8 characters, and the stream as a whole decodes the
    bytes as Python's "replace" error handler does (chunk boundaries can differ: an
    invalid sequence is replaced as soon as it is known invalid)."""
    tok = Tokenizer.from_section(sections["mcu-1m-silu"])
    rng = random.Random(3)
    for ids in _decode_sequences(tok, rng, 300):
        stream = tok.stream()
        chunks = [stream.decode(token).decode("utf-8") for token in ids]  # strict: whole characters
        chunks.append(stream.flush().decode("utf-8"))
        assert "".join(chunks) == tok.decode(ids).decode("utf-8", "replace"), ids


def _decode_sequences(tok: Tokenizer, rng: random.Random, count: int) -> list[list[int]]:
    """Random token sequences weighted toward byte tokens, which split characters."""
    out = []
    for _ in range(count):
        ids = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.6:
                ids.append(tok.byte_tokens[rng.choice([0x41, 0x20, 0xC3, 0xA9, 0xE2, 0x82, 0xAC,
                                                       0xF0, 0x9F, 0x99, 0x82, 0xED, 0xA0,
                                                       0xFF, 0xC0, 0x80, 0xF4, 0x90])])
            else:
                ids.append(rng.randrange(tok.vocab_size))
        out.append(ids)
    return out


def test_malformed_input_raises(sections: dict[str, bytes]) -> None:
    tok = Tokenizer.from_section(sections["tok512"])
    with pytest.raises(MoteError):
        tok.encode("lone \udc80 surrogate", bos=False)
    with pytest.raises(MoteError):
        tok.decode([tok.vocab_size])
    with pytest.raises(MoteError):
        Tokenizer.from_section(sections["tok512"][:HEADER_BYTES - 1])
    # a byte without a token is marked 0xFFFF, which is a token id in a full vocabulary
    full = [bytes([b]) for b in range(1, 256)] + [b"w%d" % i for i in range(65536 - 255)]
    with pytest.raises(MoteError, match="no token for byte 0x00"):
        pack_tokenizer(TokenizerData(kind="bytelevel", tokens=full, merges=[]))


# ---------------------------------------------------------------------------
# C tokenizer against the Python one


@pytest.fixture(scope="module")
def driver() -> Path:
    return build_tool("tok_driver", sanitize=True)


def run_driver(driver: Path, tmp_path: Path, section: bytes, commands: list[str]) -> list[str]:
    path = tmp_path / "section.bin"
    path.write_bytes(section)
    result = subprocess.run([str(driver), str(path)], input="".join(c + "\n" for c in commands),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def encode_command(text: bytes, bos: bool) -> str:
    return f"E {int(bos)} {text.hex()}"


def c_ids(line: str) -> list[int] | None:
    return None if line == "-1" else [int(x) for x in line.split()]


@pytest.mark.parametrize("name", ["tok512", "tied", *HF_MODELS])
def test_c_encode_matches_python(name: str, sections: dict[str, bytes], strings: list[str],
                                 driver: Path, tmp_path: Path) -> None:
    tok = Tokenizer.from_section(sections[name])
    rng = random.Random(4)
    assigned = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) not in ("Cn", "Cs")]
    # plus strings of random assigned code points, to exercise the class tables
    cases = strings + tied_strings() + ["".join(chr(rng.choice(assigned)) + rng.choice(["", " ", "  "]) for _ in range(60))
                       for _ in range(20)]
    commands = [encode_command(s.encode(), bos) for s in cases for bos in (False, True)]
    lines = run_driver(driver, tmp_path, sections[name], commands)
    assert lines[0] == "open 0"
    got = iter(lines[1:])
    for s in cases:
        for bos in (False, True):
            assert c_ids(next(got)) == tok.encode(s, bos), repr(s)


@pytest.mark.parametrize("name", ["tok512", *HF_MODELS])
def test_c_rejects_invalid_utf8(name: str, sections: dict[str, bytes], driver: Path, tmp_path: Path) -> None:
    invalid = [b"\x80", b"a\xffb", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
               b"abc\xe2\x82", b"\xf0\x9f\x99"]
    valid = [b"\xe2\x82\xac", b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf", b"\x00"]
    lines = run_driver(driver, tmp_path, sections[name], [encode_command(t, True) for t in invalid + valid])
    assert lines[1 : 1 + len(invalid)] == ["-1"] * len(invalid)
    tok = Tokenizer.from_section(sections[name])
    for line, text in zip(lines[1 + len(invalid) :], valid):
        assert c_ids(line) == tok.encode(text.decode("utf-8"), True)


@pytest.mark.parametrize("name", ["tok512", "mcu-1m-silu"])
def test_c_stream_decode_matches_python(name: str, sections: dict[str, bytes], strings: list[str],
                                        driver: Path, tmp_path: Path) -> None:
    tok = Tokenizer.from_section(sections[name])
    sequences = [tok.encode(s, True) for s in strings] + _decode_sequences(tok, random.Random(5), 300)
    lines = run_driver(driver, tmp_path, sections[name], ["D " + " ".join(map(str, ids)) for ids in sequences])
    for line, ids in zip(lines[1:], sequences, strict=True):
        stream = tok.stream()
        expected = [stream.decode(token).hex() for token in ids] + [stream.flush().hex()]
        assert line.split(",") == expected, ids
    for s, ids in zip(strings, sequences):  # whole strings come back exactly
        assert bytes.fromhex("".join(lines[1 + sequences.index(ids)].split(","))) == s.encode()


def _mutations(section: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = [section[:n] for n in (0, 4, HEADER_BYTES - 1, HEADER_BYTES, len(section) // 2, len(section) - 4)]
    for _ in range(count):
        buf = bytearray(section)
        # mostly the header (offsets, counts), sometimes anywhere
        at = rng.randrange(HEADER_BYTES) if rng.random() < 0.7 else rng.randrange(len(buf))
        if rng.random() < 0.5:
            buf[at] = rng.randrange(256)
        else:
            buf[at] ^= 1 << rng.randrange(8)
        out.append(bytes(buf))
    return out


@pytest.mark.parametrize("name", ["tok512", "mcu-1m-silu"])
def test_c_and_python_reject_the_same_sections(name: str, sections: dict[str, bytes],
                                                driver: Path, tmp_path: Path) -> None:
    """Python raises MoteError exactly when mote_tok_open fails; the sanitizers check
    that C reads nothing outside the section, and accepted mutants still encode alike."""
    probe = "Hello there, it's 42 — ünïcode 🙂\n"
    rejected = 0
    for mutant in _mutations(sections[name], random.Random(6), 80):
        try:
            tok = Tokenizer.from_section(mutant)
        except MoteError:
            tok = None
        lines = run_driver(driver, tmp_path, mutant, [encode_command(probe.encode(), True)])
        assert lines[0] == ("open 0" if tok else "open -1")
        if tok is not None:
            assert c_ids(lines[1]) == tok.encode(probe, True)
        else:
            rejected += 1
    assert rejected > 10


# ---------------------------------------------------------------------------
# SmolLM2's vocabulary: digits split off first, bytes without a token


def smollm_reference(vocabulary: TokenizerData) -> tokenizers.Tokenizer:
    """The Hugging Face tokenizer SmolLM2's tokenizer.json describes (Digits with
    individual_digits, then ByteLevel), built from the GGUF's own vocabulary and merges."""
    names = vocabulary.names
    model = tokenizers.models.BPE({name: i for i, name in enumerate(names)},
                                  [(names[a], names[b]) for a, b in vocabulary.merges])
    reference = tokenizers.Tokenizer(model)
    reference.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Digits(individual_digits=True),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return reference


def test_split_digits_bytelevel_matches_tokenizers(smollm_vocabulary: TokenizerData, smollm_section: bytes,
                                                    strings: list[str]) -> None:
    """Texts whose bytes all have tokens (for the others `tokenizers` gives nothing
    alike: llama.cpp drops such a byte, which the llama.cpp golden test checks)."""
    tok = Tokenizer.from_section(smollm_section)
    reference = smollm_reference(smollm_vocabulary)
    checked = 0
    for s in strings + smollm_strings():
        if any(tok.byte_tokens[b] == 0xFFFF for b in s.encode()):
            continue
        ids = tok.encode(s, bos=False)
        assert ids == reference.encode(s).ids, repr(s)
        assert tok.decode(ids) == s.encode(), repr(s)
        checked += 1
    assert checked > 350


def test_bytes_without_a_token_block_merges_and_vanish(smollm_section: bytes) -> None:
    tok = Tokenizer.from_section(smollm_section)
    assert [hex(b) for b in range(256) if tok.byte_tokens[b] == 0xFFFF][:6] == \
        ["0x4", "0x6", "0x13", "0x14", "0x16", "0x1d"]
    bang = tok.encode("!", bos=False)
    assert len(tok.encode("!!", bos=False)) == 1  # "!!" is one token ...
    assert tok.encode("!\x04!", bos=False) == bang + bang  # ... but not across the dropped byte


def test_c_encode_matches_python_split_digits(smollm_section: bytes, strings: list[str], driver: Path,
                                              tmp_path: Path) -> None:
    tok = Tokenizer.from_section(smollm_section)
    cases = strings + smollm_strings()
    lines = run_driver(driver, tmp_path, smollm_section,
                       [encode_command(s.encode(), False) for s in cases])
    assert lines[0] == "open 0"
    for line, s in zip(lines[1:], cases, strict=True):
        assert c_ids(line) == tok.encode(s, False), repr(s)
