"""`mote chat --board linux` in a real terminal (pexpect): banner, /commands, a prompt
with readable stats, Ctrl-C (stops a generation, never the board), Ctrl-D quits."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from mote.boards.runners import linux_binary

PROMPT = "Once upon a time"


@pytest.fixture
def blob(stories260k_int8_blob) -> Path:
    linux_binary()  # built before the chat waits for its banner
    return stories260k_int8_blob


def test_chat_session(blob, tmp_path):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path), TERM="dumb")
    # Ctrl-C as at a terminal even when the test runs in the background, whose
    # asynchronous commands start with SIGINT ignored (and Python then keeps it so)
    chat = pexpect.spawn(sys.executable, ["-m", "mote.cli", "chat", str(blob), "--board", "linux",
                                          "--no-color"], env=env, timeout=30, encoding="utf-8",
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        chat.expect(r"mote 0\.1\.0 board=linux model=stories260K ")
        chat.expect("> ")
        chat.sendline("/n 6")
        chat.expect("ok n=6")
        chat.expect("> ")
        chat.sendline("/bogus")
        chat.expect("error: unknown command")
        chat.sendline(PROMPT)
        chat.expect(r"6 tokens in \d+ ms, [\d.]+ tok/s \(prompt 5 tokens, \d+ ms\), end: length")
        chat.expect("> ")
        chat.sendintr()  # Ctrl-C at the input prompt: a fresh prompt, nothing quits
        chat.expect("> ")
        chat.sendline("/n 100000")
        chat.expect("ok n=100000")
        # Ctrl-C during a generation stops it (a story takes ~100 ms; a few tries)
        for _ in range(5):
            chat.sendline(PROMPT)
            chat.expect(",")  # the first text
            chat.sendintr()
            index = chat.expect([r"end: stopped", r"end: (eos|context)"])
            chat.expect("> ")
            if index == 0:
                break
        assert index == 0
        chat.sendline("/info")  # the board survived every Ctrl-C
        chat.expect("sampler temp=0.8 topp=0.9 topk=0 seed=0 n=100000 echo=off")
        chat.expect("> ")
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0
    history = (tmp_path / "mote" / "chat_history").read_text()
    assert "/n 6" in history and PROMPT in history


def test_chat_session_with_a_chat_model(stories260k_model, tmp_path):
    """A chat blob: turns labelled, /reset says the conversation is new, the stats
    say how much of the context the conversation holds."""
    from mote import chat
    from mote.format.blob import pack

    blob = tmp_path / "chat.mote"
    blob.write_bytes(pack(stories260k_model, ctx=128,
                          chat=chat.named("llama2", stories260k_model.tokenizer, "You tell stories.")))
    linux_binary()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path), TERM="dumb")
    session = pexpect.spawn(sys.executable, ["-m", "mote.cli", "chat", str(blob), "--board", "linux",
                                             "--no-color"], env=env, timeout=30, encoding="utf-8")
    try:
        session.expect(r"chat=llama2")
        session.expect(r"a conversation \(llama2 template\): each line is your turn")
        session.expect("you> ")
        session.sendline("/n 5")
        session.expect("you> ")
        session.sendline(PROMPT)
        session.expect("model> ")
        session.expect(r"5 tokens in .*; the conversation holds \d+ positions")
        session.expect("you> ")
        session.sendline("/reset")
        session.expect(r"\(a new conversation: the model has forgotten the earlier turns\)")
        session.expect("you> ")
        session.sendeof()
        session.expect(pexpect.EOF)
    finally:
        session.close()
    assert session.exitstatus == 0
