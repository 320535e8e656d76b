"""PlatformIO's view of the board files: the top-level platformio.ini (one environment
per board file with a [platformio] section) and, for ESP-IDF boards, the partition
table (firmware/ports/espidf/partitions-<board>.csv), both generated from
boards/*.toml and committed; tests/test_platformio.py fails when they are stale.

    python -m mote.boards.platformio          # rewrite them
    python -m mote.boards.platformio --check  # exit 1 if any is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mote.boards.catalog import CORTEX_M_PORTS, ROOT, Board, all_boards, defines, kernel_set_chain
from mote.fileio import write_atomically

INI = ROOT / "platformio.ini"
ESPIDF_DIR = ROOT / "firmware" / "ports" / "espidf"
MODEL_SUBTYPE = 0x40  # a custom data subtype (0x40-0xFE); hal_espidf.c looks the partition up by it
# ESP-IDF's fixed layout below the app: bootloader at 0x0, partition table at 0x8000,
# then NVS and PHY calibration data; the first app partition must start at 0x10000.
ESP_FIXED = [("nvs", "data", "nvs", 0x9000, 0x6000), ("phy_init", "data", "phy", 0xF000, 0x1000)]
ESP_APP_BASE = 0x10000
# upload_protocol per first flash method (PlatformIO's names): PlatformIO writes the
# firmware; `mote flash` writes the model
_UPLOAD = {"dfu-util": "dfu", "st-flash": "stlink", "uf2": "picotool", "picotool": "picotool",
           "esptool": "esptool"}
HEADER = "generated from boards/*.toml by `python -m mote.boards.platformio`; do not edit"


def partitions_path(board: Board) -> Path:
    return ESPIDF_DIR / f"partitions-{board.name}.csv"


def partitions_csv(board: Board) -> str:
    """ESP-IDF's partition table: the fixed entries, the app (the board file's firmware
    partition) and the model data partition, at the board file's offsets."""
    if board.flash_base != ESP_APP_BASE:
        raise ValueError(f"{board.name}: an ESP-IDF app partition starts at 0x{ESP_APP_BASE:X}")
    rows = ESP_FIXED + [("factory", "app", "factory", board.flash_base, board.firmware_bytes),
                        ("model", "data", f"0x{MODEL_SUBTYPE:02X}", board.model_base, board.model_size)]
    lines = [f"# {HEADER.replace('boards/*.toml', f'boards/{board.name}.toml')}",
             "# Name, Type, SubType, Offset, Size"]
    lines += [f"{name}, {kind}, {sub}, 0x{offset:X}, 0x{size:X}" for name, kind, sub, offset, size in rows]
    return "\n".join(lines) + "\n"


def _src_filter(board: Board) -> str:
    # the board's set and those it builds on (firmware/core/sources.mk's KERNELS_BASE_)
    sets = ["kernels_ref.c"] + [f"kernels_{k}.c" for k in kernel_set_chain(board.kernels) if k != "ref"]
    parts = ["-<*>", "+<core/>", "-<core/kernels_*.c>"] + [f"+<core/{k}>" for k in sets]
    parts += ["+<ports/cortex-m/>", "-<ports/cortex-m/calibrate.c>", f"+<ports/{board.port}/>"]
    return " ".join(parts)


def env_section(board: Board) -> list[str]:
    pio = board.platformio
    flags = ["${mote.build_flags}", *board.cflags]
    if board.kernels != "ref":
        flags.append(f"-DMOTE_KERNELS={board.kernels}")
    flags += [f"-D{k}={v}" for k, v in defines(board).items()]
    lines = [f"[env:{board.name}]", f"; {board.description}",
             f"platform = {pio['platform']}", f"board = {pio['board']}"]
    if "framework" in pio:
        lines.append(f"framework = {pio['framework']}")
    if board.port in CORTEX_M_PORTS:
        # no framework: Mote's own startup, and the linker script `make flash` uses
        lines += [f"build_src_filter = {_src_filter(board)}",
                  "extra_scripts = pre:firmware/ports/cortex-m/pio_link.py",
                  f"custom_mote_port = {board.port}",
                  f"board_build.ldscript = build/{board.name}/link.ld",
                  "build_flags = " + " ".join(flags + ["-Ifirmware/ports/cortex-m", "-nostartfiles",
                                                      "--specs=nano.specs", "-Wl,--gc-sections"])]
    else:  # ESP-IDF: its CMake build (CMakeLists.txt, firmware/CMakeLists.txt)
        flash_mib = (board.flash_base + board.flash_size) >> 20
        lines += [f"board_build.partitions = {partitions_path(board).relative_to(ROOT)}",
                  f"board_upload.flash_size = {flash_mib}MB",
                  "build_flags = " + " ".join(flags)]
    lines += [f"upload_protocol = {_UPLOAD[board.flash_methods[0]]}", f"monitor_speed = {board.baud}"]
    return lines


def platformio_ini(boards: list[Board]) -> str:
    envs = [b for b in boards if b.platformio is not None]
    lines = [f"; platformio.ini - {HEADER}.",
             "; One environment per real board: `pio run -e NAME` builds its firmware and",
             "; `pio run -e NAME -t upload` writes it; `mote flash --board NAME MODEL` writes the",
             "; model partition (see README, \"Real boards\"). Only the ESP-IDF environment needs",
             "; PlatformIO; the Cortex-M ones also build with make (firmware/ports/*/Makefile).",
             "",
             "[platformio]",
             "src_dir = firmware",
             "",
             "[mote]",
             "build_flags = -std=c99 -ffp-contract=off -fno-math-errno -Ifirmware/core",
             ""]
    for board in envs:
        lines += env_section(board) + [""]
    return "\n".join(lines)


def generated() -> dict[Path, str]:
    """Every file this module writes, and its content."""
    boards = all_boards()
    files = {INI: platformio_ini(boards)}
    for board in boards:
        if board.port == "espidf":
            files[partitions_path(board)] = partitions_csv(board)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            write_atomically(path, text.encode())
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
