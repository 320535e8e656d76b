"""A conversation on the board: the chat template in the blob, turns appended in the KV
cache, the oldest exchanges dropped when the context fills, /reset and /system; every
reply equal to the numpy reference's (mote.reference.chat) for the same conversation.

The model is stories260K (fits every emulated board) packed with the Llama-2 template at
a context of 128, so that a few turns fill it: a story model, not a chat-trained one,
so the replies are stories; what is tested is that the board holds the conversation
exactly as the reference does."""

from __future__ import annotations

import pytest

from shared_models import model_path

from mote.format import blob as blobfile
from mote.pipeline import ConvertOptions, convert
from mote.reference.chat import Conversation
from mote.reference.sample import Sampler

pytestmark = pytest.mark.hil

LINES = ["Once upon a time", "Tell me about a dog", "What happened next?", "Lily and Tom went to the park",
         "Why?", "The end"]
SETTINGS = (("temp", 0.9), ("topp", 0.9), ("seed", 5), ("n", 20))


@pytest.fixture(scope="module")
def chat_blob(board) -> bytes:
    options = ConvertOptions(tokenizer=model_path("tok512.bin"), quant="int8", ctx=128,
                             chat_template="llama2", system_prompt="You tell short stories.")
    return convert(model_path("stories260K.bin"), options, board).data


def settle(console) -> Sampler:
    for name, value in SETTINGS:
        console.set(name, value)
    return Sampler(0.9, 0.9, 0, 5)


def test_a_conversation_equals_the_reference(boot_other, chat_blob):
    _, console = boot_other(chat_blob)
    console.read_banner(boot_wait=60)
    assert console.info()["chat"] == "llama2"
    reference = Conversation(blobfile.load(chat_blob))
    sampler = settle(console)
    dropped = 0
    for i, line in enumerate(LINES):
        if i == 4:
            assert console.command("/reset")[0].startswith("ok ")
            reference.reset()
            sampler = settle(console)
        text, stats = console.ask(line)
        want = reference.turn(line, 20, sampler)
        assert (text, stats.tokens, stats.end) == (want.text, len(want.tokens), want.end), line
        assert (stats.prompt, stats.ctx_used, stats.dropped) == (want.prompt_tokens, want.ctx_used, want.dropped)
        dropped += want.dropped
    assert dropped > 0  # the context filled and the oldest exchanges went, as in the reference
    assert console.command("/system You are a cat.")[0].startswith("ok new conversation")
    reference.start("You are a cat.")
    sampler = settle(console)
    text, _ = console.ask("Hello")
    assert text == reference.turn("Hello", 20, sampler).text
