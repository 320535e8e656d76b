"""Run a .mote blob on a board: one prompt (`mote run`) or a console (`mote chat`).

A board kind maps to a runner in RUNNERS. `linux` runs the Linux port
(firmware/build/linux/mote-linux, kept up to date by make) as a process:
one-shot with its stdout streamed, or speaking the serial protocol on a pty whose other
side a MoteConsole holds. Emulated boards plug in here the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from mote.console.client import MoteConsole, Stats, TerminalBytes, decimal_text
from mote.model import MoteError
from mote.boards.catalog import ROOT
from mote.boards.qemu import runners as qemu_runners
from mote.reference.forward import EMPTY_PROMPT

FIRMWARE_DIR = ROOT / "firmware"
LINUX_BINARY = FIRMWARE_DIR / "build" / "linux" / "mote-linux"
STOP_TIMEOUT_S = 5.0


@dataclass
class GenerateOptions:
    prompt: str
    n: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    threads: int = 1
    ctx: int | None = None  # positions; None = the blob's ctx_len
    system: str | None = None  # chat models: the system prompt ("" none); None = the blob's


class Runner(Protocol):
    def generate(self, blob: Path, options: GenerateOptions, out: BinaryIO) -> Stats:
        """Run one prompt, writing the generated text to `out` as it comes."""

    def console(self, blob: Path, threads: int = 1,
                ctx: int | None = None) -> AbstractContextManager[MoteConsole]:
        """A context manager: the board running `blob`, and a client connected to it
        before it booted (so its banner is there to read)."""


# ---------------------------------------------------------------------------------
# The Linux port


def linux_binary() -> Path:
    """mote-linux, brought up to date by `make -C firmware linux` (make alone knows
    what it is built from)."""
    if not (FIRMWARE_DIR / "Makefile").exists():
        raise MoteError(f"no firmware sources at {FIRMWARE_DIR} (run from a Mote checkout)")
    result = subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR), "linux", f"PYTHON={sys.executable}"],
                            capture_output=True, text=True)
    if result.returncode != 0 or not LINUX_BINARY.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise MoteError(f"building {LINUX_BINARY.name} failed:\n{tail}")
    return LINUX_BINARY


def _check_blob(blob: Path) -> Path:
    if not Path(blob).is_file():
        raise MoteError(f"{blob}: no such file")
    return Path(blob)


def _common_args(threads: int, ctx: int | None) -> list[str]:
    args = ["--threads", str(threads)]
    return args + ["--ctx", str(ctx)] if ctx is not None else args


class LinuxRunner:
    """The Linux port as a local process."""

    def generate(self, blob: Path, options: GenerateOptions, out: BinaryIO) -> Stats:
        cmd = [str(linux_binary()), str(_check_blob(blob)), "--prompt", options.prompt,
               "-n", str(options.n), "--temp", decimal_text(options.temperature),
               "--topp", decimal_text(options.top_p), "--topk", str(options.top_k),
               "--seed", str(options.seed), *_common_args(options.threads, options.ctx)]
        if options.system is not None:
            cmd += ["--system", options.system]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        while True:
            try:
                chunk = os.read(proc.stdout.fileno(), 4096)
            except KeyboardInterrupt:
                # mote-linux reads SIGINT as Ctrl-C: it stops and still prints its stats
                proc.send_signal(signal.SIGINT)
                continue
            if not chunk:
                break
            out.write(chunk)
            out.flush()
        errors = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
        if proc.wait() != 0 or not errors or not errors[-1].startswith("[stats] "):
            raise MoteError(errors[-1] if errors else f"mote-linux exited with {proc.returncode}")
        return Stats.parse(errors[-1])

    @contextmanager
    def console(self, blob: Path, threads: int = 1, ctx: int | None = None) -> Iterator[MoteConsole]:
        # The pty's master goes to mote-linux (--tty-fd); the client opens the slave as
        # any serial device, before mote-linux starts, since opening flushes input.
        binary, blob = linux_binary(), _check_blob(blob)
        master, slave = os.openpty()
        try:
            client = MoteConsole(os.ttyname(slave))
        finally:
            os.close(slave)
        try:
            proc = subprocess.Popen(
                [str(binary), str(blob), "--tty-fd", str(master), *_common_args(threads, ctx)],
                pass_fds=[master], stdin=subprocess.DEVNULL,
                # its own session: a Ctrl-C typed into `mote chat` is for the client
                # (which sends 0x03), not a SIGINT that would end the board
                start_new_session=True)
        except OSError:
            client.close()
            raise
        finally:
            os.close(master)
        try:
            yield client
        finally:
            client.close()
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


RUNNERS: dict[str, Callable[[], Runner]] = {"linux": LinuxRunner}
RUNNERS.update(qemu_runners())  # emulated boards: boards/qemu-*.toml (mote.qemu)


def runner_for(board: str) -> Runner:
    try:
        return RUNNERS[board]()
    except KeyError:
        raise MoteError(f"no runner for board {board!r}; known: {', '.join(sorted(RUNNERS))}") from None


def run_prompt(blob: Path, board: str, options: GenerateOptions, out: BinaryIO | None = None) -> Stats:
    """`mote run`: the prompt, then the generated text as it streams, then a newline.
    An empty prompt is refused before any board starts, in the firmware's words.
    Control characters in the text are shown, not obeyed (TerminalBytes)."""
    if not options.prompt:
        raise MoteError(EMPTY_PROMPT)
    out = _AfterPrompt(TerminalBytes(sys.stdout.buffer if out is None else out), options.prompt)
    stats = runner_for(board).generate(blob, options, out)
    out.write(b"\n")
    out.flush()
    return stats


class _AfterPrompt:
    """A stream that writes the prompt before its first bytes, so a run that fails
    before generating prints nothing on stdout."""

    def __init__(self, out: BinaryIO, prompt: str):
        self.out, self.prompt = out, prompt.encode()

    def write(self, data: bytes) -> None:
        if self.prompt:
            self.out.write(self.prompt)
            self.prompt = b""
        self.out.write(data)

    def flush(self) -> None:
        self.out.flush()
