"""PlatformIO: the generated platformio.ini and ESP-IDF partition table are current and
true to the board files, PlatformIO's own linter accepts the ini (it exits 0 on
warnings, so its output is read), and library.json packs the runtime as a library.
`pio run` cannot be tried here: it needs platforms from PlatformIO's registry."""

from __future__ import annotations

import configparser
import csv
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from unittest import mock

import pytest

from mote.boards import platformio
from mote.boards.catalog import ROOT, all_boards

PIO_BOARDS = [b for b in all_boards() if b.platformio is not None]


def pio() -> str:
    exe = shutil.which("pio", path=str(Path(sys.executable).parent)) or shutil.which("pio")
    if exe is None:
        pytest.fail("pio missing: pip install -e '.[test]' brings platformio")
    return exe


def test_generated_files_are_current():
    done = subprocess.run([sys.executable, "-m", "mote.boards.platformio", "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + "(run: python -m mote.boards.platformio)"


def test_every_real_board_has_its_environment_from_its_board_file():
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(platformio.INI)
    assert {"stm32f405", "pico2", "esp32s3"} <= {b.name for b in PIO_BOARDS}
    for board in PIO_BOARDS:
        env = ini[f"env:{board.name}"]
        for key, value in board.platformio.items():
            assert env[key] == value
        flags = env["build_flags"].split()
        assert f"-DARENA_BYTES=0x{board.arena_bytes:08X}" in flags
        assert f"-DMODEL_BASE=0x{board.model_base:08X}" in flags
        assert all(flag in flags for flag in board.cflags)


def test_platformio_lints_clean():
    done = subprocess.run([pio(), "project", "config", "--lint"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert not re.search(r"^\s*(Warning|Error)", out, re.MULTILINE), out
    assert "free from linting errors" in out


def test_linter_catches_what_it_should(tmp_path):
    """The lint test can fail: an unknown option is a warning in PlatformIO's output."""
    bad = platformio.INI.read_text().replace("monitor_speed", "monitor_sped", 1)
    (tmp_path / "platformio.ini").write_text(bad)
    done = subprocess.run([pio(), "project", "config", "--lint"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert re.search(r"Warning.*unknown configuration option `monitor_sped`", done.stdout)


@pytest.mark.parametrize("board", [b for b in PIO_BOARDS if b.port == "espidf"], ids=lambda b: b.name)
def test_espidf_partition_table_matches_the_board_file(board):
    rows = [r for r in csv.reader(platformio.partitions_path(board).read_text().splitlines())
            if r and not r[0].startswith("#")]
    table = {r[0].strip(): (r[1].strip(), r[2].strip(), int(r[3], 16), int(r[4], 16)) for r in rows}
    assert table["factory"] == ("app", "factory", board.flash_base, board.firmware_bytes)
    assert table["model"] == ("data", "0x40", board.model_base, board.model_size)
    spans = sorted((offset, offset + size) for _, _, offset, size in table.values())
    assert spans[0][0] >= 0x9000  # above ESP-IDF's bootloader and partition table
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # no overlaps
    assert spans[-1][1] <= board.flash_base + board.flash_size  # inside the flash chip
    assert table["factory"][2] % 0x10000 == 0 and table["model"][2] % 0x1000 == 0  # IDF alignments
    # the port looks the partition up by the same subtype
    port = (ROOT / "firmware" / "ports" / "espidf" / "hal_espidf.c").read_text()
    assert re.search(r"#define MODEL_PARTITION_SUBTYPE 0x40\b", port)


def test_library_json_packs_the_core_at_the_project_version(tmp_path):
    manifest = json.loads((ROOT / "library.json").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"] and manifest["license"] == project["license"]
    from platformio.package.manifest.schema import ManifestSchema
    from platformio.package.pack import PackagePacker

    # the manifest's license check downloads the SPDX list; offline, give it MIT's entry
    with mock.patch.object(ManifestSchema, "load_spdx_licenses",
                           staticmethod(lambda: {"licenses": [{"licenseId": "MIT"}]})):
        archive = Path(PackagePacker(str(ROOT)).pack(str(tmp_path)))
    import tarfile

    names = set(tarfile.open(archive).getnames())
    core = {f"firmware/core/{p.name}" for p in (ROOT / "firmware" / "core").iterdir() if p.suffix in (".c", ".h")}
    assert core <= names and "library.json" in names
    assert not any(n.startswith(("host/", "tests/", "firmware/ports/")) for n in names)


def test_library_sources_compile_for_a_cortex_m(tmp_path):
    """What library.json's srcFilter selects, compiled with its flags for a Cortex-M4."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("arm-none-eabi-gcc missing: scripts/setup.sh installs it")
    build = json.loads((ROOT / "library.json").read_text())["build"]
    src = ROOT / build["srcDir"]
    chosen = sorted(p.name for p in src.glob("*.c") if not p.name.startswith("kernels_"))
    chosen += ["kernels_ref.c", "kernels_cm.c"]
    assert build["srcFilter"] == ["+<*.c>", "-<kernels_*.c>", "+<kernels_ref.c>", "+<kernels_cm.c>"]
    for name in chosen:
        subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", *build["flags"], "-DMOTE_KERNELS=cm",
                        "-Wall", "-Werror", "-c", str(src / name), "-o", str(tmp_path / f"{name}.o")], check=True)
