"""The HIL suite through a labgrid board farm on 127.0.0.1: a coordinator, an exporter
serving an emulated board's UART (tests/hil/labgrid/exporter.yaml) as a
NetworkSerialPort, a place acquired by labgrid-client, and tests/hil run with
--lg-env tests/hil/labgrid/qemu-m4.yaml, as a lab of many boards on many machines
would run it. Needs the farm extra (pip install -e '.[farm]'): skipped without it,
except under CI, where scripts/setup.sh installs it and a skip would hide a failure."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared_models import model_path

from mote.boards.catalog import ROOT, all_boards

LABGRID_DIR = ROOT / "tests" / "hil" / "labgrid"
BIN = Path(sys.executable).parent
# labgrid's programs start in a few seconds here; a loaded 2-core machine, many more
START_TIMEOUT_S = 120

if importlib.util.find_spec("labgrid") is None:
    if os.environ.get("CI"):
        pytest.fail("labgrid missing under CI: scripts/setup.sh installs '.[farm]'", pytrace=False)
    pytest.skip("labgrid not installed (pip install -e '.[farm]')", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_emulated_board_has_a_labgrid_environment():
    import yaml

    from labgrid.remote.config import ResourceConfig

    for board in (b for b in all_boards() if b.is_qemu):
        env = yaml.safe_load((LABGRID_DIR / f"{board.name}.yaml").read_text())
        target = env["targets"]["main"]
        assert target["resources"]["RemotePlace"]["name"] == f"mote-{board.name}"
        assert target["options"]["mote_board"] == board.name
    # the exporter template makes a group per MOTE_<BOARD>_TCP variable, named for the board
    variables = {f"MOTE_{b.name.upper().replace('-', '_')}_TCP": str(5000 + i)
                 for i, b in enumerate(all_boards()) if b.is_qemu}
    config = ResourceConfig(str(LABGRID_DIR / "exporter.yaml"),
                            {"env": {**variables, "HOME": "/"}, "isolated": False, "hostname": "farmhost",
                             "name": "farmhost"})
    assert set(config.data) == {f"mote-{b.name}" for b in all_boards() if b.is_qemu}
    assert config.data["mote-qemu-m4"]["NetworkSerialPort"]["host"] == "farmhost"


def test_pyserial_and_pyserial_labgrid_share_the_serial_package():
    """Both distributions install `serial/`; whichever wrote it last, what Mote, esptool
    and labgrid use of it works: URLs of every kind Mote opens, RFC2217, port listing."""
    from importlib import metadata

    import serial
    import serial.rfc2217
    import serial.tools.list_ports

    for dist in ("pyserial", "pyserial-labgrid"):
        assert "serial/__init__.py" in {str(f) for f in metadata.files(dist)}, dist
    port = serial.serial_for_url("loop://", timeout=1)
    port.write(b"mote\n")
    assert port.readline() == b"mote\n"
    assert isinstance(serial.tools.list_ports.comports(), list)
    assert serial.rfc2217.Serial is not None and serial.protocol_handler_packages
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


@pytest.fixture
def stopped_after():
    """started(proc) registers a process; all are stopped after the test, last first."""
    procs: list[subprocess.Popen] = []
    yield procs.append
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(what: str, check, log: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {timeout} s; the farm's log:\n"
                                 + log.read_text()[-3000:])
        time.sleep(0.5)


def test_hil_suite_passes_through_coordinator_and_exporter(tmp_path, stopped_after):
    """docs/hil.md's farm, on 127.0.0.1: `mote flash` and `mote serve` on the board's
    host (this writes build/qemu-m4/, as `mote run --board qemu-m4` does), then a
    coordinator, an exporter and a place, and the suite through them."""
    flashed = subprocess.run([sys.executable, "-m", "mote", "flash", "--board", "qemu-m4",
                              model_path("stories260K.bin"), "--tokenizer", model_path("tok512.bin"),
                              "--ctx", "256"], capture_output=True, text=True, timeout=600)
    assert flashed.returncode == 0, flashed.stderr
    uart, coordinator_port = free_port(), free_port()
    coordinator = f"127.0.0.1:{coordinator_port}"
    env = {**os.environ, "LG_COORDINATOR": coordinator, "MOTE_QEMU_M4_TCP": str(uart)}
    log = open(tmp_path / "farm.log", "w")
    stopped_after(subprocess.Popen([sys.executable, "-m", "mote", "serve", "--board", "qemu-m4",
                                    "--tcp", str(uart)], stdout=log, stderr=subprocess.STDOUT))
    # the coordinator keeps its places and resources in its working directory
    stopped_after(subprocess.Popen([BIN / "labgrid-coordinator", "-l", coordinator], cwd=tmp_path,
                                   stdout=log, stderr=subprocess.STDOUT))
    # an exporter that finds no coordinator exits ("coordinator is unavailable")
    wait_until("the coordinator", lambda: listening(coordinator_port), tmp_path / "farm.log")
    stopped_after(subprocess.Popen([BIN / "labgrid-exporter", "-c", coordinator, "-n", "farmhost",
                                    "--hostname", "127.0.0.1", LABGRID_DIR / "exporter.yaml"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT))

    def client(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([BIN / "labgrid-client", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    wait_until("mote serve's UART", lambda: listening(uart), tmp_path / "farm.log")
    wait_until("the exported serial port",
               lambda: "farmhost/mote-qemu-m4/NetworkSerialPort" in client("resources").stdout,
               tmp_path / "farm.log")
    for args in (("create",), ("add-match", "*/mote-qemu-m4/*"), ("acquire",)):
        done = client("-p", "mote-qemu-m4", *args)
        assert done.returncode == 0, done.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "hil"), "--lg-env", str(LABGRID_DIR / "qemu-m4.yaml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    client("-p", "mote-qemu-m4", "release")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:] + (tmp_path / "farm.log").read_text()[-2000:]
    # the protocol and reference tests ran over the farm; only the emulator-only ones skipped
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 14, summary
