"""The serial protocol (docs/serial-protocol.md) end to end: mote-linux on a real pty,
driven through pyserial by mote.console.MoteConsole, with stories260K at int8."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from mote.format.blob import arena_bytes
from mote.console.client import END_OF_REPLY, MoteConsole
from mote.model import MoteError
from mote.boards.runners import GenerateOptions, LinuxRunner, linux_binary

PROMPT = "Once upon a time"
BANNER = re.compile(
    r"mote 0\.1\.0 board=linux model=stories260K params=(\d+) ctx=(\d+) arena=(\d+) "
    r"quant=q8 group=32 chat=none")


@pytest.fixture
def model(stories260k_model):
    return stories260k_model


@pytest.fixture
def blob(stories260k_int8_blob) -> Path:
    linux_binary()  # built before any test waits for replies
    return stories260k_int8_blob


@pytest.fixture
def board(blob):
    with LinuxRunner().console(blob) as client:
        client.read_banner()
        yield client


def test_boot_banner_then_prompt(blob, model):
    with LinuxRunner().console(blob) as client:
        raw = client.port.read_until(b"> ", 4096)
    lines = raw.decode().split("\r\n")
    assert lines[-1] == "> " and len(lines) == 2, raw
    match = BANNER.fullmatch(lines[0])
    assert match, lines[0]
    params, ctx, arena = map(int, match.groups())
    assert params == model.config.n_params()
    assert ctx == model.config.max_seq_len
    assert arena == arena_bytes(model.config, ctx, 32)


def test_prompt_streams_text_then_stats(board):
    board.set("n", 30)
    chunks: list[str] = []
    text, stats = board.ask(PROMPT, on_text=chunks.append)
    assert "".join(chunks) == text
    assert text.strip() and "\r" not in text
    assert stats.prompt == 5  # BOS and four tokens
    assert stats.tokens == 30 and stats.end == "length" or 0 < stats.tokens < 30 and stats.end == "eos"
    assert stats.ms >= stats.prefill_ms and stats.tok_s > 0
    # the raw clock figures agree with the rounded ones
    assert stats.ticks_hz > 0 and stats.decode_ticks > 0
    assert abs(stats.tok_s - stats.tokens * stats.ticks_hz / stats.decode_ticks) <= 0.0051
    assert abs(stats.ms - stats.prefill_ms - stats.decode_ticks * 1000 / stats.ticks_hz) <= 1


def test_console_and_one_shot_agree(board, blob):
    for temperature, top_p, top_k, seed in ((0.0, 1.0, 0, 0), (0.9, 0.9, 40, 1234)):
        for name, value in (("temp", temperature), ("topp", top_p), ("topk", top_k),
                            ("seed", seed), ("n", 48)):
            board.set(name, value)
        text, stats = board.ask(PROMPT)
        one_shot = _one_shot(blob, GenerateOptions(PROMPT, 48, temperature, top_p, top_k, seed))
        assert text == one_shot


def _one_shot(blob: Path, options: GenerateOptions) -> str:
    import io

    out = io.BytesIO()
    LinuxRunner().generate(blob, options, out)
    return out.getvalue().decode()


def test_settings_commands(board):
    assert board.command("/temp 0.5") == ["ok temp=0.5"]
    assert board.command("/topp 0.95") == ["ok topp=0.95"]
    assert board.command("/topk 40") == ["ok topk=40"]
    assert board.command("/seed 18446744073709551615") == ["ok seed=18446744073709551615"]
    assert board.command("/n 7") == ["ok n=7"]
    assert board.command("/temp   .25  ") == ["ok temp=0.25"]  # spaces around the argument
    info = board.info()
    assert (info["temp"], info["topp"], info["topk"], info["n"]) == ("0.25", "0.95", "40", "7")
    assert info["dim"] == "64" and info["layers"] == "5" and info["vocab"] == "512"
    assert info["echo"] == "off"
    _, stats = board.ask(PROMPT)
    assert stats.tokens <= 7
    assert board.command("/reset") == ["ok temp=0.8 topp=0.9 topk=0 seed=0 n=256 echo=off"]


def test_seed_repeats_a_sampled_generation(board):
    board.set("temp", 1.0)
    board.set("n", 24)
    board.set("seed", 99)
    first, _ = board.ask(PROMPT)
    board.set("seed", 99)
    again, _ = board.ask(PROMPT)
    assert first == again


@pytest.mark.parametrize("line, error", [
    ("/temp", "temp must be a decimal number from 0 to 100"),
    ("/temp -1", "temp must be a decimal number from 0 to 100"),
    ("/temp 1e3", "temp must be a decimal number from 0 to 100"),
    ("/topp 0", "topp must be a decimal number above 0 and at most 1"),
    ("/topp 1.5", "topp must be a decimal number above 0 and at most 1"),
    ("/topk x", "topk must be a whole number (0 = off)"),
    ("/seed 18446744073709551616", "seed must be a whole number below 2^64"),
    ("/n 0", "n must be a whole number from 1"),
    ("/echo loud", "usage: /echo on|off"),
    ("/info now", "usage: /info (no argument)"),
    ("/frobnicate", "unknown command; /help lists the commands"),
    ("/", "unknown command; /help lists the commands"),
])
def test_bad_commands_get_one_error_line(board, line, error):
    assert board.command(line) == [f"error: {error}"]
    assert board.command("/n 3") == ["ok n=3"]  # and the console goes on


def test_help_lists_every_command(board):
    text = "\n".join(board.command("/help"))
    for cmd in ("/temp", "/topp", "/topk", "/seed", "/n", "/echo", "/reset", "/info", "/help"):
        assert cmd in text


def test_ctrl_c_stops_a_generation(board):
    board.set("n", 100000)
    board.set("temp", 0)  # greedy: hundreds of tokens, to its story's end or the context's
    full_text, full = board.ask(PROMPT)
    assert full.end in ("eos", "context") and full.tokens > 100

    # The whole generation takes some 100 ms here; on a loaded machine it may end
    # before the 0x03 arrives, so a few tries are allowed (every one is checked).
    for _ in range(5):
        seen: list[str] = []

        def stop_at_first_text(text: str) -> None:
            if not seen:
                board.interrupt()
            seen.append(text)

        text, stats = board.ask(PROMPT, on_text=stop_at_first_text)
        assert stats.end in ("stopped", full.end)
        if stats.end == "stopped":
            break
    assert stats.end == "stopped" and stats.tokens < full.tokens
    assert full_text.startswith(text)  # the same greedy text, cut short
    # A 0x03 sent with the prompt stops it before the first token.
    board.write(PROMPT.encode() + b"\n\x03")
    raw = board._read_until(lambda r: r.endswith(END_OF_REPLY) and b"[stats]" in r)
    assert raw.startswith(b"\r\n[stats] tokens=0 ") and b"end=stopped" in raw
    assert board.command("/n 2") == ["ok n=2"]


def test_ctrl_c_during_a_generation_drops_the_unfinished_type_ahead_line(board):
    # All in one write, so the bytes are waiting before the first forward pass: "abc"
    # goes to the type-ahead, then 0x03 stops the generation and drops "abc" (once it
    # became the start of a prompt "abc/echo off"); the finished "/n 7" line stays.
    board.write(PROMPT.encode() + b"\n/n 7\nabc\x03/echo off\n")
    raw = board._read_until(lambda r: r.endswith(b"ok echo=off" + END_OF_REPLY))
    assert raw.startswith(b"\r\n[stats] tokens=0 ") and b"end=stopped" in raw
    assert raw.endswith(b"\r\n> ok n=7\r\n> ok echo=off\r\n> "), raw
    assert board.command("/n 2") == ["ok n=2"]


def test_ctrl_c_at_the_prompt_drops_the_typed_line(board):
    board.write(b"/n 9")
    board.interrupt()
    assert board.info()["n"] == "256"


def test_overlong_line_gets_one_error(board):
    assert board.exchange(b"a" * 10_000 + b"\n") == ["error: line longer than 1024 bytes"]
    assert board.exchange(b"a" * 1025 + b"\r\n") == ["error: line longer than 1024 bytes"]
    # exactly MOTE_CONSOLE_LINE_MAX bytes is a line; this one has too many tokens for ctx 512
    reply = board.exchange(b"ab " * 341 + b"a\n")
    assert len(reply) == 1 and re.fullmatch(
        r"error: prompt of \d+ tokens does not fit the context of 512", reply[0]), reply
    _, stats = board.ask(PROMPT)
    assert stats.tokens > 0


@pytest.mark.parametrize("raw, at", [
    (b"\xff\xfe hello", 0),
    (b"ab\xc3(", 2),           # a lead byte without its continuation
    (b"x\xc0\xaf", 1),         # overlong "/"
    (b"\xed\xa0\x80", 0),      # a UTF-16 surrogate
    (b"ok \xf4\x90\x80\x80", 3),  # above U+10FFFF
    (b"caf\xc3", 3),           # cut short by the line end
])
def test_invalid_utf8_gets_one_error(board, raw, at):
    assert board.exchange(raw + b"\n") == [f"error: invalid UTF-8 at byte {at}"]
    text, _ = board.ask("The café")  # valid UTF-8 still works
    assert text


def test_line_endings_cr_lf_crlf_and_type_ahead(board):
    board.write(b"/n 3\r/n 4\r\n/n 5\n")
    raw = board._read_until(lambda r: r.count(END_OF_REPLY) == 3)
    assert raw == b"ok n=3\r\n> ok n=4\r\n> ok n=5\r\n> "
    # a prompt and a command sent together: the command waits for the generation
    board.write(PROMPT.encode() + b"\n/n 6\n")
    raw = board._read_until(lambda r: r.endswith(b"ok n=6" + END_OF_REPLY))
    assert b"[stats] tokens=5 " in raw


def test_echo_for_terminals(board):
    assert board.command("/echo on") == ["ok echo=on"]
    board.write(b"/n 4\x7f5\r")
    raw = board._read_until(lambda r: r.endswith(END_OF_REPLY))
    assert raw == b"/n 4\b \b5\r\nok n=5\r\n> "
    assert board.exchange(b"/echo off\n") == ["/echo off", "ok echo=off"]


def test_reopening_the_port_finds_the_console_still_running(board):
    url = board.url
    board.set("n", 300)
    board.write(PROMPT.encode() + b"\n")  # close in the middle of a generation
    board.close()
    time.sleep(0.3)
    with MoteConsole(url, timeout=10) as again:
        assert BANNER.fullmatch(again.read_banner(boot_wait=0.2))
        text, stats = again.ask(PROMPT)
        assert text and stats.end in ("length", "eos")
        again.close()
    with MoteConsole(url, timeout=10) as third:
        assert third.command("/n 5") == ["ok n=5"]


def test_a_board_without_a_valid_model_keeps_answering(blob, tmp_path):
    broken = tmp_path / "broken.mote"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # last byte of the data: only the CRC notices
    broken.write_bytes(bytes(data))
    with LinuxRunner().console(broken) as client:
        raw = client.port.read_until(b"> ", 4096)
        assert raw.decode().split("\r\n")[:2] == [
            "mote 0.1.0 board=linux model=none", "error: no valid model in flash: CRC mismatch: blob corrupted"]
        client.read_banner(boot_wait=0.1)  # the boot banner was read above
        with pytest.raises(MoteError, match="no valid model in flash"):
            client.ask(PROMPT)
        assert client.info()["error"] == "no valid model in flash: CRC mismatch: blob corrupted"
        assert client.command("/temp 0") == ["ok temp=0"]


def test_a_port_that_disappears_mid_stream_is_a_clear_error():
    """The board end of a socket:// port sends half a reply, then goes away."""
    import socket
    import threading

    from mote.console.client import PortClosed

    server = socket.create_server(("127.0.0.1", 0))

    def board_that_dies() -> None:
        conn, _ = server.accept()
        conn.recv(64)  # the prompt line
        conn.sendall(b", there was a ti")
        conn.close()

    thread = threading.Thread(target=board_that_dies, daemon=True)
    thread.start()
    with MoteConsole(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=10) as client:
        with pytest.raises(PortClosed, match="the port went away") as caught:
            client.ask("Once upon a time")
    assert ", there was a ti" in str(caught.value)
    thread.join(5)
    server.close()


@pytest.mark.parametrize("raw", [
    b"/seed 12\x00 34",   # the argument once ended at the NUL: "ok seed=12"
    b"/reset\x00junk",    # the name once ended there: accepted
    b"/n\x00 5",
    b"Once upon\x00 a time",  # prompts alike
    b"\x00",
])
def test_a_nul_byte_anywhere_in_a_line_is_an_error(board, raw):
    assert board.exchange(raw + b"\n") == ["error: line contains a NUL byte"]
    assert board.info()["seed"] == "0" and board.info()["n"] == "256"  # nothing was applied
    assert board.command("/seed 12") == ["ok seed=12"]  # and the console goes on


def _wide_token_blob(path: Path) -> tuple[Path, object]:
    """A model that always says one token of 256 bytes of 0x80 (the longest token a blob
    may hold, each byte a U+FFFD of 3 bytes): all weights zero but for constant
    embeddings and that token's classifier row, so its logit is the only nonzero one."""
    import dataclasses

    import numpy as np

    from mote.format.blob import pack
    from mote.model import Model, TokenizerData
    from mote.tokenizer import Tokenizer
    from tiny_model import tiny_model, tiny_tokenizer

    base = tiny_tokenizer()
    wide = b"\x80" * 256
    tok = TokenizerData(kind="llama2c", tokens=base.tokens + [wide], scores=base.scores + [-1e9],
                        bos_id=1, eos_id=2, special={0, 1, 2}, names=base.names + ["<wide>"])
    shape = tiny_model(tied=False)
    config = dataclasses.replace(shape.config, vocab_size=len(tok.tokens))
    tensors = {}
    for name, array in shape.tensors.items():
        rows = len(tok.tokens) if name in ("tok_embedding", "classifier") else array.shape[0]
        tensors[name] = np.zeros((rows,) + array.shape[1:], np.float32)
        if name.endswith("norm") or name == "tok_embedding":
            tensors[name][:] = 1.0
    tensors["classifier"][len(tok.tokens) - 1] = 1.0
    path.write_bytes(pack(Model(config=config, tensors=tensors, tokenizer=tok, name="wide")))
    return path, Tokenizer.from_data(tok)


def test_the_longest_token_is_streamed_whole(tmp_path):
    blob, tokenizer = _wide_token_blob(tmp_path / "wide.mote")
    wide = tokenizer.vocab_size - 1
    ref = tokenizer.stream()
    expected = b"".join(ref.decode(t) for t in [wide] * 3) + ref.flush()
    assert expected.decode() == "\ufffd" * 768  # the reference: one U+FFFD per byte
    with LinuxRunner().console(blob) as client:
        client.read_banner()
        client.set("temp", 0)
        client.set("n", 3)
        text, stats = client.ask("a")
    assert stats.tokens == 3 and stats.end == "length"
    assert text == expected.decode()
