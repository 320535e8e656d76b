"""Board files: every boards/*.toml is complete and consistent, and fit checks say by
how much a model misses."""

from __future__ import annotations

import pytest

from mote.boards import catalog as boards
from mote.model import MoteError

NAMES = boards.board_names()
GOOD = (boards.BOARDS_DIR / "qemu-m4.toml").read_text()


def test_the_emulated_boards_exist():
    assert {"qemu-m4", "qemu-m7", "qemu-m33", "qemu-m55"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_board_file_is_complete_and_consistent(name):
    board = boards.load_board(name)
    assert board.name == name and board.path is not None
    # The firmware's static arena plus the stack fit in RAM with room for .data/.bss.
    assert board.arena_bytes + board.stack_bytes < board.ram_size
    assert board.tick_hz > 0 and board.clock_hz > 0
    if board.port in boards.CORTEX_M_PORTS:  # ESP-IDF sets the Xtensa flags itself
        assert any(flag.startswith("-mcpu=") for flag in board.cflags)
    make = boards.make_vars(board)
    assert f"BOARD_KERNELS := {board.kernels}" in make
    assert f"-DMODEL_BASE=0x{board.model_base:08X}" in make
    assert f"-DARENA_BYTES=0x{board.arena_bytes:08X}" in make


def test_m4_budget_is_a_256k_part_that_holds_stories260k_at_context_256():
    board = boards.load_board("qemu-m4")
    assert board.ram_size == 256 * 1024
    # docs/blob-format.md: stories260K at context 256 needs about 97 KB of arena.
    assert boards.fits(300_000, 97_000, board)


def test_check_fit_says_by_how_much():
    board = boards.load_board("qemu-m4")
    with pytest.raises(MoteError, match=r"does not fit qemu-m4: needs 300000 bytes of RAM, "
                                        rf"budget {board.arena_bytes} \({300000 - board.arena_bytes} too many\)"):
        boards.check_fit(board, 1000, 300_000)
    with pytest.raises(MoteError, match=r"bytes of flash, model partition"):
        boards.check_fit(board, board.model_size + 1, 1000)
    boards.check_fit(board, board.model_size, board.arena_bytes)  # exactly full fits


def test_fit_table_covers_every_board():
    rows = boards.fit_table(10_000, 50_000)
    assert [r[0] for r in rows] == NAMES
    assert all(ok for _, ok, _ in rows)
    assert not any(ok for _, ok, _ in boards.fit_table(10_000, 10**9))


@pytest.mark.parametrize("edit, message", [
    (("clock_hz = 180_000_000", ""), r"missing \[cpu\] clock_hz"),
    (("baud = 115200", "baud = 115200\nparity = 1"), r"unknown key \[uart\] parity"),
    (("base = 0x00040000", "base = 0x00000100"), "overlaps the firmware partition"),
    (("base = 0x00040000", "base = 0x00040004"), "not 32-aligned"),
    (("arena_bytes = 0x37000", "arena_bytes = 0x3E000"), "exceed ram size"),
    (("machine = \"mps2-an386\"", "machine = 386"), r"\[qemu\] machine must be str"),
    (("[qemu]\nmachine = \"mps2-an386\"\nsystick_hz = 25_000_000", ""), r"needs \[qemu\] \(emulated\), \[flasher\]"),
    ((f"kernels = \"{boards.load_board('qemu-m4').kernels}\"", "kernels = 3"), r"\[cpu\] kernels must be str"),
    (("[qemu]", "[flasher]\nmethods = [\"dfu-util\"]\n\n[qemu]"), "method dfu-util needs dfu_device"),
    (("[qemu]", "[flasher]\nmethods = [\"jtag\"]\n\n[qemu]"), "methods must be some of"),
    (("[qemu]", "[flasher]\nmethods = [\"st-flash\"]\n\n[qemu]"), "systick_hz must equal"),
    (("port = \"cmsdk\"", "port = \"zephyr\""), "unknown port 'zephyr'"),
    (("size = 0x001C0000", "size = 0x001C0001"), "runs past the end of flash"),
    ((f"kernels = \"{boards.load_board('qemu-m4').kernels}\"", "kernels = \"neon\""),
     r"unknown kernel set 'neon' \(known: .*ref"),
    ((f"kernels = \"{boards.load_board('qemu-m4').kernels}\"\n", ""), r"missing \[cpu\] kernels"),
])
def test_linter_rejects_inconsistent_board_files(edit, message):
    old, new = edit
    assert old in GOOD
    with pytest.raises(MoteError, match=message):
        boards.parse_board(GOOD.replace(old, new, 1), "edited")


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(MoteError, match="unknown board 'nope' .*qemu-m4"):
        boards.load_board("nope")
