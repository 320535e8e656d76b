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

int main(void)
{
    hal_init();
    const mote_console_config cfg = {
        .board = MOTE_BOARD_NAME,
        .arena = arena,
        .arena_bytes = sizeof arena,
        .ctx = 0,  /* the blob's ctx_len, which `mote convert --board` sized to fit */
        .echo = 1, /* a serial terminal does not echo what it sends */
    };
    mote_console_init(&console, &cfg);
    mote_console_run(&console);
    return 0;
}
