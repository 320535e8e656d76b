"""Writing real boards, checked offline: the Pico 2's UF2 files parsed back against the
ELF and the blob, the exact dfu-util / st-flash / picotool / esptool commands (run
against fake tools and a fake ESP32-S3 on a socket), a model packed for a board's RAM,
and one clear line for every request that cannot be met."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from fake_esp import FakeEsp32S3
from shared_models import model_path

from mote.boards import flashers
from mote.boards.catalog import load_board
from mote.boards.images import build_firmware
from mote.format import blob as blobfile
from mote.model import MoteError
from mote.pipeline import ConvertOptions, convert, pack_for_board

UF2_BLOCK = struct.Struct("<8I476sI")
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default.mote"


def mote(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mote.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def stories_blob(tmp_path_factory) -> Path:
    """stories260K, int8, context 256: fits every board."""
    path = tmp_path_factory.mktemp("blob") / "stories.mote"
    options = ConvertOptions(tokenizer=model_path("tok512.bin"), quant="int8", ctx=256)
    path.write_bytes(convert(model_path("stories260K.bin"), options).data)
    return path


def parse_uf2(data: bytes) -> tuple[set[int], dict[int, bytes]]:
    """UF2 read back as the boot ROM reads it (independently of mote.boards.uf2): the
    families and {address: 256-byte payload}; every header field checked."""
    assert len(data) % 512 == 0 and data
    families, payload = set(), {}
    count = len(data) // 512
    for i in range(count):
        m0, m1, flags, address, size, number, total, family, body, end = \
            UF2_BLOCK.unpack_from(data, 512 * i)
        assert (m0, m1, end) == (0x0A324655, 0x9E5D5157, 0x0AB16F30)
        assert flags == 0x2000 and size == 256 and address % 256 == 0
        assert (number, total) == (i, count)
        families.add(family)
        payload[address] = body[:size]
    return families, payload


def flat(payload: dict[int, bytes]) -> tuple[int, bytes]:
    start = min(payload)
    assert sorted(payload) == list(range(start, start + 256 * len(payload), 256)), "not contiguous"
    return start, b"".join(payload[a] for a in sorted(payload))


# ------------------------------------------------------------------------- Pico 2


def test_pico2_uf2_files_hold_the_elf_segments_and_the_blob(stories_blob, tmp_path):
    board = load_board("pico2")
    drive = tmp_path / "RP2350"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v1.0\nModel: Raspberry Pi RP2\nBoard-ID: RP2350\n")
    done = mote("flash", "--board", "pico2", stories_blob, "--drive", drive)
    assert done.returncode == 0, done.stderr
    fw_families, fw = parse_uf2((drive / "firmware.uf2").read_bytes())
    model_families, model = parse_uf2((drive / "model.uf2").read_bytes())
    assert fw_families == {0xE48BFF59} and model_families == {0xE48BFF57}  # rp2350-arm-s, absolute

    # the firmware's payload is exactly the ELF's loadable segments, at their load addresses
    start, image = flat(fw)
    assert start == board.flash_base
    with open(build_firmware(board).with_suffix(".elf"), "rb") as f:
        for segment in ELFFile(f).iter_segments("PT_LOAD"):
            if segment["p_filesz"] == 0:
                continue
            offset = segment["p_paddr"] - start
            assert image[offset:offset + segment["p_filesz"]] == segment.data()
    # the boot ROM's IMAGE_DEF in the first 4 KiB; the reset vector inside the image
    assert struct.pack("<5I", 0xFFFFDED3, 0x10210142, 0x1FF, 0, 0xAB123579) in image[:4096]
    reset = struct.unpack_from("<I", image, 4)[0] & ~1
    assert board.flash_base <= reset < board.flash_base + len(image)

    start, data = flat(model)
    blob = stories_blob.read_bytes()
    assert start == board.model_base and data[:len(blob)] == blob and set(data[len(blob):]) <= {0xFF}


def test_pico2_without_a_drive_or_picotool_says_so(stories_blob, tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    assert flashers.find_uf2_drive(load_board("pico2"), mounts) is None
    done = mote("flash", "--board", "pico2", "--model-only", stories_blob, "--via", "picotool",
                env={"PATH": str(tmp_path)})
    assert done.returncode == 2 and done.stderr.strip().endswith(
        "picotool not found (not packaged in Debian: build Raspberry Pi's picotool from source, "
        "or use --via uf2)")


def test_uf2_drive_is_found_by_its_board_id(tmp_path):
    other, mine = tmp_path / "other drive", tmp_path / "pico"
    for path, board_id in ((other, "RPI-RP2"), (mine, "RP2350")):
        path.mkdir()
        (path / "INFO_UF2.TXT").write_text(f"Board-ID: {board_id}\n")
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 {str(other).replace(' ', chr(92) + '040')} vfat rw 0 0\n"
                      f"/dev/sdb1 {mine} vfat rw 0 0\n")
    assert flashers.find_uf2_drive(load_board("pico2"), mounts) == mine


def test_pico2_core_and_kernels_run_in_the_hil_suite_on_the_cortex_m33_qemu_board():
    """No emulator runs an RP2350: its core and kernels are covered by qemu-m33, which
    compiles the same flags and kernel set and is in make test's HIL boards."""
    pico2, m33 = load_board("pico2"), load_board("qemu-m33")
    assert (pico2.core, pico2.cflags, pico2.kernels) == (m33.core, m33.cflags, m33.kernels)
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "qemu-m33" in next(line for line in makefile.splitlines() if line.startswith("HIL_BOARDS"))


def test_picotool_commands_are_exact(tmp_path):
    images = flashers.Images(tmp_path / "firmware.uf2", tmp_path / "model.uf2")
    assert flashers.commands(load_board("pico2"), "picotool", images) == [
        ["picotool", "load", "--verify", str(tmp_path / "firmware.uf2")],
        ["picotool", "load", "--verify", str(tmp_path / "model.uf2")],
        ["picotool", "reboot"]]


# ------------------------------------------------------------------------- STM32F405

FAKE_TOOL = """#!/bin/sh
echo "$0 $*" >> "{log}"
{body}
"""


def fake_tool(directory: Path, name: str, log: Path, body: str = "") -> None:
    path = directory / name
    path.write_text(FAKE_TOOL.format(log=log, body=body))
    path.chmod(0o755)


def test_stm32f405_dfu_writes_model_then_firmware_with_the_exact_commands(stories_blob, tmp_path):
    log = tmp_path / "log"
    fake_tool(tmp_path, "dfu-util", log, body='if [ "$1" = -l ]; then echo \'Found DFU: [0483:df11] '
                                              'ver=2200, devnum=7, cfg=1, intf=0, alt=0\'; fi')
    done = mote("flash", "--board", "stm32f405", stories_blob, "--via", "dfu-util",
                env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    build = Path(__file__).resolve().parents[1] / "build" / "stm32f405"
    # leaving DFU jumps to the address written last: the firmware's
    assert log.read_text().splitlines() == [
        f"{tmp_path}/dfu-util -l",
        f"{tmp_path}/dfu-util -d 0483:df11 -a 0 -s 0x08010000 -D {build}/model.bin",
        f"{tmp_path}/dfu-util -d 0483:df11 -a 0 -s 0x08000000:leave -D {build}/firmware.bin"]
    assert (build / "model.bin").read_bytes() == stories_blob.read_bytes()


def test_stm32f405_st_flash_commands_are_exact(tmp_path):
    images = flashers.Images(tmp_path / "firmware.bin", tmp_path / "model.bin")
    assert flashers.commands(load_board("stm32f405"), "st-flash", images) == [
        ["st-flash", "--reset", "write", str(tmp_path / "firmware.bin"), "0x08000000"],
        ["st-flash", "--reset", "write", str(tmp_path / "model.bin"), "0x08010000"]]


@pytest.mark.parametrize("via, tool, line", [
    ("dfu-util", "dfu-util", "no stm32f405 in DFU mode (dfu-util -l lists no 0483:df11): "
                             "hold BOOT0 high, reset the board, and flash again"),
    ("st-flash", "st-info", "no ST-Link found (st-info --probe): plug it in, wired to the board's SWD pins"),
])
def test_no_board_on_the_programmer_is_one_line(stories_blob, via, tool, line):
    """With the real tools (scripts/setup.sh installs them) and no board plugged in."""
    if shutil.which(tool) is None and os.environ.get("CI"):
        pytest.fail(f"{tool} missing: scripts/setup.sh installs it")
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    done = mote("flash", "--board", "stm32f405", "--model-only", stories_blob, "--via", via)
    assert (done.returncode, done.stderr.strip()) == (2, f"mote flash: error: {line}")


@pytest.mark.parametrize("tool, package", [("dfu-util", "dfu-util"), ("st-info", "stlink-tools")])
def test_missing_flash_tool_names_its_package(stories_blob, tmp_path, tool, package):
    via = "dfu-util" if tool == "dfu-util" else "st-flash"
    done = mote("flash", "--board", "stm32f405", "--model-only", stories_blob, "--via", via,
                env={"PATH": str(tmp_path)})
    assert done.stderr.strip() == f"mote flash: error: {tool} not found (apt-get install {package})"


def test_missing_arm_compiler_names_its_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MoteError, match=r"^arm-none-eabi-gcc not found, needed to build stm32f405 "
                                        r"\(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi\)$"):
        build_firmware(load_board("stm32f405"))


def test_a_method_the_board_lacks_is_refused(stories_blob):
    done = mote("flash", "--board", "qemu-m4", stories_blob, "--via", "dfu-util")
    assert done.stderr.strip() == ("mote flash: error: qemu-m4 is not written with dfu-util "
                                   "(its methods: none: it exists only emulated)")


# ------------------------------------------------------------------------- ESP32-S3


def test_esp32s3_model_is_written_by_esptool_at_the_partition_offset(stories_blob):
    board = load_board("esp32s3")
    with FakeEsp32S3(flash_bytes=board.flash_base + board.flash_size) as esp:
        done = mote("flash", "--board", "esp32s3", "--model-only", stories_blob, "--port", esp.url)
        assert done.returncode == 0, done.stdout + done.stderr
        blob = stories_blob.read_bytes()
        written = bytes(esp.flash[board.model_base:board.model_base + len(blob)])
    assert written == blob
    assert f"$ esptool --chip esp32s3 --port {esp.url} --baud 460800 write-flash 0x110000 " in done.stdout
    assert set(esp.flash[:board.model_base]) == {0xFF}  # nothing else touched


def test_esp32s3_commands_build_with_platformio_then_write_the_model(tmp_path):
    board = load_board("esp32s3")
    root = Path(__file__).resolve().parents[1]
    images = flashers.Images(Path("<pio run -e esp32s3>"), tmp_path / "model.bin")
    assert flashers.commands(board, "esptool", images, port="/dev/ttyACM0") == [
        ["pio", "run", "-d", str(root), "-e", "esp32s3", "-t", "upload", "--upload-port", "/dev/ttyACM0"],
        ["esptool", "--chip", "esp32s3", "--port", "/dev/ttyACM0", "--baud", "460800",
         "write-flash", "0x110000", str(tmp_path / "model.bin")]]


def test_esp32s3_without_a_board_on_the_port_is_one_line(stories_blob):
    done = mote("flash", "--board", "esp32s3", "--model-only", stories_blob, "--port", "/dev/mote-no-such-port")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("mote flash: error: no esp32s3 on /dev/mote-no-such-port: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_esp32s3_firmware_is_not_built_here():
    with pytest.raises(MoteError, match="esp32s3 is built by PlatformIO with ESP-IDF, not here"):
        build_firmware(load_board("esp32s3"))


# ------------------------------------------------------------------------- no board


def test_chat_with_no_board_on_the_port_is_one_line():
    done = mote("chat", "--port", "/dev/mote-no-such-port")
    assert done.returncode == 2
    assert done.stderr.startswith("mote chat: error: no board on /dev/mote-no-such-port: cannot open it")
    assert len(done.stderr.strip().splitlines()) == 1


def test_hil_suite_with_no_board_on_the_port_stops_with_one_line():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests" / "hil"),
                           "--board", "pico2", "--port", "/dev/mote-no-such-port"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "pico2: no board on /dev/mote-no-such-port: cannot open it" in done.stdout
    assert " passed" not in done.stdout and "error" not in done.stdout.splitlines()[-1]


# ------------------------------------------------------------------------- fitting


def test_default_model_is_packed_for_the_context_the_f405_ram_holds():
    board = load_board("stm32f405")
    data, notes = pack_for_board(DEFAULT_MODEL.read_bytes(), board)
    blob = blobfile.load(data)
    assert blob.arena_bytes <= board.arena_bytes
    bigger = blobfile.arena_bytes(blob.config, blob.ctx_len + 1, blob.group_size)
    assert bigger > board.arena_bytes  # the largest context that fits
    assert notes == [f"context 256 needs 154384 bytes of arena, stm32f405 has {board.arena_bytes}: "
                     f"packed for context {blob.ctx_len} ({blob.arena_bytes} bytes; --ctx N chooses)"]
    assert len(data) == DEFAULT_MODEL.stat().st_size  # only the header changed
    # and a blob that fits is left alone, byte for byte
    assert pack_for_board(data, board) == (data, [])


def test_explicit_context_that_does_not_fit_is_refused_by_how_much(stories_blob, tmp_path):
    done = mote("convert", model_path("stories260K.bin"), "--tokenizer", model_path("tok512.bin"),
                "-o", tmp_path / "x.mote", "--ctx", "512", "--board", "stm32f405")
    assert done.returncode == 2
    assert "does not fit stm32f405: needs " in done.stderr and "bytes of RAM, budget 102400 (" in done.stderr
    assert not (tmp_path / "x.mote").exists()


@pytest.mark.parametrize("board", ["stm32f405", "pico2"])
def test_model_too_big_for_flash_says_by_how_much(board):
    b = load_board(board)
    with pytest.raises(MoteError, match=rf"^does not fit {board}: needs \d+ bytes of flash, model partition "
                                        rf"{b.model_size} \(\d+ too many\)"):
        convert(model_path("ref-11m-silu"), ConvertOptions(), b)
