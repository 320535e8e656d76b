/* cortex_m.h - what the bare-metal Cortex-M ports share (firmware/ports/cortex-m:
 * startup, main, the SysTick clock, the model partition, the semihosting exit and the
 * memory measurements) and the few functions each family adds (firmware/ports/<family>:
 * clocks and the console UART). Board numbers come in as -D flags generated from
 * boards/<name>.toml (host/mote/boards/catalog.py make_vars). */
#ifndef MOTE_CORTEX_M_H
#define MOTE_CORTEX_M_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

#define CORTEXM_STACK_PAINT 0x5AA5C33Cu

/* ---- the family's part ---- */

/* Clocks and the console UART, before SysTick starts: afterwards SysTick counts the
 * core clock at SYSTICK_HZ. */
void port_init(void);
void port_uart_write(const void *bytes, size_t n);
/* One received byte, or -1 if none is waiting. */
int port_uart_read(void);
/* The family's own fields of the /info port line (" name=value" each), or nothing. */
void port_info_fields(mote_text *line);

/* ---- shared (systick.c) ---- */

/* Leave QEMU through semihosting SYS_EXIT (on a real part: halts at a breakpoint). */
void cortexm_exit(int status) __attribute__((noreturn));

/* Deepest stack use since boot, in bytes: the stack is painted at reset and this counts
 * the words no longer holding the paint. */
uint32_t cortexm_stack_high_water(void);
uint32_t cortexm_stack_bytes(void);

/* .data + .bss bytes (the static arena included). */
uint32_t cortexm_static_bytes(void);

#endif /* MOTE_CORTEX_M_H */
