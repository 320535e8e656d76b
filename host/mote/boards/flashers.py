"""Write a real board: the firmware and the model, separately, with the tool its board
file names ([flasher] methods): USB DFU (dfu-util) or an ST-Link (st-flash) for the
STM32, the UF2 drive or picotool for the RP2350, PlatformIO and esptool for the ESP32.

Each method is first a list of commands (`commands`, which `mote flash --dry-run`
prints and the tests compare exactly), then their execution (`write`), which checks
the tool is installed and a board is there, and says in one line what is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mote.boards.catalog import ROOT, Board
from mote.model import MoteError

# How to install each tool (the line a missing one gets).
INSTALL = {
    "dfu-util": "apt-get install dfu-util",
    "st-flash": "apt-get install stlink-tools",
    "st-info": "apt-get install stlink-tools",
    "picotool": "not packaged in Debian: build Raspberry Pi's picotool from source, or use --via uf2",
    "pio": "pip install platformio",
    "esptool": "pip install esptool (or pip install -e '.[esp]')",
}
ESP_BAUD = 460800
UF2_DRIVE_WAIT_S = 60.0  # after one UF2 the RP2350 reboots: time to hold BOOTSEL again


@dataclass(frozen=True)
class Images:
    """What `mote flash` built for a board: each image None when not being written."""

    firmware: Path | None  # firmware.bin, or firmware.uf2 for a UF2 board
    model: Path | None  # model.bin, or model.uf2


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MoteError(f"{name} not found ({INSTALL[name]})")
    return path


def commands(board: Board, method: str, images: Images, port: str | None = None,
             drive: Path | None = None) -> list[list[str]]:
    """The exact commands `write` runs, in order (a UF2 copy is shown as `cp`)."""
    fw, model = images.firmware, images.model
    if method == "dfu-util":
        # DfuSe: -s address[:leave]. Leaving DFU jumps to that address, so the model goes
        # first and the firmware last, with :leave; a model alone leaves the board in DFU
        # (reset it with BOOT0 low)
        steps = [["dfu-util", "-d", board.flasher["dfu_device"], "-a", "0",
                  "-s", f"0x{board.model_base:08X}", "-D", str(model)]] if model is not None else []
        if fw is not None:
            steps.append(["dfu-util", "-d", board.flasher["dfu_device"], "-a", "0",
                          "-s", f"0x{board.flash_base:08X}:leave", "-D", str(fw)])
        return steps
    if method == "st-flash":
        return [["st-flash", "--reset", "write", str(p), f"0x{a:08X}"]
                for a, p in ((board.flash_base, fw), (board.model_base, model)) if p is not None]
    if method == "uf2":
        target = str(drive) if drive else "<RP2350 drive>"
        return [["cp", str(p), target] for p in (fw, model) if p is not None]
    if method == "picotool":
        return [["picotool", "load", "--verify", str(p)] for p in (fw, model) if p is not None] + \
               [["picotool", "reboot"]]
    if method == "esptool":
        if port is None:
            raise MoteError(f"{board.name}: esptool needs the board's serial port (--port)")
        steps = []
        if fw is not None:  # PlatformIO builds the app, bootloader and partition table, and writes them
            steps.append(["pio", "run", "-d", str(ROOT), "-e", board.name, "-t", "upload",
                          "--upload-port", port])
        if model is not None:
            steps.append(esptool_args(board, port, model))
        return steps
    raise MoteError(f"{board.name}: unknown flash method {method!r}")


def esptool_args(board: Board, port: str, model: Path) -> list[str]:
    """esptool's command line for the model partition (run through its Python API)."""
    return ["esptool", "--chip", board.flasher["esp_chip"], "--port", port, "--baud", str(ESP_BAUD),
            "write-flash", f"0x{board.model_base:X}", str(model)]


def write(board: Board, method: str, images: Images, port: str | None = None,
          drive: Path | None = None) -> None:
    """Run `commands` against the real board, one clear MoteError for what is missing."""
    if method not in board.flash_methods:
        known = ", ".join(board.flash_methods) or "none: it exists only emulated"
        raise MoteError(f"{board.name} is not written with {method} (its methods: {known})")
    if method == "uf2":
        _copy_uf2(board, images, drive)
        return
    steps = commands(board, method, images, port, drive)
    if method == "dfu-util":
        _find_dfu(board)
    elif method == "st-flash":
        _find_stlink()
    for argv in steps:
        if argv[0] == "esptool":
            _run_esptool(board, argv, port)
        else:
            _run([require_tool(argv[0])] + argv[1:], board)


def _run(argv: list[str], board: Board) -> None:
    print("$ " + " ".join([Path(argv[0]).name] + argv[1:]), flush=True)
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise MoteError(f"{board.name}: {Path(argv[0]).name} failed (exit {done.returncode}): {last}")


def _find_dfu(board: Board) -> None:
    device = board.flasher["dfu_device"]
    listing = subprocess.run([require_tool("dfu-util"), "-l"], capture_output=True, text=True)
    if f"[{device}]" not in listing.stdout:
        raise MoteError(f"no {board.name} in DFU mode (dfu-util -l lists no {device}): "
                        "hold BOOT0 high, reset the board, and flash again")


def _find_stlink() -> None:
    probe = subprocess.run([require_tool("st-info"), "--probe"], capture_output=True, text=True)
    if "Found 0 stlink" in probe.stdout or probe.returncode != 0:
        raise MoteError("no ST-Link found (st-info --probe): plug it in, wired to the board's SWD pins")


def _run_esptool(board: Board, argv: list[str], port: str | None) -> None:
    """esptool through its Python API (the same arguments as its command line)."""
    try:
        import esptool
    except ImportError:
        raise MoteError(f"esptool not found ({INSTALL['esptool']})") from None
    import serial

    print("$ " + " ".join(argv), flush=True)
    try:
        esptool.main(argv[1:])
    except esptool.FatalError as err:
        first = str(err).strip().splitlines()[0]
        if "Failed to connect" in first:
            raise MoteError(f"no {board.name} answering on {port}: {first}") from None
        if first.startswith("Could not open"):
            raise MoteError(f"no {board.name} on {port}: {first}") from None
        raise MoteError(f"{board.name}: esptool: {first}") from None
    except (serial.SerialException, OSError) as err:  # no such port, or it cannot be opened
        raise MoteError(f"no {board.name} on {port}: {err}") from None


def find_uf2_drive(board: Board, mounts: Path = Path("/proc/mounts")) -> Path | None:
    """A mounted UF2 drive whose INFO_UF2.TXT names the board's chip (Board-ID)."""
    want = board.flasher["uf2_drive_id"]
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        info = Path(fields[1].replace("\\040", " ")) / "INFO_UF2.TXT"
        try:
            if f"Board-ID: {want}" in info.read_text(errors="replace"):
                return info.parent
        except OSError:
            continue
    return None


def _copy_uf2(board: Board, images: Images, drive: Path | None) -> None:
    files = [p for p in (images.firmware, images.model) if p is not None]
    for i, uf2 in enumerate(files):
        target = drive or _wait_for_drive(board, first=i == 0)
        if not (target / "INFO_UF2.TXT").is_file():
            raise MoteError(f"{target} is not a UF2 drive (no INFO_UF2.TXT)")
        print(f"$ cp {uf2} {target}", flush=True)
        # the boot ROM writes each block as it arrives and reboots after the last one
        shutil.copyfile(uf2, target / uf2.name)


def _wait_for_drive(board: Board, first: bool) -> Path:
    found = find_uf2_drive(board)
    if found is None and first:
        raise MoteError(f"no {board.flasher['uf2_drive_id']} drive mounted: hold BOOTSEL while "
                        f"plugging in {board.name} (or pass --drive PATH, or use --via picotool)")
    if found is None:
        print(f"{board.name} rebooted after the firmware: hold BOOTSEL and reset it again "
              f"for the model (waiting {UF2_DRIVE_WAIT_S:.0f} s)", flush=True)
        deadline = time.monotonic() + UF2_DRIVE_WAIT_S
        while found is None and time.monotonic() < deadline:
            time.sleep(0.5)
            found = find_uf2_drive(board)
        if found is None:
            raise MoteError(f"the {board.flasher['uf2_drive_id']} drive did not come back within "
                            f"{UF2_DRIVE_WAIT_S:.0f} s: copy the model's UF2 by hand")
    return found
