/* hal_cmsdk.c - hal.h for the CMSDK boards (QEMU mps2/mps3, and parts with the same
 * UART): the console on the CMSDK APB UART, the clock from SysTick, the model at the
 * board's model partition. Board numbers arrive as -D flags from boards/<name>.toml. */
#include <stdint.h>

#include "../../core/hal.h"
#include "cmsdk.h"

/* CMSDK APB UART registers. */
typedef struct {
    volatile uint32_t data;    /* RX on read, TX on write */
    volatile uint32_t state;   /* bit 0 TX full, bit 1 RX full */
    volatile uint32_t ctrl;    /* bit 0 TX enable, bit 1 RX enable */
    volatile uint32_t intstatus;
    volatile uint32_t bauddiv; /* QEMU ignores the UART below 16 */
} cmsdk_uart;

#define UART ((cmsdk_uart *)UART_BASE)
#define UART_TX_FULL 1u
#define UART_RX_FULL 2u

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
    UART->bauddiv = SYSTICK_HZ / UART_BAUD;
    UART->ctrl = 3u;
    SYST_RVR = SYSTICK_SPAN - 1u;
    SYST_CVR = 0u;
    systick_wraps = 0u;
    SYST_CSR = SYST_ENABLE_TICKINT_CORECLK;
}

void cmsdk_uart_write(const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n; i++) {
        while (UART->state & UART_TX_FULL) {
        }
        UART->data = p[i];
    }
}

void hal_write(const void *bytes, size_t n) { cmsdk_uart_write(bytes, n); }

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
        if (UART->state & UART_RX_FULL) return (int)(UART->data & 0xFFu);
        if (hal_ticks() >= deadline) return -1;
    }
}

const uint8_t *hal_blob(size_t *region_bytes)
{
    *region_bytes = MODEL_SIZE;
    return (const uint8_t *)(uintptr_t)MODEL_BASE;
}

void cmsdk_exit(int status)
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

uint32_t cmsdk_stack_bytes(void)
{
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)&__stack_limit);
}

uint32_t cmsdk_stack_high_water(void)
{
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == CMSDK_STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

uint32_t cmsdk_static_bytes(void)
{
    return (uint32_t)((uintptr_t)&__bss_end - (uintptr_t)&__data_start);
}
