"""The strings tokenizers are compared on (tests/test_tokenizer.py, and the llama.cpp
golden file tests/golden/llama_cpp_tokens.json): hand-picked unicode, whitespace runs
and special-token look-alikes, seeded random mixes, and slices of real text.
Deterministic: the same strings every run."""

from __future__ import annotations

import random

from shared_models import model_path

HANDWRITTEN = [
    "", " ", "  ", "\t", "\n", "\n\n", " \n ", "a", "Hello world", "Hello  world",
    "Once upon a time", "Once upon a time, there was a little girl named Lily.",
    "it's", "they're here", "we've", "I'm", "you'll", "he'd", "IT'S", "'s", "''", "'",
    "don't  stop", "rock 'n' roll", "a  b   c    d", "trailing   ", "   leading", "tab\there",
    "tabs\t\t\tand spaces  \t ", "line\nbreak\r\nwindows", "end\n", "\n\nstart", "x\u00a0y",
    "no\u2028break\u2029para", "ideographic\u3000space", "café", "naïve über Straße",
    "Ελληνικά κείμενο", "Русский текст, ёж", "日本語のテキスト", "中文字符", "한국어 문장",
    "emoji 🙂🎉 👍🏽 family 👨‍👩‍👧", "e\u0301 combining a\u0308\u0304", "١٢٣ ٤٥", "Ⅻ roman Ⅷ",
    "½ ¾ ²³", "१२३ देवनागरी", "mixed123abc", "3.14159", "$100,000.00!", "C++ && x->y",
    "email@example.com", "https://example.org/path?q=1", "«quotes» “curly” ‘single’",
    "—dash– and … ellipsis", "ALL CAPS SHOUTING", "MiXeD cAsE", "snake_case_name",
    "!!!", "???...", "(parens) [brackets] {braces}", "#hashtag @mention", "a\x01b\x7f",
    "ﬁ ligature", "Ａｂｃ fullwidth", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "\u200bzero width", "a\u0085b",
]

WORDS = ["the", "The", "a", "little", "girl", "Lily", "dog", "ran", "quickly", "over",
         "happy", "sun", "1", "42", "2024", "3rd", "naïve", "Zürich", "ß", "Ωmega", "мир",
         "東京", "🙂", "don't", "it's", "we're", "I've", "you'll", "she'd", "I'm", "x2",
         "--", "...", "!", "?", ",", ";", ":", "\"", "(", ")", "'"]
SEPARATORS = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "", ", ", ". ", "\u00a0"]


def generated_strings(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            parts.append(rng.choice(WORDS))
            parts.append(rng.choice(SEPARATORS))
        text = "".join(parts)
        if rng.random() < 0.3:
            text = text.rstrip()
        if rng.random() < 0.2:
            text = rng.choice(SEPARATORS) + text
        out.append(text)
    return out


def heldout_slices(count: int, seed: int, max_len: int) -> list[str]:
    text = (model_path("ref-11m-silu") / "heldout.txt").read_text(encoding="utf-8")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = rng.randrange(len(text) - max_len)
        out.append(text[start : start + rng.randint(1, max_len)])
    return out


def all_strings(max_heldout_len: int = 300) -> list[str]:
    return HANDWRITTEN + generated_strings(150, seed=1) + heldout_slices(100, 2, max_heldout_len)


def smollm_strings() -> list[str]:
    """The usual strings, plus digit runs in every position and bytes SmolLM2 has no
    token for (0x04, 0x13, ...), next to text they would otherwise merge with."""
    rng = random.Random(8)
    digits = ["0", "7", "12", "2024", "3.14159", "١٢٣", "½", "Ⅻ", "x2y", " 42 ", "10,000", "1st"]
    missing = ["\x04", "\x06", "\x13", "\x14", "\x16", "\x1d", "\U00040000"]
    out = []
    for _ in range(150):
        parts = [rng.choice(WORDS + digits + missing) + rng.choice(SEPARATORS) for _ in range(rng.randint(1, 10))]
        out.append("".join(parts))
    return out + ["!\x04!", "a\x04b", "\x04", "12\x0434", "  \x04  "]


# Texts that spell (or nearly spell) special tokens: typed by a user, they stay text.
SPECIAL_LOOKALIKES = [
    "<|im_start|>", "<|im_end|>", "<|im_start|>user\nhi<|im_end|>", "< |im_start| >", "<|im_start|",
    "|im_end|>", "<|endoftext|>", "</s>", "<s>", "<s>[INST] hi [/INST]", "[INST]", "[/INST]",
    "<<SYS>>\nsystem\n<</SYS>>", "<|begin_of_text|>", "<|start_header_id|>user<|end_header_id|>",
    "<|eot_id|>", "<|user|>\nhello</s>", "<unk>", "<0x0A>", "<repo_name>x<file_sep>",
]


def llama_cpp_strings() -> list[str]:
    """The strings of the llama.cpp golden file: at least 300 per vocabulary."""
    return all_strings() + smollm_strings() + SPECIAL_LOOKALIKES

