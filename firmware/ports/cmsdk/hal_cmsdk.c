/* hal_cmsdk.c - the cmsdk family's part of the Cortex-M port (cortex_m.h): the console
 * on the CMSDK APB UART of QEMU's mps2/mps3 boards. QEMU runs their core clock as it
 * is, so there are no clocks to set up. */
#include <stdint.h>

#include "cortex_m.h"

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

void port_init(void)
{
    UART->bauddiv = SYSTICK_HZ / UART_BAUD;
    UART->ctrl = 3u;
}

void port_uart_write(const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n; i++) {
        while (UART->state & UART_TX_FULL) {
        }
        UART->data = p[i];
    }
}

int port_uart_read(void)
{
    return (UART->state & UART_RX_FULL) ? (int)(UART->data & 0xFFu) : -1;
}

void port_info_fields(mote_text *line) { (void)line; }
