"""Talk to a board over the Mote serial protocol (docs/serial-protocol.md).

`MoteConsole` is the programmatic client (tests, the hardware-in-the-loop suite,
`mote chat`); `chat` is the interactive console on top of it. Every port is opened
with `serial.serial_for_url`, so a device path, a pty, `socket://host:port` (QEMU)
and `loop://` all work the same way.

    with MoteConsole("socket://127.0.0.1:4321") as board:
        print(board.read_banner())
        text, stats = board.ask("Once upon a time")
"""

from __future__ import annotations

import codecs
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import serial

from mote.model import MoteError

PROMPT = b"> "
END_OF_REPLY = b"\r\n> "  # every reply ends with a line break and the prompt
STATS_MARK = b"\r\n[stats] "  # the device always breaks the line before the stats
CTRL_C = b"\x03"
ERROR_REPLY = re.compile(rb"error: ([^\r\n]*)\r\n> ")
ERROR_REPLY_MAX = 4096  # longer than any `error: ...` reply (a line is at most 1024 bytes)
SETTING_N = re.compile(r"(?:^| )n=(\d+)(?: |$)")  # in `ok n=N`, /reset's and /info's lines
READ_CHUNK = 4096
POLL_S = 0.02  # pyserial read timeout: how often a waiting loop looks at the clock
BOOT_WAIT_S = 2.0  # how long read_banner waits for a boot banner before asking /info
# Every wait is bounded, so a peer that streams garbage, never ends a reply or goes
# silent costs seconds and one MoteError, never a hang. Each is a MoteConsole argument.
DEFAULT_TIMEOUT_S = 30.0  # longest silence while a reply is due (slow emulated boards);
# also the longest a reply without generated text (a command's, the banner) may take
SECONDS_PER_TOKEN = 10.0  # a generation may take timeout + this per prompt byte and token
BYTES_PER_TOKEN = 256  # on the wire, a token's text is shorter (each \n sent as \r\n)
REPLY_SLACK_BYTES = 4096  # a generation's reply holds its tokens, the prompt line and this
MAX_REPLY_BYTES = 1 << 20  # the longest reply without generated text
DEFAULT_N = 256  # the protocol's default /n, assumed until a reply shows the board's


# C0 and C1 controls and DEL (not newline and tab), and the bidirectional embedding,
# override and isolate controls, which reorder what the terminal shows
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20 or code == 0x7F:
        return f"^{chr(code ^ 0x40)}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` as it may be written to a terminal: C0 and C1 controls and DEL except
    newline and tab shown (ESC as `^[`, CSI as `\\x9b`) instead of obeyed, so a board
    or a model cannot set the window title, clear the screen or write the clipboard;
    bidirectional controls shown too (U+202E as `\\u202e`), so it cannot make the text
    read in another order than it was sent."""
    return _CONTROL.sub(_picture, text)


class TerminalBytes:
    """A binary stream (UTF-8 text from a board, in any pieces) written through
    `printable`; bytes that are not UTF-8 are shown as `\\xNN`."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")

    def write(self, data: bytes) -> None:
        self.out.write(printable(self.decoder.decode(data)).encode())

    def flush(self) -> None:
        self.out.flush()


@dataclass(frozen=True)
class Stats:
    """The stats line: `[stats] tokens=N prompt=P prefill_ms=A ms=T tok_s=X
    decode_ticks=D ticks_hz=H read_bytes_per_token=B end=E`."""

    tokens: int  # generated (and streamed) tokens
    prompt: int  # prompt tokens, BOS included
    prefill_ms: int
    ms: int  # prefill and generation
    tok_s: float  # tokens / (ms - prefill_ms), measured on the board
    decode_ticks: int  # board clock ticks of the generation (ms - prefill_ms, exact)
    ticks_hz: int  # the board clock's ticks per second
    read_bytes_per_token: int  # weight bytes read per generated token, counted on the board
    end: str  # eos, length, context, stopped or numeric
    ctx_used: int | None = None  # chat models: positions the conversation holds now
    dropped: int | None = None  # chat models: oldest exchanges dropped to make room

    @classmethod
    def parse(cls, line: str) -> Stats:
        fields = dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)
        try:
            chat = {k: int(fields[k]) for k in ("ctx_used", "dropped") if k in fields}
            return cls(int(fields["tokens"]), int(fields["prompt"]), int(fields["prefill_ms"]),
                       int(fields["ms"]), float(fields["tok_s"]), int(fields["decode_ticks"]),
                       int(fields["ticks_hz"]), int(fields["read_bytes_per_token"]), fields["end"], **chat)
        except (KeyError, ValueError) as err:
            raise MoteError(f"malformed stats line {line!r}") from err

    def summary(self) -> str:
        text = (f"{self.tokens} tokens in {self.ms - self.prefill_ms} ms, {self.tok_s:.1f} tok/s "
                f"(prompt {self.prompt} tokens, {self.prefill_ms} ms), end: {self.end}")
        if self.ctx_used is not None:
            text += f"; the conversation holds {self.ctx_used} positions"
            if self.dropped:
                text += f", its {self.dropped} oldest exchange{'s' * (self.dropped > 1)} dropped to make room"
        return text


def decimal_text(x: float) -> str:
    """A float as the protocol's decimals are written (digits and a point, no
    exponent), reading back as the same double: the board's float32 is then
    np.float32(x), as on the host."""
    return np.format_float_positional(float(x), trim="-")


def _held_back(raw: bytes) -> int:
    """Bytes at the end of `raw` that may begin the stats line (so are not text yet)."""
    for k in range(min(len(raw), len(STATS_MARK) - 1), 0, -1):
        if raw.endswith(STATS_MARK[:k]):
            return k
    return 0


def _may_be_error(raw: bytes) -> bool:
    """Whether a prompt's reply could still turn out to be an `error: ...` line (the
    device reports prompt errors before generating anything)."""
    if len(raw) > ERROR_REPLY_MAX or not raw.startswith(b"error: "[: len(raw)]):
        return False
    eol = raw.find(b"\r\n")
    return eol < 0 or END_OF_REPLY.startswith(raw[eol:])


class PortClosed(MoteError):
    """The serial port (or socket, or pty) went away: nothing more can be said to it."""


class MoteConsole:
    """A board (or mote-linux) at the other end of a serial URL."""

    def __init__(self, url: str, baudrate: int = 115200, timeout: float = DEFAULT_TIMEOUT_S,
                 seconds_per_token: float = SECONDS_PER_TOKEN,
                 bytes_per_token: int = BYTES_PER_TOKEN, max_reply_bytes: int = MAX_REPLY_BYTES):
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=POLL_S)
        except (serial.SerialException, ValueError) as err:
            raise MoteError(f"no board on {url}: cannot open it ({err})") from err
        self.url = url
        self.timeout = timeout  # longest silence; and the longest a command's reply takes
        self.seconds_per_token = seconds_per_token
        self.bytes_per_token = bytes_per_token
        self.max_reply_bytes = max_reply_bytes
        self.n = DEFAULT_N  # the board's /n as last seen in a reply: bounds a generation
        self.banner: str | None = None

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> MoteConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bytes ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as err:
            raise PortClosed(f"{self.url}: the port went away ({err})") from None

    def _read_chunk(self) -> bytes:
        """What has arrived, up to READ_CHUNK bytes, waiting at most POLL_S for a first."""
        if isinstance(self.port, serial.Serial):  # a device or pty: in_waiting is exact
            return self.port.read(min(max(self.port.in_waiting, 1), READ_CHUNK))
        # socket:// only tells whether a byte waits (in_waiting is 0 or 1): wait for one,
        # then take the rest without waiting (cheap here; a device would be reconfigured)
        first = self.port.read(1)
        if not first:
            return first
        self.port.timeout = 0
        try:
            return first + self.port.read(READ_CHUNK - 1)
        finally:
            self.port.timeout = POLL_S

    def _read_until(self, done: Callable[[bytearray], bool], buf: bytearray | None = None,
                    on_bytes: Callable[[bytearray], None] | None = None,
                    timeout: float | None = None, until: float | None = None,
                    max_bytes: int | None = None, expect: str = "end of reply") -> bytes:
        """Read into `buf` until done(everything read) holds. `timeout` is the longest
        silence, `until` the time.monotonic() by which done must hold (default: one
        `timeout` from now), `max_bytes` the most `buf` may hold; past any of them the
        wait ends in a MoteError saying that `expect` did not come. done and on_bytes see
        `buf` itself after each chunk, so they should look only at its new end. `buf`
        keeps what was read if a KeyboardInterrupt cuts the wait short."""
        buf = bytearray() if buf is None else buf
        limit = self.timeout if timeout is None else timeout
        start = last = time.monotonic()
        until = start + limit if until is None else until
        max_bytes = self.max_reply_bytes if max_bytes is None else max_bytes
        self.port.timeout = POLL_S  # callers reading the port directly may have changed it
        while not done(buf):
            try:
                chunk = self._read_chunk()
            except (serial.SerialException, OSError) as err:
                raise PortClosed(f"{self.url}: the port went away ({err}); "
                                f"last bytes read: {bytes(buf[-200:])!r}") from None
            now = time.monotonic()
            if chunk:
                buf += chunk
                last = now
                if on_bytes:
                    on_bytes(buf)
                if len(buf) > max_bytes and not done(buf):
                    raise MoteError(f"{self.url}: no {expect} after {max_bytes:,} bytes "
                                    f"(last: {bytes(buf[-80:])!r})")
            elif now - last > limit:
                raise MoteError(f"{self.url}: silent for {limit:.0f} s waiting for {expect} "
                                f"(got {bytes(buf[-200:])!r})")
            if now > until and not done(buf):
                raise MoteError(f"{self.url}: no {expect} within {until - start:.0f} s, though "
                                f"the peer kept sending ({len(buf):,} bytes, last: "
                                f"{bytes(buf[-80:])!r})")
        return bytes(buf)

    def interrupt(self) -> None:
        """Stop a generation (a 0x03 byte); at the prompt it only drops a typed line."""
        self.write(CTRL_C)

    # -- protocol ------------------------------------------------------------------

    def sync(self) -> None:
        """Reach a known state from any: stop a generation, turn the echo off, and read
        everything up to the prompt that follows."""
        self.port.reset_input_buffer()
        self.write(CTRL_C + b"/echo off\n")
        self._read_until(lambda raw: raw.endswith(b"ok echo=off" + END_OF_REPLY),
                         expect="`ok echo=off` and the prompt")

    def read_banner(self, boot_wait: float = BOOT_WAIT_S) -> str:
        """The banner line (`mote VERSION board=... model=...`). A board that booted
        before we connected is asked for it with /info. Leaves the echo off."""
        try:
            raw = self._read_until(lambda r: r.endswith(PROMPT), timeout=boot_wait,
                                   expect="boot banner and prompt")
        except MoteError:
            raw = b""  # booted before we connected, or not at all: ask below
        lines = [ln for ln in raw.decode("utf-8", "replace").split("\r\n") if ln.startswith("mote ")]
        self.sync()
        self.banner = lines[-1] if lines else self.command("/info")[0]
        if not self.banner.startswith("mote "):
            raise MoteError(f"{self.url}: not a Mote console (got {self.banner!r})")
        return self.banner

    def exchange(self, line: bytes) -> list[str]:
        """Send raw bytes ending in a line ending and return the reply's lines (up to
        the prompt). For replies without generated text: commands and errors."""
        self.write(line)
        raw = self._read_until(lambda r: r.endswith(END_OF_REPLY) or r == PROMPT,
                               expect="prompt ending the reply")
        if raw == PROMPT:
            return []  # an empty line
        lines = raw[: -len(END_OF_REPLY)].decode("utf-8", "replace").split("\r\n")
        for line in lines:  # /n, /reset and /info say what now bounds a generation
            setting = SETTING_N.search(line) if line.startswith(("ok ", "sampler ")) else None
            if setting:
                self.n = int(setting.group(1))
        return lines

    def command(self, cmd: str) -> list[str]:
        """Send a /command and return its reply lines (errors included, as `error: ...`)."""
        if not cmd.startswith("/") or "\n" in cmd or "\r" in cmd:
            raise MoteError(f"not a command line: {cmd!r}")
        return self.exchange(cmd.encode() + b"\n")

    def set(self, name: str, value: object) -> None:
        """Apply one setting (/temp, /topp, /topk, /seed, /n); MoteError if refused."""
        text = decimal_text(value) if isinstance(value, float) else str(value)
        reply = self.command(f"/{name} {text}")
        if not reply[-1].startswith("ok "):
            raise MoteError(f"/{name} {text}: {printable(reply[-1])}")

    def info(self) -> dict[str, str]:
        """/info as one dict: the banner's and every line's key=value pairs."""
        out: dict[str, str] = {}
        for line in self.command("/info"):
            if line.startswith("error: "):
                out["error"] = line[len("error: "):]
            for item in line.split()[1:]:
                key, sep, value = item.partition("=")
                if sep:
                    out[key] = value
        return out

    def ask(self, prompt: str, on_text: Callable[[str], None] | None = None,
            ctrl_c_interrupts: bool = False) -> tuple[str, Stats]:
        """Send a prompt and collect the streamed text (on_text sees it as it comes)
        and the stats. The text is exactly what the board sent (control characters too:
        pass it through `printable` before writing it to a terminal). A board error
        becomes MoteError, and so does a reply that outgrows what self.n tokens can
        stream (bytes_per_token each) or takes longer than seconds_per_token per prompt
        byte and token. With ctrl_c_interrupts, a KeyboardInterrupt while waiting stops
        the generation instead of propagating."""
        if not prompt or "\n" in prompt or "\r" in prompt or prompt.startswith("/"):
            raise MoteError(f"a prompt is one line of text not starting with '/': {prompt!r}")
        line = prompt.encode() + b"\n"
        tokens = self.n + len(line)  # a prompt has at most one token per byte (and BOS)
        until = time.monotonic() + self.timeout + tokens * self.seconds_per_token
        max_bytes = REPLY_SLACK_BYTES + len(line) + self.n * self.bytes_per_token
        self.write(line)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        streamed = 0
        mark, searched = -1, 0

        def stats_mark(raw: bytearray) -> int:
            """Where the stats line begins (-1: not yet), searching only new bytes."""
            nonlocal mark, searched
            if mark < 0:
                mark = raw.find(STATS_MARK, max(0, searched - len(STATS_MARK) + 1))
                searched = len(raw)
            return mark

        def stream(raw: bytearray) -> None:
            nonlocal streamed
            if on_text is None or _may_be_error(raw):
                return
            end = stats_mark(raw)
            safe = end if end >= 0 else len(raw) - _held_back(raw)
            if safe > streamed:
                # never splits a \r\n: a trailing \r is always held back
                chunk, streamed = raw[streamed:safe], safe
                on_text(decoder.decode(chunk.replace(b"\r\n", b"\n")))

        def complete(raw: bytearray) -> bool:
            if len(raw) <= ERROR_REPLY_MAX and ERROR_REPLY.fullmatch(raw):
                return True
            at = stats_mark(raw)
            return at >= 0 and raw.endswith(END_OF_REPLY) and len(raw) > at + len(END_OF_REPLY)

        buf = bytearray()
        interrupted = False
        while True:
            try:
                raw = self._read_until(complete, buf, on_bytes=stream, until=until,
                                       max_bytes=max_bytes, expect="stats line")
                break
            except KeyboardInterrupt:
                if not ctrl_c_interrupts or interrupted:
                    raise
                interrupted = True
                self.interrupt()
        error = ERROR_REPLY.fullmatch(raw)
        if error:
            raise MoteError(f"board: {printable(error.group(1).decode('utf-8', 'replace'))}")
        mark = raw.find(STATS_MARK)
        text = raw[:mark].replace(b"\r\n", b"\n").decode("utf-8", "replace")
        if on_text is not None:
            stream(raw)
            on_text(decoder.decode(b"", final=True))
        stats_line = raw[mark + 2: -len(END_OF_REPLY)].decode("utf-8", "replace")
        return text, Stats.parse(stats_line)


# ---------------------------------------------------------------------------------
# Interactive console


class _Style:
    """ANSI colours when writing to a terminal (and NO_COLOR is unset)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def prompt(self, text: str) -> str:
        # \x01 \x02 tell readline the escape codes take no columns
        return f"\x01\x1b[1;32m\x02{text}\x01\x1b[0m\x02" if self.enabled else text


def _history_file() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return state / "mote" / "chat_history"


def chat(board: MoteConsole, color: bool | None = None, out=sys.stdout,
         note: Callable[[Stats], str] | None = None) -> int:
    """Interactive console: a line is a prompt or a /command; Ctrl-C stops a
    generation; Ctrl-D quits. History is kept across sessions. `note`, if given,
    adds a line after each generation's stats (e.g. what an emulated board's times mean).
    What the board sends is shown through `printable`: it cannot drive the terminal."""
    try:
        import readline
    except ImportError:  # not on every platform; the console works without it
        readline = None
    style = _Style(out.isatty() and "NO_COLOR" not in os.environ if color is None else color)
    history = _history_file()
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    out.write(style(printable(board.read_banner()), "1") + "\n")
    info = board.info()
    if "error" in info:
        out.write(style(f"board: {printable(info['error'])}", "31") + "\n")
    template = info.get("chat", "none")
    chatting = template != "none"
    if chatting:
        out.write(style(f"a conversation ({printable(template)} template): each line is your turn, the model "
                        "sees the earlier ones; /reset starts anew, /system TEXT sets the system prompt", "2")
                  + "\n")
    out.write(style("a line is a prompt; /help lists the commands; Ctrl-C stops, Ctrl-D quits", "2")
              + "\n")
    you = "you> " if chatting else "> "
    try:
        while True:
            try:
                line = input(style.prompt(you))
            except KeyboardInterrupt:
                out.write("\n")
                continue
            except EOFError:
                out.write("\n")
                return 0
            if not line.strip():
                continue
            if line.startswith("/"):
                for reply in map(printable, board.command(line)):
                    out.write((style(reply, "31") if reply.startswith("error: ") else reply) + "\n")
                if chatting and line.split()[0] == "/reset":
                    out.write(style("(a new conversation: the model has forgotten the earlier turns)", "2") + "\n")
                continue

            def show(text: str) -> None:
                out.write(printable(text))
                out.flush()

            if chatting:
                out.write(style("model> ", "1;34"))
            try:
                _, stats = board.ask(line, on_text=show, ctrl_c_interrupts=True)
            except PortClosed:
                out.write("\n")  # end the cut-off text; the CLI reports the error, exits 2
                raise
            except MoteError as err:
                out.write(style(str(err), "31") + "\n")
                continue
            out.write("\n" + style(stats.summary(), "2") + "\n")
            if note is not None:
                out.write(style(note(stats), "2") + "\n")
    finally:
        if readline is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history)
