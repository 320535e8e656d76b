"""Boards as data: load and check boards/<name>.toml, and decide whether a model fits.

A board file is the one source of truth for a board: compiler flags and kernel set,
flash and RAM layout, the model partition, the RAM budget for the arena, the clock
used for tok/s estimates, and how to run it: a QEMU machine that emulates it, and for
a real part the tools that write it ([flasher]) and its PlatformIO environment. The
firmware build reads it through `make_vars` (run as `mote boards NAME --make-vars`),
so the linker script and the C defines come from the same numbers `mote convert
--board` checks against; platformio.ini and the ESP-IDF partition table are generated
from it too (mote.boards.platformio).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mote.model import MoteError

# the source tree: board files, firmware sources and build outputs live beside host/
ROOT = Path(__file__).resolve().parents[3]
BOARDS_DIR = ROOT / "boards"

# Where a blob's tensors must start: docs/blob-format.md aligns everything to 32 bytes
# from the blob's start, so the partition itself must be at least that aligned.
PARTITION_ALIGN = 32

# section -> {key: type}; every key is required unless listed in _OPTIONAL.
_SCHEMA: dict[str, dict[str, type]] = {
    "": {"name": str, "description": str, "port": str},
    "cpu": {"core": str, "cflags": list, "kernels": str, "clock_hz": int},
    "flash": {"base": int, "size": int, "firmware_bytes": int},
    "model": {"base": int, "size": int},
    "ram": {"base": int, "size": int, "stack_bytes": int, "arena_bytes": int},
    "uart": {"base": int, "baud": int},
    "qemu": {"machine": str, "systick_hz": int, "ram_size": int},
    "flasher": {"methods": list, "dfu_device": str, "uf2_family": int, "uf2_model_family": int,
                "uf2_drive_id": str, "esp_chip": str},
    "platformio": {"platform": str, "board": str, "framework": str},
}
_OPTIONAL = {
    "qemu": {"ram_size"},
    "flasher": {"dfu_device", "uf2_family", "uf2_model_family", "uf2_drive_id", "esp_chip"},
    "platformio": {"framework"},
}
# How a board is run: emulated ([qemu]) and/or a real part written by a tool
# ([flasher]); a board has at least one of them.
_RUNNERS = ("qemu", "flasher")
_OPTIONAL_SECTIONS = _RUNNERS + ("platformio",)
# firmware/ports/<port>; espidf is built by PlatformIO alone (not here: no Xtensa gcc)
PORTS = ("cmsdk", "stm32f4", "rp2350", "espidf")
CORTEX_M_PORTS = ("cmsdk", "stm32f4", "rp2350")  # built by firmware/ports/cortex-m/port.mk
# A flash method and the [flasher] keys it needs (mote.boards.flashers runs them).
FLASH_METHODS: dict[str, tuple[str, ...]] = {
    "dfu-util": ("dfu_device",),
    "st-flash": (),
    "uf2": ("uf2_family", "uf2_model_family", "uf2_drive_id"),
    "picotool": ("uf2_family", "uf2_model_family"),
    "esptool": ("esp_chip",),
}
KERNELS_DIR = ROOT / "firmware" / "core"


def kernel_sets() -> list[str]:
    """The kernel sets a board may name: `ref` (the reference kernels alone) and every
    firmware/core/kernels_<set>.c (firmware/core/sources.mk accepts the same)."""
    return sorted({"ref"} | {p.stem.removeprefix("kernels_") for p in KERNELS_DIR.glob("kernels_*.c")})


def kernel_set_chain(kernels: str) -> list[str]:
    """`kernels` and the sets it builds on (KERNELS_BASE_<set> in
    firmware/core/sources.mk), which the same core runs too: ["mve", "dsp"]."""
    text = (KERNELS_DIR / "sources.mk").read_text(encoding="utf-8")
    bases = dict(re.findall(r"^KERNELS_BASE_(\w+)\s*:=\s*(\w+)\s*$", text, re.MULTILINE))
    chain = [kernels]
    while chain[-1] in bases:
        chain.append(bases[chain[-1]])
    return chain


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    port: str
    core: str
    cflags: tuple[str, ...]
    kernels: str  # the kernel set the firmware is built with (KERNELS=ref is the oracle)
    clock_hz: int  # the real part's core clock: tok/s derived from it are estimates
    flash_base: int
    flash_size: int
    firmware_bytes: int  # the firmware partition, at flash_base
    model_base: int  # the model partition (internal or memory-mapped external flash)
    model_size: int
    ram_base: int
    ram_size: int  # all the part's RAM: arena + stack + .data/.bss must fit
    stack_bytes: int
    arena_bytes: int  # the static arena the firmware hands the runtime
    uart_base: int
    baud: int
    qemu_machine: str | None = None
    systick_hz: int | None = None  # SysTick's rate under QEMU (virtual time)
    qemu_ram_size: int | None = None  # the emulator's RAM at ram_base, when the part's is too
    # small for the kernel test's buffers (that image alone links against it)
    flasher: dict | None = None  # [flasher]: methods (in order of preference) and their keys
    platformio: dict | None = None  # [platformio]: platform, board, framework
    path: Path | None = None

    @property
    def is_qemu(self) -> bool:
        return self.qemu_machine is not None

    @property
    def flash_methods(self) -> tuple[str, ...]:
        """The tools that write the real part, in order of preference (() for a board
        that exists only emulated)."""
        return tuple(self.flasher["methods"]) if self.flasher else ()

    @property
    def tick_hz(self) -> int:
        """Rate of the firmware's clock (hal_ticks): QEMU's SysTick, else the core clock."""
        return self.systick_hz if self.systick_hz is not None else self.clock_hz


def _hex(n: int) -> str:
    return f"0x{n:08X}"


def _read_sections(data: dict, where: str) -> dict[str, dict]:
    """Check keys and types against _SCHEMA; returns {section: table}."""
    sections: dict[str, dict] = {"": {k: v for k, v in data.items() if not isinstance(v, dict)}}
    for key, value in data.items():
        if isinstance(value, dict):
            sections[key] = value
    for section, table in sections.items():
        if section not in _SCHEMA:
            raise MoteError(f"{where}: unknown section [{section}]")
        schema = _SCHEMA[section]
        label = f"[{section}] " if section else ""
        for key, value in table.items():
            if key not in schema:
                raise MoteError(f"{where}: unknown key {label}{key}")
            if not isinstance(value, schema[key]) or isinstance(value, bool):
                raise MoteError(f"{where}: {label}{key} must be {schema[key].__name__}")
        for key in schema:
            if key not in table and key not in _OPTIONAL.get(section, ()):
                raise MoteError(f"{where}: missing {label}{key}")
    for section in _SCHEMA:
        if section not in sections and section not in _OPTIONAL_SECTIONS:
            raise MoteError(f"{where}: missing section [{section}]")
    if not any(r in sections for r in _RUNNERS):
        raise MoteError(f"{where}: needs [qemu] (emulated), [flasher] (a real part) or both")
    flasher = sections.get("flasher")
    if flasher is not None:
        methods = flasher["methods"]
        if not methods or not all(isinstance(m, str) and m in FLASH_METHODS for m in methods):
            raise MoteError(f"{where}: [flasher] methods must be some of {', '.join(FLASH_METHODS)}")
        for method in methods:
            for key in FLASH_METHODS[method]:
                if key not in flasher:
                    raise MoteError(f"{where}: [flasher] method {method} needs {key}")
    return sections


def _check_layout(b: Board, where: str) -> None:
    """Partitions inside their memories, no overlaps, budgets that add up."""
    for label, n in (("flash size", b.flash_size), ("firmware_bytes", b.firmware_bytes),
                     ("model size", b.model_size), ("ram size", b.ram_size),
                     ("stack_bytes", b.stack_bytes), ("arena_bytes", b.arena_bytes),
                     ("clock_hz", b.clock_hz), ("baud", b.baud)):
        if n <= 0:
            raise MoteError(f"{where}: {label} must be positive")
    if b.firmware_bytes > b.flash_size:
        raise MoteError(f"{where}: firmware partition larger than flash")
    fw_end = b.flash_base + b.firmware_bytes
    model_end = b.model_base + b.model_size
    flash_end = b.flash_base + b.flash_size
    if b.model_base % PARTITION_ALIGN:
        raise MoteError(f"{where}: model base {_hex(b.model_base)} not {PARTITION_ALIGN}-aligned")
    in_flash = b.flash_base <= b.model_base < flash_end
    if in_flash and model_end > flash_end:
        raise MoteError(f"{where}: model partition runs past the end of flash")
    if b.model_base < fw_end and model_end > b.flash_base:
        raise MoteError(f"{where}: model partition overlaps the firmware partition")
    ram_end = b.ram_base + b.ram_size
    if b.model_base < ram_end and model_end > b.ram_base:
        raise MoteError(f"{where}: model partition overlaps RAM")
    if b.arena_bytes + b.stack_bytes > b.ram_size:
        raise MoteError(
            f"{where}: arena_bytes + stack_bytes = {b.arena_bytes + b.stack_bytes} "
            f"exceed ram size {b.ram_size}"
        )
    if b.arena_bytes % 16 or b.stack_bytes % 8:
        raise MoteError(f"{where}: arena_bytes must be a multiple of 16, stack_bytes of 8")
    if b.port not in PORTS:
        raise MoteError(f"{where}: unknown port {b.port!r} (known: {', '.join(PORTS)})")
    if b.kernels not in kernel_sets():
        raise MoteError(f"{where}: unknown kernel set {b.kernels!r} (known: {', '.join(kernel_sets())})")
    if b.is_qemu and b.flasher and b.systick_hz != b.clock_hz:
        raise MoteError(f"{where}: one image runs emulated and on the real part, so [qemu] "
                        f"systick_hz must equal [cpu] clock_hz")
    if b.port == "espidf" and b.is_qemu:
        raise MoteError(f"{where}: the espidf port has no emulated form here")


def parse_board(text: str, where: str = "board") -> Board:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MoteError(f"{where}: {err}") from None
    s = _read_sections(data, where)
    if not all(isinstance(f, str) for f in s["cpu"]["cflags"]):
        raise MoteError(f"{where}: [cpu] cflags must be a list of strings")
    qemu = s.get("qemu", {})
    board = Board(
        name=s[""]["name"],
        description=s[""]["description"],
        port=s[""]["port"],
        core=s["cpu"]["core"],
        cflags=tuple(s["cpu"]["cflags"]),
        kernels=s["cpu"]["kernels"],
        clock_hz=s["cpu"]["clock_hz"],
        flash_base=s["flash"]["base"],
        flash_size=s["flash"]["size"],
        firmware_bytes=s["flash"]["firmware_bytes"],
        model_base=s["model"]["base"],
        model_size=s["model"]["size"],
        ram_base=s["ram"]["base"],
        ram_size=s["ram"]["size"],
        stack_bytes=s["ram"]["stack_bytes"],
        arena_bytes=s["ram"]["arena_bytes"],
        uart_base=s["uart"]["base"],
        baud=s["uart"]["baud"],
        qemu_machine=qemu.get("machine"),
        systick_hz=qemu.get("systick_hz"),
        qemu_ram_size=qemu.get("ram_size"),
        flasher=s.get("flasher"),
        platformio=s.get("platformio"),
    )
    _check_layout(board, where)
    return board


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def load_board(name: str) -> Board:
    """Board by name (boards/<name>.toml) or by path to a .toml file."""
    path = Path(name) if name.endswith(".toml") else BOARDS_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(board_names()) or "none"
        raise MoteError(f"unknown board {name!r} (known: {known})")
    board = parse_board(path.read_text(encoding="utf-8"), where=str(path))
    if not name.endswith(".toml") and board.name != name:
        raise MoteError(f"{path}: name {board.name!r} does not match the file name")
    return Board(**{**board.__dict__, "path": path})


def all_boards() -> list[Board]:
    return [load_board(n) for n in board_names()]


def fit_problems(board: Board, blob_bytes: int, arena_bytes: int) -> list[str]:
    """Why a model of blob_bytes needing arena_bytes does not fit `board` ([] if it does)."""
    problems = []
    if blob_bytes > board.model_size:
        problems.append(
            f"needs {blob_bytes} bytes of flash, model partition {board.model_size} "
            f"({blob_bytes - board.model_size} too many)"
        )
    if arena_bytes > board.arena_bytes:
        problems.append(
            f"needs {arena_bytes} bytes of RAM, budget {board.arena_bytes} "
            f"({arena_bytes - board.arena_bytes} too many)"
        )
    return problems


def check_fit(board: Board, blob_bytes: int, arena_bytes: int) -> None:
    """Raise MoteError saying by how much a model does not fit `board`."""
    problems = fit_problems(board, blob_bytes, arena_bytes)
    if problems:
        raise MoteError(f"does not fit {board.name}: " + "; ".join(problems))


def fits(blob_bytes: int, arena_bytes: int, board: Board) -> bool:
    return not fit_problems(board, blob_bytes, arena_bytes)


def fit_table(blob_bytes: int, arena_bytes: int) -> list[tuple[str, bool, str]]:
    """(board name, fits, detail) for every board file, for `mote convert` to print."""
    rows = []
    for board in all_boards():
        problems = fit_problems(board, blob_bytes, arena_bytes)
        detail = "; ".join(problems) if problems else (
            f"flash {blob_bytes}/{board.model_size}, RAM {arena_bytes}/{board.arena_bytes}"
        )
        rows.append((board.name, not problems, detail))
    return rows


def defines(board: Board) -> dict[str, str]:
    """The C defines every firmware build of `board` gets (make and PlatformIO alike)."""
    return {
        "FLASH_BASE": _hex(board.flash_base),
        "FIRMWARE_BYTES": _hex(board.firmware_bytes),
        "MODEL_BASE": _hex(board.model_base),
        "MODEL_SIZE": _hex(board.model_size),
        "RAM_BASE": _hex(board.ram_base),
        "RAM_SIZE": _hex(board.ram_size),
        "STACK_BYTES": _hex(board.stack_bytes),
        "ARENA_BYTES": _hex(board.arena_bytes),
        "UART_BASE": _hex(board.uart_base) + "u",
        "UART_BAUD": f"{board.baud}u",
        "SYSTICK_HZ": f"{board.tick_hz}u",
        "MOTE_BOARD_NAME": f'\\"{board.name}\\"',
    }


def make_vars(board: Board) -> str:
    """Make variable assignments for the firmware build (firmware/ports/cortex-m/port.mk)."""
    lines = [
        f"# generated from {board.path or board.name} by mote.boards; do not edit",
        f"BOARD_NAME := {board.name}",
        f"BOARD_PORT := {board.port}",
        f"BOARD_CPU_FLAGS := {' '.join(board.cflags)}",
        f"BOARD_KERNELS := {board.kernels}",
        "BOARD_DEFINES := " + " ".join(f"-D{k}={v}" for k, v in defines(board).items()),
        f"QEMU_MACHINE := {board.qemu_machine or ''}",
        f"QEMU_RAM_SIZE := {_hex(board.qemu_ram_size) if board.qemu_ram_size else ''}",
    ]
    return "\n".join(lines) + "\n"
