"""MoteConsole against boards that misbehave: a fake board on 127.0.0.1 (opened as
socket://) that streams for ever, sends megabytes without a line break, goes silent
mid-reply, drips bytes, or sends terminal escape sequences. Each ends in bounded time
with one clear MoteError, or with harmless output; no test measures speed."""

from __future__ import annotations

import builtins
import io
import socket
import threading
import time
from collections.abc import Callable

import pytest

import mote.boards.runners as runners
from mote.boards.runners import GenerateOptions, run_prompt
from mote.console.client import MoteConsole, Stats, TerminalBytes, chat, printable
from mote.model import MoteError

STATS = (b"\r\n[stats] tokens=3 prompt=2 prefill_ms=0 ms=1 tok_s=3.0 decode_ticks=1 "
         b"ticks_hz=1000 read_bytes_per_token=1 end=length\r\n> ")
BOUND_S = 60  # generous for a loaded 2-core machine: the point is ending, not speed


class FakeBoard:
    """One connection's worth of a board: it sends a banner, answers `/echo off`,
    `/info` and `/n N` as the protocol says, and hands every other line to `answer`
    (the connection, the line, and an event set when the test is over)."""

    def __init__(self, answer: Callable[[socket.socket, bytes, threading.Event], None],
                 banner: bytes = b"mote 0.0 board=fake model=m\r\n> ",
                 info: bytes = b"mote 0.0 board=fake model=m\r\nsampler n=256 echo=off\r\n> "):
        self.answer, self.banner, self.info = answer, banner, info
        self.done = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            try:
                conn.sendall(self.banner)
                pending = b""
                while not self.done.is_set():
                    data = conn.recv(4096)
                    if not data:
                        return
                    pending += data.replace(b"\x03", b"")
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if line == b"/echo off":
                            conn.sendall(b"ok echo=off\r\n> ")
                        elif line == b"/info":
                            conn.sendall(self.info)
                        elif line.startswith(b"/n "):
                            conn.sendall(b"ok n=" + line[3:] + b"\r\n> ")
                        else:
                            self.answer(conn, line, self.done)
            except OSError:
                return  # the client hung up: the test is over

    def close(self) -> None:
        self.done.set()
        self.server.close()
        self.thread.join(10)


@pytest.fixture
def fake_board():
    boards: list[FakeBoard] = []

    def start(answer, **kwargs) -> FakeBoard:
        boards.append(FakeBoard(answer, **kwargs))
        return boards[-1]

    yield start
    for board in boards:
        board.close()


def stream_for_ever(piece: bytes) -> Callable:
    def answer(conn: socket.socket, line: bytes, done: threading.Event) -> None:
        while not done.is_set():
            conn.sendall(piece)
    return answer


def connect(board: FakeBoard, **kwargs) -> MoteConsole:
    console = MoteConsole(board.url, **kwargs)
    console.read_banner()
    return console


def test_a_generation_streaming_for_ever_ends_at_its_byte_bound(fake_board):
    board = fake_board(stream_for_ever(b"Once upon a time\r\n"))
    start = time.monotonic()
    with connect(board) as console:
        console.set("n", 16)
        assert console.n == 16
        # 16 tokens of 256 bytes at most, a prompt line and 4096 bytes of slack
        with pytest.raises(MoteError, match=r"no stats line after 8,195 bytes"):
            console.ask("Hi")
    assert time.monotonic() - start < BOUND_S


def test_megabytes_without_a_line_break_end_a_command_and_a_prompt(fake_board):
    board = fake_board(stream_for_ever(b"x" * 65536))
    start = time.monotonic()
    with connect(board) as console:
        with pytest.raises(MoteError, match=r"no prompt ending the reply after 1,048,576 bytes"):
            console.command("/help")
    with connect(fake_board(stream_for_ever(b"x" * 65536)), max_reply_bytes=10_000) as console:
        with pytest.raises(MoteError, match=r"no prompt ending the reply after 10,000 bytes"):
            console.command("/help")
    with connect(fake_board(stream_for_ever(b"x" * 65536)), bytes_per_token=1000) as console:
        # the board's default n=256 is assumed: 256 * 1000 + 3 + 4096 bytes
        with pytest.raises(MoteError, match=r"no stats line after 260,099 bytes"):
            console.ask("Hi")
    assert time.monotonic() - start < BOUND_S


def test_silence_mid_reply_ends_in_one_error(fake_board):
    def answer(conn, line, done):
        conn.sendall(b"Once upon")
        done.wait()

    start = time.monotonic()
    with connect(fake_board(answer), timeout=1.0) as console:
        with pytest.raises(MoteError, match=r"silent for 1 s waiting for stats line"):
            console.ask("Hi")
    assert time.monotonic() - start < BOUND_S


def test_a_drip_that_never_ends_a_reply_meets_the_overall_bound(fake_board):
    def drip(conn, line, done):
        while not done.wait(0.05):  # never silent for long, never done
            conn.sendall(b"a")

    start = time.monotonic()
    with connect(fake_board(drip), timeout=1.0, seconds_per_token=0.01) as console:
        console.set("n", 4)
        with pytest.raises(MoteError, match=r"no stats line within 1 s, though the peer kept"):
            console.ask("Hi")
    with connect(fake_board(drip), timeout=1.0) as console:
        with pytest.raises(MoteError, match=r"no prompt ending the reply within 1 s"):
            console.command("/help")
    assert time.monotonic() - start < BOUND_S


def test_a_long_reply_is_read_in_chunks(fake_board):
    """A megabyte of text with its stats line comes through whole (reading it a byte
    at a time and searching the whole buffer after each took minutes)."""
    text = (b"x" * 98 + b"\r\n") * 10_000

    def answer(conn, line, done):
        conn.sendall(text + STATS)

    start = time.monotonic()
    with connect(fake_board(answer)) as console:
        console.set("n", 8192)
        pieces: list[str] = []
        got, stats = console.ask("Hi", on_text=pieces.append)
    assert got == text.decode().replace("\r\n", "\n") == "".join(pieces)
    assert stats.tokens == 3 and stats.end == "length"
    assert time.monotonic() - start < BOUND_S


ESCAPES = ("\x1b]0;pwned\x07"  # OSC: the window title
           "\x1b[2J\x1b[H"  # clear the screen, cursor home
           "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write the clipboard
           "\x9b31m"  # C1 CSI, as UTF-8
           "a\rb\x08\x7f\tc\n")


def no_controls(text: str) -> bool:
    return all(c in "\n\t" or not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) for c in text)


def test_printable_shows_controls_and_keeps_text():
    assert printable("é € \t\n") == "é € \t\n"
    # a right-to-left override would show "abc\u202edcba" reversed: shown, not obeyed
    assert printable("abc\u202edcba\u2066x\u2069") == "abc\\u202edcba\\u2066x\\u2069"
    assert printable("שלום") == "שלום"  # right-to-left text itself is text
    shown = printable(ESCAPES)
    assert no_controls(shown)
    assert shown == ("^[]0;pwned^G^[[2J^[[H^[]52;c;cm0gLXJmIH4=^G\\x9b31ma^Mb^H^?\tc\n")


def test_ask_keeps_escapes_and_chat_shows_them_harmlessly(fake_board, monkeypatch, tmp_path):
    def answer(conn, line, done):
        if line == b"/help":
            conn.sendall(b"\x1b]52;c;cm0gLXJmIH4=\x07help\r\n> ")
        else:
            conn.sendall(ESCAPES.replace("\n", "\r\n").encode() + STATS)

    board = fake_board(answer, banner=b"mote 0.0 board=\x1b]0;pwned\x07 model=m\r\n> ",
                       info=b"mote 0.0 board=fake\r\nerror: \x1b[2Jbad\r\n> ")
    with connect(board) as console:
        assert console.ask("Hi")[0] == ESCAPES  # the library gets the exact text
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    lines = iter(["/help", "Hi"])

    def typed(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", typed)
    out = io.StringIO()
    with MoteConsole(fake_board(answer, banner=board.banner, info=board.info).url) as console:
        assert chat(console, color=False, out=out) == 0
    shown = out.getvalue()
    assert no_controls(shown)
    assert "board=^[]0;pwned^G" in shown and "board: ^[[2Jbad" in shown
    assert "^[]52;c;cm0gLXJmIH4=^Ghelp\n" in shown and printable(ESCAPES) in shown


def test_mote_run_output_shows_escapes_harmlessly(monkeypatch):
    class Runner:
        def generate(self, blob, options, out):
            for piece in (b"ok \xe2\x82", b"\xac \x1b]0;t\x07\x1b[2J\xc2", b"\x9b\xff."):
                out.write(piece)  # split inside UTF-8 characters, as a stream may be
            return Stats.parse(STATS.decode().split("\r\n")[1])

    monkeypatch.setitem(runners.RUNNERS, "fake", Runner)
    out = io.BytesIO()
    assert run_prompt(None, "fake", GenerateOptions("Hi"), out).tokens == 3
    assert out.getvalue() == "Hiok € ^[]0;t^G^[[2J\\x9b\\xff.\n".encode()


def test_terminal_bytes_passes_text_through():
    out = io.BytesIO()
    stream = TerminalBytes(out)
    for byte in "Once upon a time, é €\n".encode():
        stream.write(bytes([byte]))
    assert out.getvalue() == "Once upon a time, é €\n".encode()
