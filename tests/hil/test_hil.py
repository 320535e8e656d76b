"""The board against the numpy reference and the serial protocol, over its UART:
the same tests for an emulated board and a real one (see conftest.py). The client is
mote.console.MoteConsole, as `mote chat` uses it."""

from __future__ import annotations

import re

import pytest

from mote.boards.catalog import CORTEX_M_PORTS
from mote.boards.images import corrupt
from mote.model import MoteError

pytestmark = pytest.mark.hil

PROMPT = "Once upon a time"
END_OF_REPLY = b"\r\n> "


def test_banner_names_board_model_and_context(console, board, reference):
    fields = dict(re.findall(r"(\w+)=(\S+)", console.banner))
    assert console.banner.startswith("mote ")
    assert fields["board"] == board.name
    assert fields["model"] == reference.blob.name
    assert int(fields["ctx"]) == reference.blob.ctx_len
    assert int(fields["arena"]) == reference.blob.arena_bytes <= board.arena_bytes


def test_greedy_generation_equals_the_reference(console, reference):
    console.set("temp", 0)
    console.set("n", 48)
    text, stats = console.ask(PROMPT)
    expected, n = reference.generate(PROMPT, 48)
    assert text == expected
    assert stats.tokens == n


def test_seeded_sampling_equals_the_reference(console, reference):
    for name, value in (("temp", 0.9), ("topp", 0.9), ("topk", 40), ("seed", 1234), ("n", 40)):
        console.set(name, value)
    text, stats = console.ask(PROMPT)
    expected, n = reference.generate(PROMPT, 40, 0.9, 0.9, 40, 1234)
    assert text == expected
    assert stats.tokens == n
    # The same seed again gives the same text; another seed another one.
    console.set("seed", 1234)
    assert console.ask(PROMPT)[0] == expected
    console.set("seed", 99)
    assert console.ask(PROMPT)[0] != expected


@pytest.mark.parametrize("command, reply", [
    ("/temp 0.5", "ok temp=0.5"),
    ("/topp 0.75", "ok topp=0.75"),
    ("/topk 7", "ok topk=7"),
    ("/seed 42", "ok seed=42"),
    ("/n 12", "ok n=12"),
])
def test_setting_commands_answer_and_show_in_info(console, command, reply):
    assert console.command(command) == [reply]
    name, value = reply[3:].split("=")
    assert console.info()[name] == value


def test_n_limits_the_generation(console):
    console.set("n", 3)
    stats = console.ask(PROMPT)[1]
    assert (stats.tokens, stats.end) == (3, "length")


def test_stats_carry_the_exact_clock_ticks(console, board):
    console.set("n", 5)
    stats = console.ask(PROMPT)[1]
    assert stats.ticks_hz == board.tick_hz
    assert abs(stats.tok_s - stats.tokens * stats.ticks_hz / stats.decode_ticks) <= 0.0051
    assert abs(stats.ms - stats.prefill_ms - stats.decode_ticks * 1000 / stats.ticks_hz) <= 1


def test_info_reports_stack_and_static_ram(console, board):
    if board.port not in CORTEX_M_PORTS:
        pytest.skip("the stack and RAM line is the bare-metal Cortex-M ports'")
    console.set("n", 4)
    console.ask(PROMPT)  # a generation reaches the deepest stack
    info = console.info()
    stack, high_water, static = (int(info[k]) for k in ("stack", "stack_high_water", "static_ram"))
    assert 0 < high_water < stack and stack >= board.stack_bytes
    assert board.arena_bytes < static and static + stack <= board.ram_size
    assert int(console.info()["stack_high_water"]) >= high_water  # a high-water mark only grows


def test_stm32f4_took_the_emulator_path_only_under_qemu(console, board, emulated):
    """The port leaves the clock tree alone only where RCC reads 0 (hal_stm32f4.c): under
    QEMU it must say so; on a real part it must have run the PLL (and DWT counts)."""
    if board.port != "stm32f4":
        pytest.skip("the stm32f4 port's clock line")
    info = console.info()
    if emulated is not None:
        assert info["clock"] == "emulated"
    else:
        assert info["clock"] == "pll168" and int(info["dwt_cycles"]) > 0


def test_reset_restores_defaults(console):
    defaults = console.info()
    console.set("temp", 0.1)
    console.set("n", 5)
    assert console.info() != defaults
    assert console.command("/reset")[-1].startswith("ok")
    assert console.info() == defaults


def test_help_info_and_bad_commands(console, board, read_until):
    help_text = "\n".join(console.command("/help"))
    for name in ("/temp", "/topp", "/topk", "/seed", "/n", "/echo", "/reset", "/info"):
        assert name in help_text
    info = console.info()
    assert info["board"] == board.name and int(info["arena"]) > 0
    for bad in ("/bogus", "/temp hot", "/topp 2", "/n -1", "/info extra"):
        assert console.command(bad)[-1].startswith("error: "), bad
    console.command("/echo on")
    console.write(b"/n 2\n")
    assert read_until(console, END_OF_REPLY).startswith("/n 2")  # echoed
    console.sync()  # echo off again
    assert console.command("/n 2") == ["ok n=2"]


def test_ctrl_c_stops_a_generation(console, read_until):
    console.set("n", 200)
    console.write(PROMPT.encode() + b"\n")
    console.port.timeout = 60
    assert len(console.port.read(20)) == 20  # text is streaming
    console.interrupt()
    reply = read_until(console, END_OF_REPLY)
    stats = dict(re.findall(r"(\w+)=(\S+)", reply[reply.rindex("[stats]"):]))
    assert stats["end"] == "stopped"
    assert 0 < int(stats["tokens"]) < 200
    assert console.command("/n 2") == ["ok n=2"]  # alive


def test_over_long_line_is_refused_and_the_board_lives(console, read_until):
    console.write(b"a" * 1500 + b"\n")
    reply = read_until(console, END_OF_REPLY)
    assert "error: " in reply and "long" in reply and "[stats]" not in reply
    console.set("n", 2)
    assert console.ask(PROMPT)[1].tokens == 2


def test_board_restarted_mid_generation_comes_back(console, emulated, reference):
    if emulated is None:
        pytest.skip("restarting needs the emulated board's reset (QEMU system_reset)")
    console.set("n", 200)
    console.write(PROMPT.encode() + b"\n")
    console.port.timeout = 60
    assert len(console.port.read(20)) == 20
    emulated.reset()
    assert console.read_banner(boot_wait=30) == console.banner
    console.set("temp", 0)
    console.set("n", 16)
    assert console.ask(PROMPT)[0] == reference.generate(PROMPT, 16)[0]


@pytest.mark.parametrize("variant", ["int4", "int4a", "sparse"])
def test_int4_and_sparse_blobs_generate_as_the_reference(variant, variant_blobs, boot_other,
                                                         reference_of):
    """The board's other kernels end to end: the int4 and int4a matvecs, and the sparse column and
    bundled kernels (a calibrated stories260K, S = 0.3), greedy as the reference."""
    data = variant_blobs[variant]
    _, console = boot_other(data)
    console.read_banner(boot_wait=30)
    console.set("temp", 0)
    console.set("n", 24)
    text, stats = console.ask(PROMPT)
    assert (text, stats.tokens) == reference_of(data).generate(PROMPT, 24)


def test_corrupted_model_is_reported_and_the_console_lives(boot_other, model_blob, read_until):
    _, console = boot_other(corrupt(model_blob))
    boot_text = read_until(console, b"> ")
    assert "error: " in boot_text and "crc" in boot_text.lower(), boot_text
    console.sync()
    with pytest.raises(MoteError, match="^board: no valid model"):
        console.ask(PROMPT)
    assert "/temp" in "\n".join(console.command("/help"))


def test_empty_model_partition_is_reported(boot_other, read_until):
    _, console = boot_other(None)
    boot_text = read_until(console, b"> ")
    assert "error: " in boot_text and "model" in boot_text.lower(), boot_text
    console.sync()
    with pytest.raises(MoteError, match="^board: no valid model"):
        console.ask(PROMPT)
