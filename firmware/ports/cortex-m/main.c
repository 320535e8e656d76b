/* main.c - the firmware of every bare-metal Cortex-M port: hand the console a static arena of the board's RAM
 * budget (ARENA_BYTES from boards/<name>.toml) and serve the UART forever. The model is
 * whatever the model partition holds (hal_blob); without a valid one the console says
 * why and keeps running, so a new model is flashed without rebuilding this. */
#include <stdint.h>

#include "../../core/console.h"
#include "../../core/hal.h"
#include "../../core/text.h"
#include "cortex_m.h"

/* The port owns the runtime's memory: one arena, sized by the board file, and the
 * console state (in .bss rather than on the stack, so the linker counts it). */
static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));
static mote_console console;

/* The /info line of this port: the deepest stack use since boot (painted stack), the
 * stack's size and the static RAM (.data + .bss, the arena included), all in bytes. */
static uint32_t port_info(char *out, uint32_t cap)
{
    mote_text t;
    if (cap == 0u) return 0u;
    mote_text_init(&t, out, cap - 1u); /* room for the NUL */
    mote_text_str(&t, "port stack_high_water=");
    mote_text_u64(&t, cortexm_stack_high_water());
    mote_text_str(&t, " stack=");
    mote_text_u64(&t, cortexm_stack_bytes());
    mote_text_str(&t, " static_ram=");
    mote_text_u64(&t, cortexm_static_bytes());
    port_info_fields(&t);
    out[t.len] = '\0';
    return t.len;
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
