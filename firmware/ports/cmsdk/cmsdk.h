/* cmsdk.h - what the cmsdk port's files share: the UART, the semihosting exit, and the
 * memory measurements main.c reports. Board numbers come in as -D flags generated from
 * boards/<name>.toml (host/mote/boards/catalog.py make_vars). */
#ifndef MOTE_CMSDK_H
#define MOTE_CMSDK_H

#include <stddef.h>
#include <stdint.h>

#define CMSDK_STACK_PAINT 0x5AA5C33Cu

void cmsdk_uart_write(const void *bytes, size_t n);

/* Leave QEMU through semihosting SYS_EXIT (on a real part: halts at a breakpoint). */
void cmsdk_exit(int status) __attribute__((noreturn));

/* Deepest stack use since boot, in bytes: the stack is painted at reset and this counts
 * the words no longer holding the paint. */
uint32_t cmsdk_stack_high_water(void);
uint32_t cmsdk_stack_bytes(void);

/* .data + .bss bytes (the static arena included). */
uint32_t cmsdk_static_bytes(void);

#endif /* MOTE_CMSDK_H */
