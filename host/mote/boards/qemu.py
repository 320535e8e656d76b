"""Boot an emulated board in QEMU: its flash images loaded, -icount shift=0 (virtual
time counts instructions), semihosting for exits, the UART on a TCP socket (pyserial
`socket://127.0.0.1:PORT`) or a pty, and a monitor socket for reset and memory reads.

    with QemuBoard(load_board("qemu-m7")) as qb:
        port = serial.serial_for_url(qb.url)   # the banner arrives once connected
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mote.boards.catalog import Board
from mote.boards.images import Image, build_firmware, images
from mote.model import MoteError

QEMU = "qemu-system-arm"
START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether a TCP socket listens on 127.0.0.1:port, asked of /proc without connecting
    (QEMU waits for the first connection and that one must be the console's)."""
    needle = f":{port:04X} "
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(needle in line and line.split()[3] == "0A" for line in lines)


class QemuBoard:
    """A running emulated board; a context manager that always stops QEMU."""

    def __init__(self, board: Board, flash: list[Image] | None = None, serial: str = "socket",
                 wait_for_client: bool = True, tcp_port: int | None = None):
        if not board.is_qemu:
            raise MoteError(f"{board.name} is not an emulated board")
        if shutil.which(QEMU) is None:
            raise MoteError(f"{QEMU} not found (apt-get install qemu-system-arm)")
        if serial not in ("socket", "pty"):
            raise MoteError(f"serial must be socket or pty, not {serial!r}")
        self.board = board
        self.flash = flash if flash is not None else images(board)
        self.serial = serial
        self.wait_for_client = wait_for_client
        self.tcp_port = tcp_port  # the UART's TCP port on 127.0.0.1 (default: a free one)
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mote-qemu-")
        self._monitor_path = os.path.join(self._tmp.name, "monitor.sock")

    def command(self) -> list[str]:
        cmd = [QEMU, "-M", self.board.qemu_machine or "", "-display", "none",
               "-icount", "shift=0", "-semihosting-config", "enable=on,target=native",
               "-monitor", f"unix:{self._monitor_path},server=on,wait=off"]
        for image in self.flash:
            cmd += ["-device", f"loader,file={image.path},addr=0x{image.address:X},force-raw=on"]
        if self.serial == "socket":
            self._port = self.tcp_port or _free_port()
            wait = "on" if self.wait_for_client else "off"
            cmd += ["-serial", f"tcp:127.0.0.1:{self._port},server=on,wait={wait}"]
        else:
            cmd += ["-serial", "pty"]
        return cmd

    def start(self) -> "QemuBoard":
        # its own session: a Ctrl-C typed into `mote chat` is for the client (which
        # sends 0x03 to the board), not a SIGINT that would power the board off
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        if self.serial == "pty":
            assert self.process.stdout is not None
            line = self.process.stdout.readline()  # "char device redirected to /dev/pts/N ..."
            found = re.search(r"(/dev/pts/\d+)", line)
            if not found:
                self.stop()
                raise MoteError(f"QEMU did not open a pty: {line.strip()}")
            self.url = found.group(1)
        else:
            while not _listening(self._port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    output = self.process.stdout.read() if self.process.stdout else ""
                    self.stop()
                    raise MoteError(f"QEMU ({self.board.qemu_machine}) did not start: {output.strip()}")
                time.sleep(0.02)
            self.url = f"socket://127.0.0.1:{self._port}"
        return self

    def monitor(self, command: str, timeout: float = 10.0) -> str:
        """Run one QEMU monitor command and return its output."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(self._monitor_path):
            if time.monotonic() > deadline:
                raise MoteError("QEMU monitor socket did not appear")
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self._monitor_path)
            reply = b""
            while not reply.endswith(b"(qemu) "):
                reply += s.recv(4096)
            s.sendall(command.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"(qemu) "):
                reply += s.recv(4096)
        # The monitor echoes the command with line-editing escapes; the output follows
        # the first line break.
        text = reply.decode(errors="replace")[: -len("(qemu) ")]
        return text.split("\r\n", 1)[1] if "\r\n" in text else ""

    def reset(self) -> None:
        """The reset button: the CPU restarts from the vector table, flash contents stay."""
        self.monitor("system_reset")

    def wait(self, timeout: float) -> int:
        """Wait for the firmware to exit through semihosting; returns its exit status."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise MoteError(f"{self.board.name} did not exit within {timeout} s") from None

    def output(self) -> str:
        """What QEMU itself printed (after it exited)."""
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self._tmp.cleanup()

    def __enter__(self) -> "QemuBoard":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def calibrate_clock(board: Board) -> dict:
    """Check the firmware clock against loops of known length: boots
    firmware/ports/cortex-m/calibrate.c, which times loops of 2n+1 instructions with
    hal_ticks for two n. The difference cancels the clock reads' own cost; under
    -icount shift=0 the instructions per tick must be 1e9 / the board's tick rate."""
    elf = build_firmware(board, "calibrate")
    binary = elf.with_suffix(".bin")
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(binary)], check=True)
    import serial

    with QemuBoard(board, flash=[Image(board.flash_base, binary)]) as qb:
        port = serial.serial_for_url(qb.url, timeout=60)
        lines = [port.readline().decode(errors="replace") for _ in range(2)]
        status = qb.wait(60)
        port.close()
    if status != 0:
        raise MoteError(f"{board.name}: calibration image exited with status {status}")
    loops = []
    for line in lines:
        found = re.match(r"calibrate instructions=(\d+) ticks=(\d+)", line)
        if not found:
            raise MoteError(f"{board.name}: unexpected calibration output {line!r}")
        loops.append((int(found.group(1)), int(found.group(2))))
    (i1, t1), (i2, t2) = loops
    per_tick = (i2 - i1) / (t2 - t1)
    expected = 1e9 / board.tick_hz
    return {"loops": loops, "instructions_per_tick": per_tick,
            "expected_instructions_per_tick": expected,
            "agrees": abs(per_tick - expected) <= 1e-3 * expected}


# ---------------------------------------------------------------------------------
# `mote run --board qemu-*` and `mote chat --board qemu-*` (registered in mote.run)


class QemuRunner:
    """An emulated board as a mote.run runner: flash the blob into the board's model
    partition (after checking it fits), boot, and talk to it over its UART."""

    def __init__(self, board_name: str):
        from mote.boards.catalog import load_board

        self.board = load_board(board_name)

    def _flash(self, blob: Path, threads: int, ctx: int | None) -> None:
        from mote.boards.images import flash_model

        if threads != 1:
            raise MoteError(f"{self.board.name} has one core: --threads must be 1")
        if ctx is not None:
            raise MoteError(f"{self.board.name} runs the context the blob was packed for "
                            "(mote convert --ctx N --board ...)")
        if not Path(blob).is_file():
            raise MoteError(f"{blob}: no such file")
        build_firmware(self.board)
        flash_model(self.board, Path(blob).read_bytes())

    @contextlib.contextmanager
    def console(self, blob: Path, threads: int = 1, ctx: int | None = None):
        from mote.console.client import MoteConsole

        self._flash(blob, threads, ctx)
        with QemuBoard(self.board) as qb:
            client = MoteConsole(qb.url)
            try:
                yield client
            finally:
                client.close()

    def generate(self, blob: Path, options, out):
        """One prompt (options: mote.run.GenerateOptions); the text streams to `out`."""
        from mote.console.client import decimal_text

        with self.console(blob, options.threads, options.ctx) as client:
            client.read_banner(boot_wait=START_TIMEOUT_S)
            for name, value in (("temp", decimal_text(options.temperature)),
                                ("topp", decimal_text(options.top_p)), ("topk", options.top_k),
                                ("seed", options.seed), ("n", options.n)):
                client.set(name, value)
            if options.system is not None:  # a chat model: the conversation's system prompt
                reply = client.command(f"/system {options.system}" if options.system else "/system")
                if not reply[-1].startswith("ok "):
                    raise MoteError(f"/system: {reply[-1]}")

            def write(text: str) -> None:
                out.write(text.encode())
                out.flush()

            _, stats = client.ask(options.prompt, on_text=write, ctrl_c_interrupts=True)
            return stats


def runners() -> dict:
    """A runner factory for every emulated board file, for mote.boards.runners.RUNNERS."""
    from functools import partial

    from mote.boards.catalog import all_boards

    return {b.name: partial(QemuRunner, b.name) for b in all_boards() if b.is_qemu}


def emulated_speed(board: Board, stats) -> str:
    """What a QEMU board's stats mean: under -icount shift=0 its clock counts virtual
    time, one nanosecond per instruction, so the figures are instruction counts; a
    real part's tok/s follows from its clock, as an estimate (one instruction a cycle)."""
    if not stats.tokens or not stats.ticks_hz:
        return f"{board.name}: QEMU virtual time (1 ns per instruction)"
    per_token = stats.decode_ticks * 1e9 / stats.ticks_hz / stats.tokens
    return (f"{board.name} under QEMU: times are virtual (1 ns per instruction): "
            f"{per_token:,.0f} instructions per token, about {board.clock_hz / per_token:,.0f} tok/s "
            f"on a {board.clock_hz / 1e6:g} MHz {board.core} (estimate)")

