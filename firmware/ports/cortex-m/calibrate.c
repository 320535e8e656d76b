/* calibrate.c - checks the port's clock against loops of known length: prints
 * "calibrate instructions=<n> ticks=<t>" for two loops, then exits through semihosting.
 * bench/mcu.py and tests/hil derive instructions per tick from the difference (which
 * cancels the cost of reading the clock); under QEMU -icount shift=0 that is
 * 1e9 / SysTick Hz. Also prints the model partition's first word, to show the board's
 * model address is mapped. */
#include <stdint.h>

#include "../../core/hal.h"
#include "../../core/text.h"
#include "cortex_m.h"

/* 2 * iterations + 1 instructions: the mov, then subs + bne per iteration. */
static uint64_t timed_loop(uint32_t iterations)
{
    uint64_t start = hal_ticks();
    __asm volatile("mov r0, %0\n"
                   "1: subs r0, r0, #1\n"
                   "bne 1b\n"
                   :
                   : "r"(iterations)
                   : "r0", "cc");
    return hal_ticks() - start;
}

int main(void)
{
    hal_init();
    static const uint32_t lengths[2] = {1000000u, 11000000u};
    char buf[96];
    mote_text line;
    for (int i = 0; i < 2; i++) {
        uint64_t ticks = timed_loop(lengths[i]);
        mote_text_init(&line, buf, sizeof buf);
        mote_text_str(&line, "calibrate instructions=");
        mote_text_u64(&line, 2ull * lengths[i] + 1u);
        mote_text_str(&line, " ticks=");
        mote_text_u64(&line, ticks);
        mote_text_str(&line, "\r\n");
        hal_write(line.buf, line.len);
    }
    size_t region;
    const uint8_t *model = hal_blob(&region);
    mote_text_init(&line, buf, sizeof buf);
    mote_text_str(&line, "calibrate model_word=");
    mote_text_u64(&line, (uint64_t)model[0] | (uint64_t)model[1] << 8 | (uint64_t)model[2] << 16 |
                             (uint64_t)model[3] << 24);
    mote_text_str(&line, "\r\n");
    hal_write(line.buf, line.len);
    return 0;
}
