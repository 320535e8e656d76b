/* calibrate.c - checks the port's clock against loops of known length: prints
 * "calibrate instructions=<n> ticks=<t>" for two loops, then exits through semihosting.
 * bench/mcu.py and tests/hil derive instructions per tick from the difference (which
 * cancels the cost of reading the clock); under QEMU -icount shift=0 that is
 * 1e9 / SysTick Hz. Also prints the model partition's first word, to show the board's
 * model address is mapped. */
#include <stdint.h>

#include "../../core/hal.h"
#include "cmsdk.h"

static void put_str(const char *s)
{
    uint32_t n = 0;
    while (s[n]) n++;
    hal_write(s, n);
}

static void put_u64(uint64_t v)
{
    char digits[21];
    int i = 20;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put_str(&digits[i]);
}

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
    for (int i = 0; i < 2; i++) {
        uint64_t ticks = timed_loop(lengths[i]);
        put_str("calibrate instructions=");
        put_u64(2ull * lengths[i] + 1u);
        put_str(" ticks=");
        put_u64(ticks);
        put_str("\r\n");
    }
    size_t region;
    const uint8_t *model = hal_blob(&region);
    put_str("calibrate model_word=");
    put_u64((uint64_t)model[0] | (uint64_t)model[1] << 8 | (uint64_t)model[2] << 16 |
            (uint64_t)model[3] << 24);
    put_str("\r\n");
    return 0;
}
