"""The firmware clock against loops of known length (emulated boards): with
-icount shift=0 one instruction is one nanosecond of virtual time, so SysTick must
tick exactly every 1e9 / tick_hz instructions, which is what bench/mcu.py relies on
to turn ticks into instructions per token."""

from __future__ import annotations

import pytest

from mote.boards.qemu import calibrate_clock

pytestmark = pytest.mark.hil


def test_systick_counts_instructions(board, real_port):
    if real_port or not board.is_qemu:
        pytest.skip("instruction counting needs QEMU -icount")
    cal = calibrate_clock(board)
    (short_instr, short_ticks), (long_instr, long_ticks) = cal["loops"]
    assert long_ticks > short_ticks > 0
    assert cal["agrees"], cal
