/* main.c - the cmsdk firmware: hand the console a static arena of the board's RAM
 * budget (ARENA_BYTES from boards/<name>.toml) and serve the UART forever. The model is
 * whatever the model partition holds (hal_blob); without a valid one the console says
 * why and keeps running, so a new model is flashed without rebuilding this. */
#include <stdint.h>

#include "../../core/console.h"
#include "../../core/hal.h"
#include "cmsdk.h"

/* The port owns the runtime's memory: one arena, sized by the board file, and the
 * console state (in .bss rather than on the stack, so the linker counts it). */
static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));
static mote_console console;

/* Appends "<key><v>" to out (length *n, capacity cap), truncating at cap - 1. */
static void append_field(char *out, uint32_t *n, uint32_t cap, const char *key, uint32_t v)
{
    char digits[10];
    uint32_t count = 0;
    while (*key && *n + 1u < cap) out[(*n)++] = *key++;
    do {
        digits[count++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (count && *n + 1u < cap) out[(*n)++] = digits[--count];
}

/* The /info line of this port: the deepest stack use since boot (painted stack), the
 * stack's size and the static RAM (.data + .bss, the arena included), all in bytes. */
static uint32_t port_info(char *out, uint32_t cap)
{
    uint32_t n = 0;
    if (cap == 0u) return 0u;
    append_field(out, &n, cap, "port stack_high_water=", cmsdk_stack_high_water());
    append_field(out, &n, cap, " stack=", cmsdk_stack_bytes());
    append_field(out, &n, cap, " static_ram=", cmsdk_static_bytes());
    out[n] = '\0';
    return n;
}

int main(void)
{
    hal_init();
    const mote_console_config cfg = {
        .board = MOTE_BOARD_NAME,
        .arena = arena,
        .arena_bytes = sizeof arena,
        .ctx = 0,  /* the blob's ctx_len, which `mote convert --board` sized to fit */
        .echo = 1, /* a serial terminal does not echo what it sends */
        .port_info = port_info,
    };
    mote_console_init(&console, &cfg);
    mote_console_run(&console);
    return 0;
}
