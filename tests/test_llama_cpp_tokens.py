"""Mote's tokenizers (Python and the C one, tests/c/tok_driver.c) give llama.cpp's own
token ids: tests/golden/llama_cpp_tokens.json, written by tests/golden/llama_cpp_tokens.py
from llama.cpp's llama-tokenize, on hundreds of strings in SmolLM2's byte-level
vocabulary and in stories260K's sentencepiece one (as GGUF files), and on chat prompts
laid out by SmolLM2's template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gguf_files import write_gguf
from shared_models import model_path
from test_tokenizer import c_ids, encode_command, run_driver

from mote import chat
from mote.chat import Rendered
from mote.importers import load_model
from mote.importers.gguf import load_gguf_vocabulary
from mote.tokenizer import Tokenizer, pack_tokenizer

GOLDEN = Path(__file__).parent / "golden" / "llama_cpp_tokens.json"
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sections(smollm_section, tmp_path_factory) -> dict[str, bytes]:
    model = load_model(model_path("stories260K.bin"), model_path("tok512.bin"))
    gguf = write_gguf(tmp_path_factory.mktemp("gguf") / "stories260K.gguf", model, "F32")
    return {"smollm": smollm_section, "stories260K": pack_tokenizer(load_gguf_vocabulary(gguf)[0])}


@pytest.fixture(scope="module")
def driver():
    from cbuild import build_tool

    return build_tool("tok_driver")


def test_the_golden_file_says_where_it_comes_from(golden):
    assert golden["provenance"]["generator"] == "tests/golden/llama_cpp_tokens.py"
    assert golden["provenance"]["llama.cpp"]
    for name in ("smollm", "stories260K"):
        assert sum(c["vocabulary"] == name for c in golden["cases"]) >= 300


@pytest.mark.parametrize("vocabulary", ["smollm", "stories260K"])
def test_python_and_c_tokenize_as_llama_cpp(vocabulary, golden, sections, driver, tmp_path):
    cases = [c for c in golden["cases"] if c["vocabulary"] == vocabulary]
    tok = Tokenizer.from_section(sections[vocabulary])
    wrong = [c["text"] for c in cases if tok.encode(c["text"], bos=False) != c["ids"]]
    assert wrong == [], f"{len(wrong)} of {len(cases)} differ from llama.cpp, e.g. {wrong[:5]!r}"
    lines = run_driver(driver, tmp_path, sections[vocabulary],
                       [encode_command(c["text"].encode(), False) for c in cases])
    assert lines[0] == "open 0"
    assert [c_ids(line) for line in lines[1:]] == [c["ids"] for c in cases]


def test_a_chat_prompt_is_laid_out_as_llama_cpp_tokenizes_the_rendered_template(golden, smollm_vocabulary,
                                                                               smollm_section):
    """The system turn and the user turn with the assistant's opening, as Mote's
    console lays them out (reference/chat.py), against llama.cpp parsing the rendered
    template's special tokens."""
    # what convert takes from the GGUF's template (tests/test_chat.py checks that)
    template = chat.named("chatml", smollm_vocabulary, SMOLLM_SYSTEM)
    tok = Tokenizer.from_section(smollm_section)

    def ids(rendered: Rendered) -> list[int]:
        return [i for item in rendered.items for i in ([item] if isinstance(item, int) else tok.encode(item, False))]

    for case in golden["chat"]:
        system = template.default_system if case["system"] is None else case["system"]
        head = Rendered().add(template, "begin")
        if system:
            head.add(template, "system", system)
        turn = Rendered().add(template, "user", case["line"]).add(template, "assistant")
        assert ids(head) + ids(turn) == case["ids"], case
