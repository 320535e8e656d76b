/* startup.c - reset and fault handlers and the vector table of the Cortex-M ports:
 * point VTOR at this table and mask every external interrupt (a bootloader that jumps
 * here, as the STM32's DFU one does, leaves its own), copy .data from flash, zero .bss,
 * paint the stack (for the high-water mark), turn on the FPU (and Helium on the M55),
 * then run main. */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_limit, __stack_top;

int main(void);
void reset_handler(void);
typedef void (*vector_fn)(void);
void systick_handler(void);

#define VTOR (*(volatile uint32_t *)0xE000ED08u)
#define NVIC_ICER ((volatile uint32_t *)0xE000E180u) /* 8 (v7-M) to 16 (v8-M) words */
#define NVIC_ICPR ((volatile uint32_t *)0xE000E280u)
#define NVIC_WORDS 8u /* the 240 interrupts every part here has at most */
#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL (0xFu << 20) /* FPU (and MVE on v8.1-M) */

/* Paint from the stack's limit up to just below this function's own frame; everything
 * below the deepest point main later reaches keeps the pattern. */
static void paint_stack(void)
{
    volatile uint32_t marker = 0;
    uint32_t *end = (uint32_t *)((uintptr_t)&marker & ~(uintptr_t)7u) - 16;
    for (uint32_t *p = &__stack_limit; p < end; p++) *p = CORTEXM_STACK_PAINT;
}

static const vector_fn vectors[16];

void reset_handler(void)
{
    VTOR = (uint32_t)(uintptr_t)vectors;
    for (uint32_t i = 0; i < NVIC_WORDS; i++) {
        NVIC_ICER[i] = 0xFFFFFFFFu;
        NVIC_ICPR[i] = 0xFFFFFFFFu;
    }
    CPACR |= CPACR_CP10_CP11_FULL;
    __asm volatile("dsb\n isb" ::: "memory");
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
    paint_stack();
    int status = main();
    cortexm_exit(status);
}

static void fault_handler(void)
{
    static const char message[] = "\r\nfatal: hard fault\r\n";
    port_uart_write(message, sizeof message - 1);
    cortexm_exit(3);
}


/* Initial stack pointer, then handlers: reset, NMI, hard fault, mem/bus/usage fault,
 * 4 reserved, SVC, debug monitor, reserved, PendSV, SysTick. */
__attribute__((section(".vectors"), used)) static const vector_fn vectors[16] = {
    (vector_fn)(uintptr_t)&__stack_top,
    reset_handler,
    fault_handler,
    fault_handler,
    fault_handler,
    fault_handler,
    fault_handler,
    0, 0, 0, 0,
    fault_handler,
    fault_handler,
    0,
    fault_handler,
    systick_handler,
};
