"""Hardware-in-the-loop fixtures: one suite for an emulated board booted here
(--board qemu-m7), a real one already flashed with the same model
(--board B --port /dev/ttyACM0), or a board of a labgrid farm (--lg-env FILE: its
place's NetworkSerialPort, the board named by the environment's mote_board option).

    pytest tests/hil --board qemu-m55
    pytest tests/hil --board pico2 --port /dev/ttyACM0 --model build/pico2/model.mote
    LG_COORDINATOR=host:20408 pytest tests/hil --lg-env tests/hil/labgrid/qemu-m4.yaml

Without --board the suite runs on qemu-m4.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared_models import model_path

from mote.format import blob as blobfile
from mote.boards.catalog import Board, load_board
from mote.console.client import MoteConsole
from mote.model import MoteError
from mote.eval.perplexity import adds_bos, stop_ids, tokenizer_of
from mote.boards.images import Image, build_firmware, firmware_image
from mote.boards.qemu import QemuBoard
from mote.pipeline import ConvertOptions, convert
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler



BOOT_TIMEOUT_S = 60
REPLY_TIMEOUT_S = 300  # a slow real part generating a few hundred tokens


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop")
    group.addoption("--board", default=None, help="board file name (default qemu-m4)")
    group.addoption("--port", default=None, help="serial port of a real board (no QEMU)")
    group.addoption("--model", default=None,
                    help="the .mote the real board holds (default: stories260K packed for the board)")


class Reference:
    """The numpy reference run on the same blob the board holds."""

    def __init__(self, data: bytes):
        self.blob = blobfile.load(data)
        self.tok = tokenizer_of(self.blob)
        self.runner = Runner(self.blob)

    def generate(self, prompt: str, n: int, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int = 0) -> tuple[str, int]:
        ids = self.tok.encode(prompt, bos=adds_bos(self.tok))
        out = generate(self.runner, ids, n, Sampler(temperature, top_p, top_k, seed), stop_ids(self.tok))
        stream = self.tok.stream()
        stream.prev = ids[-1]
        text = b"".join(stream.decode(t) for t in out) + stream.flush()
        return text.decode("utf-8", errors="replace"), len(out)


def labgrid_board(config: pytest.Config) -> tuple[str, str] | None:
    """(serial URL, board name) of the labgrid environment's target, when the suite runs
    with --lg-env (labgrid's pytest plugin): its NetworkSerialPort (through a RemotePlace,
    a coordinator and an exporter), raw TCP or RFC2217 as the exporter serves it."""
    env_file = getattr(config.option, "lg_env", None) or os.environ.get("LG_ENV")
    if not env_file:
        return None
    from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY
    from labgrid.resource import NetworkSerialPort

    env = config.stash[LABGRID_ENV_KEY]
    port = env.get_target("main").get_resource(NetworkSerialPort)
    scheme = "rfc2217" if port.protocol == "rfc2217" else "socket"
    return f"{scheme}://{port.host}:{port.port}", env.config.get_target_option("main", "mote_board")


@pytest.fixture(scope="session")
def labgrid_target(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    return labgrid_board(request.config)


@pytest.fixture(scope="session")
def board(request: pytest.FixtureRequest, labgrid_target) -> Board:
    name = request.config.getoption("--board", default=None)
    return load_board(name or (labgrid_target[1] if labgrid_target else "qemu-m4"))


@pytest.fixture(scope="session")
def real_port(request: pytest.FixtureRequest, labgrid_target) -> str | None:
    """The serial port of a board this suite does not start: --port, or labgrid's."""
    return request.config.getoption("--port", default=None) or (labgrid_target[0] if labgrid_target else None)


@pytest.fixture(scope="session")
def model_blob(request: pytest.FixtureRequest, board: Board) -> bytes:
    given = request.config.getoption("--model", default=None)
    if given:
        return Path(given).read_bytes()
    options = ConvertOptions(tokenizer=model_path("tok512.bin"), quant="int8", ctx=256)
    return convert(model_path("stories260K.bin"), options, board).data


@pytest.fixture(scope="session")
def variant_blobs(board: Board) -> dict[str, bytes]:
    """stories260K for `board` as int4, int4a (q4a matrices: the dsp and mve sets' q4a
    matvec, cm's reference one), and as int8 with calibrated sparsity (S = 0.3 at every point, on 300
    tokens of a held-out text)."""
    stories, tokenizer = model_path("stories260K.bin"), model_path("tok512.bin")
    int4 = ConvertOptions(tokenizer=tokenizer, quant="int4", ctx=256)
    int4a = ConvertOptions(tokenizer=tokenizer, quant="int4a", ctx=256)
    sparse = ConvertOptions(tokenizer=tokenizer, quant="int8", ctx=256, sparsity="0.3",
                            calib=model_path("mcu-1m-silu/heldout.txt"), calib_tokens=300)
    return {"int4": convert(stories, int4, board).data, "int4a": convert(stories, int4a, board).data,
            "sparse": convert(stories, sparse, board).data}


@pytest.fixture(scope="session")
def reference_of():
    """The numpy reference of another blob: reference_of(data).generate(...)."""
    return Reference


@pytest.fixture(scope="session")
def reference(model_blob: bytes) -> Reference:
    return Reference(model_blob)


@pytest.fixture(scope="session")
def firmware(board: Board, real_port: str | None) -> Path | None:
    if real_port:
        return None
    if not board.is_qemu:
        pytest.skip(f"{board.name} is a real board: pass --port (the Cortex-M QEMU boards run "
                    f"the same core and kernels)")
    build_firmware(board)
    return firmware_image(board)


def boot(board: Board, firmware: Path, model: bytes | None, tmp: Path) -> QemuBoard:
    """Boot `board` with `firmware` and `model` (None: empty partition) in its flash."""
    flash = [Image(board.flash_base, firmware)]
    if model is not None:
        path = tmp / "model.bin"
        path.write_bytes(model)
        flash.append(Image(board.model_base, path))
    return QemuBoard(board, flash=flash).start()


@pytest.fixture(scope="session")
def emulated(board: Board, firmware: Path | None, model_blob: bytes, tmp_path_factory):
    """The booted QEMU board (None for a real one)."""
    if firmware is None:
        yield None
        return
    qb = boot(board, firmware, model_blob, tmp_path_factory.mktemp("flash"))
    yield qb
    qb.stop()


@pytest.fixture(scope="session")
def session_console(board: Board, real_port: str | None, emulated: QemuBoard | None):
    try:
        console = MoteConsole(real_port or emulated.url, timeout=REPLY_TIMEOUT_S)
        console.read_banner(boot_wait=BOOT_TIMEOUT_S if emulated else 2.0)
    except MoteError as err:  # no board on the port, or not a Mote console: one line, not 20 errors
        pytest.exit(f"{board.name}: {err}", returncode=2)
    yield console
    console.close()


@pytest.fixture
def console(session_console: MoteConsole) -> MoteConsole:
    """The board's console (echo off), its settings back at their defaults."""
    session_console.sync()
    assert session_console.command("/reset")[-1].startswith("ok")
    return session_console


@pytest.fixture
def read_until():
    """read_until(console, marker): raw text from the board up to `marker`, for replies
    MoteConsole does not parse (an interrupted generation, a refused line)."""

    def read(console: MoteConsole, marker: bytes, timeout: float = 60) -> str:
        console.port.timeout = timeout
        data = console.port.read_until(marker)
        if not data.endswith(marker):
            raise AssertionError(f"no {marker!r} within {timeout} s; got {data[-300:]!r}")
        return data.decode("utf-8", errors="replace")

    return read


@pytest.fixture
def boot_other(board: Board, firmware: Path | None, tmp_path: Path):
    """Boot a second emulated board with other flash contents: boot_other(model_bytes
    or None) -> (QemuBoard, MoteConsole); both stopped after the test."""
    if firmware is None:
        pytest.skip("needs the emulated board: a real one would have to be reflashed")
    started: list = []

    def start(model: bytes | None) -> tuple[QemuBoard, MoteConsole]:
        qb = boot(board, firmware, model, tmp_path)
        started.append(qb)
        console = MoteConsole(qb.url, timeout=60)
        started.append(console)
        return qb, console

    yield start
    for thing in reversed(started):
        (thing.close if isinstance(thing, MoteConsole) else thing.stop)()
