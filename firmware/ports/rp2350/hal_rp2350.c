/* hal_rp2350.c - the RP2350 family's part of the Cortex-M port (cortex_m.h), at
 * register level (RP2350 datasheet): the image definition block the boot ROM looks for,
 * the 12 MHz crystal and PLL_SYS to a 150 MHz core clock, and the console on UART0
 * (GPIO0 TX, GPIO1 RX: a Raspberry Pi Debug Probe's UART, /dev/ttyACM0 on the host).
 *
 * No emulator runs an RP2350, so these lines are compiled and linked in CI but run only
 * on a real part; the core and kernels they carry run on the Cortex-M33 QEMU board. The
 * flash stays in the boot ROM's XIP set-up (no faster QSPI mode is configured). */
#include <stdint.h>

#include "cortex_m.h"

#if UART_BASE != 0x40070000u
#error "the rp2350 port drives UART0 (GPIO0/GPIO1): [uart] base must be 0x40070000"
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SET_BITS(addr) REG((addr) + 0x2000u) /* atomic set alias of a register */
#define CLEAR_BITS(addr) REG((addr) + 0x3000u)

/* The minimum Arm IMAGE_DEF (datasheet 5.9.5.1): a secure Arm executable for the
 * RP2350, its vector table at the start of the image. The link script keeps it in the
 * first 4 KiB, right after the vectors. */
__attribute__((section(".image_def"), used)) static const uint32_t image_def[5] = {
    0xFFFFDED3u, /* block start marker */
    0x10210142u, /* IMAGE_TYPE: executable, secure, Arm, RP2350 */
    0x000001FFu, /* LAST item */
    0x00000000u, /* next block: this one (a loop of one) */
    0xAB123579u, /* block end marker */
};

/* RESETS */
#define RESETS_RESET 0x40020000u
#define RESETS_DONE REG(0x40020008u)
#define RESET_IO_BANK0 (1u << 6)
#define RESET_PADS_BANK0 (1u << 9)
#define RESET_PLL_SYS (1u << 14)
#define RESET_UART0 (1u << 26)

/* XOSC: the Pico 2's 12 MHz crystal */
#define XOSC_CTRL REG(0x40048000u)
#define XOSC_STATUS REG(0x40048004u)
#define XOSC_STARTUP REG(0x4004800Cu)
#define XOSC_ENABLE_1_15MHZ (0xFABu << 12 | 0xAA0u)
#define XOSC_STABLE (1u << 31)
#define XOSC_STARTUP_1MS 47u /* (12 MHz / 1000 + 128) / 256 */

/* PLL_SYS: 12 MHz x 125 = 1500 MHz VCO, / 5 / 2 = 150 MHz */
#define PLL_CS REG(0x40050000u)
#define PLL_PWR 0x40050004u
#define PLL_FBDIV REG(0x40050008u)
#define PLL_PRIM REG(0x4005000Cu)
#define PLL_LOCK (1u << 31)
#define PLL_PWR_PD_VCOPD (1u << 0 | 1u << 5)
#define PLL_PWR_POSTDIVPD (1u << 3)

/* CLOCKS: each clock has CTRL, DIV, SELECTED (one-hot of its source) */
#define CLK_REF_CTRL REG(0x40010030u)
#define CLK_REF_SELECTED REG(0x40010038u)
#define CLK_SYS_CTRL REG(0x4001003Cu)
#define CLK_SYS_SELECTED REG(0x40010044u)
#define CLK_PERI_CTRL REG(0x40010048u)
#define CLK_REF_SRC_XOSC 2u
#define CLK_SYS_SRC_REF 0u
#define CLK_SYS_SRC_AUX_PLL_SYS 1u /* AUXSRC 0 = PLL_SYS */
#define CLK_PERI_ENABLE_SYS (1u << 11) /* AUXSRC 0 = clk_sys */
#define CORE_HZ 150000000u

/* GPIO0/1: pads out of isolation with input enabled, function 2 = UART0 */
#define PADS_GPIO0 REG(0x40038004u)
#define PADS_GPIO1 REG(0x40038008u)
#define PADS_ISO (1u << 8)
#define PADS_IE (1u << 6)
#define IO_GPIO0_CTRL REG(0x40028004u)
#define IO_GPIO1_CTRL REG(0x4002800Cu)
#define FUNCSEL_UART 2u

/* UART0: an Arm PL011 */
#define UART_DR REG(UART_BASE + 0x00u)
#define UART_FR REG(UART_BASE + 0x18u)
#define UART_IBRD REG(UART_BASE + 0x24u)
#define UART_FBRD REG(UART_BASE + 0x28u)
#define UART_LCR_H REG(UART_BASE + 0x2Cu)
#define UART_CR REG(UART_BASE + 0x30u)
#define UART_FR_RXFE (1u << 4)
#define UART_FR_TXFF (1u << 5)
#define UART_LCR_8N1_FIFO (3u << 5 | 1u << 4)
#define UART_CR_EN_TX_RX (1u << 0 | 1u << 8 | 1u << 9)

#if SYSTICK_HZ != CORE_HZ
#error "the rp2350 port runs the core at 150 MHz: [cpu] clock_hz must be 150_000_000"
#endif

static void unreset(uint32_t bits)
{
    CLEAR_BITS(RESETS_RESET) = bits;
    while ((RESETS_DONE & bits) != bits) {
    }
}

static void clock_to_150mhz(void)
{
    XOSC_STARTUP = XOSC_STARTUP_1MS;
    XOSC_CTRL = XOSC_ENABLE_1_15MHZ;
    while (!(XOSC_STATUS & XOSC_STABLE)) {
    }
    /* clk_sys off the PLL (whatever the boot ROM left), clk_ref onto the crystal */
    CLK_SYS_CTRL = CLK_SYS_SRC_REF;
    while (CLK_SYS_SELECTED != 1u << CLK_SYS_SRC_REF) {
    }
    CLK_REF_CTRL = CLK_REF_SRC_XOSC;
    while (CLK_REF_SELECTED != 1u << CLK_REF_SRC_XOSC) {
    }
    SET_BITS(RESETS_RESET) = RESET_PLL_SYS;
    unreset(RESET_PLL_SYS);
    PLL_CS = 1u; /* reference divider 1 */
    PLL_FBDIV = 125u;
    CLEAR_BITS(PLL_PWR) = PLL_PWR_PD_VCOPD;
    while (!(PLL_CS & PLL_LOCK)) {
    }
    PLL_PRIM = 5u << 16 | 2u << 12;
    CLEAR_BITS(PLL_PWR) = PLL_PWR_POSTDIVPD;
    CLK_SYS_CTRL = CLK_SYS_SRC_AUX_PLL_SYS;
    while (CLK_SYS_SELECTED != 1u << CLK_SYS_SRC_AUX_PLL_SYS) {
    }
    CLK_PERI_CTRL = CLK_PERI_ENABLE_SYS;
}

void port_init(void)
{
    clock_to_150mhz();
    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0);
    PADS_GPIO0 = (PADS_GPIO0 & ~PADS_ISO) | PADS_IE;
    PADS_GPIO1 = (PADS_GPIO1 & ~PADS_ISO) | PADS_IE;
    IO_GPIO0_CTRL = FUNCSEL_UART;
    IO_GPIO1_CTRL = FUNCSEL_UART;
    /* divisor 150 MHz / (16 x baud) in 16.6 fixed point, rounded */
    const uint32_t div = (8u * CORE_HZ / UART_BAUD + 1u) / 2u;
    UART_IBRD = div >> 6;
    UART_FBRD = div & 0x3Fu;
    UART_LCR_H = UART_LCR_8N1_FIFO; /* also latches the divisor */
    UART_CR = UART_CR_EN_TX_RX;
}

void port_uart_write(const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n; i++) {
        while (UART_FR & UART_FR_TXFF) {
        }
        UART_DR = p[i];
    }
}

int port_uart_read(void) { return (UART_FR & UART_FR_RXFE) ? -1 : (int)(UART_DR & 0xFFu); }

void port_info_fields(mote_text *line) { (void)line; }
