/* systick.c - the part of hal.h every bare-metal Cortex-M port shares: the clock from
 * SysTick (counting the core clock, SYSTICK_HZ from the board file), reads with a
 * timeout on top of the family's UART, the model at the board's model partition, and
 * the exit and memory measurements of cortex_m.h. */
#include <stdint.h>

#include "../../core/hal.h"
#include "cortex_m.h"

/* SysTick: a 24-bit down-counter on the core clock; its interrupt counts the wraps so
 * hal_ticks is a 64-bit count. */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_ENABLE_TICKINT_CORECLK 7u
#define ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define SYSTICK_SPAN (1u << 24)

/* The port's only mutable global: interrupt-written, so it cannot live in a caller's
 * struct. */
static volatile uint32_t systick_wraps;

void systick_handler(void) { systick_wraps++; }

void hal_init(void)
{
    port_init();
    SYST_RVR = SYSTICK_SPAN - 1u;
    SYST_CVR = 0u;
    systick_wraps = 0u;
    SYST_CSR = SYST_ENABLE_TICKINT_CORECLK;
}

void hal_write(const void *bytes, size_t n) { port_uart_write(bytes, n); }

uint64_t hal_ticks(void)
{
    for (;;) {
        uint32_t wraps = systick_wraps;
        uint32_t count = SYST_CVR;
        /* A wrap whose interrupt is still pending, or was taken between the two reads
         * of the wrap count, makes the pair inconsistent: read again. */
        if ((ICSR & ICSR_PENDSTSET) || wraps != systick_wraps) continue;
        /* The counter runs SPAN-1 down to 1, then 0, where the wrap is counted. */
        return (uint64_t)wraps * SYSTICK_SPAN + (count ? SYSTICK_SPAN - count : 0u);
    }
}

uint64_t hal_ticks_per_second(void) { return SYSTICK_HZ; }

int hal_read_byte(uint32_t timeout_ms)
{
    const uint64_t deadline = hal_ticks() + (uint64_t)timeout_ms * (SYSTICK_HZ / 1000u);
    for (;;) {
        int byte = port_uart_read();
        if (byte >= 0) return byte;
        if (hal_ticks() >= deadline) return -1;
    }
}

const uint8_t *hal_blob(size_t *region_bytes)
{
    *region_bytes = MODEL_SIZE;
    return (const uint8_t *)(uintptr_t)MODEL_BASE;
}

void cortexm_exit(int status)
{
    /* SYS_EXIT_EXTENDED: block = {ADP_Stopped_ApplicationExit, status}. */
    uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm("r0") = 0x20u;
    register uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

extern uint32_t __stack_limit, __stack_top, __data_start, __bss_end;

uint32_t cortexm_stack_bytes(void)
{
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)&__stack_limit);
}

uint32_t cortexm_stack_high_water(void)
{
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == CORTEXM_STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

uint32_t cortexm_static_bytes(void)
{
    return (uint32_t)((uintptr_t)&__bss_end - (uintptr_t)&__data_start);
}
