/* hal_stm32f4.c - the STM32F405/F407 family's part of the Cortex-M port (cortex_m.h),
 * at register level: the core clock to 168 MHz from the PLL, the console on USART1
 * (PA9 TX, PA10 RX), and the DWT cycle counter.
 *
 * Real part or QEMU's netduinoplus2: QEMU models the USART, SysTick and the core at a
 * fixed 168 MHz, but its RCC, GPIO and flash interface are stubs that read 0, so
 * polling a ready bit there would hang. The two are told apart by a value silicon cannot
 * show: on every real part RCC_CR holds the factory HSI calibration (HSICAL) and the
 * HSI trim (HSITRIM, 16 from reset), so it never reads 0; QEMU's stub reads 0. Then
 * (and only then) the clock tree is left alone; the real part always gets it, with
 * unbounded waits, as its reference manual requires (RM0090 6.3), from whatever state
 * a bootloader left it in. /info says which path ran (clock=pll168 or clock=emulated). */
#include <stdint.h>

#include "cortex_m.h"

#if UART_BASE != 0x40011000u
#error "the stm32f4 port drives USART1 (PA9/PA10): [uart] base must be 0x40011000"
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RCC (RM0090 section 7.3) */
#define RCC_CR REG(0x40023800u)
#define RCC_PLLCFGR REG(0x40023804u)
#define RCC_CFGR REG(0x40023808u)
#define RCC_AHB1ENR REG(0x40023830u)
#define RCC_APB1ENR REG(0x40023840u)
#define RCC_APB2ENR REG(0x40023844u)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
/* HSI 16 MHz / M 16 = 1 MHz; x N 336 = 336 MHz VCO; / P 2 = 168 MHz core, / Q 7 = 48 MHz.
 * HSI rather than the crystal: every F405 board has it, so one image serves them all. */
#define PLLCFGR_HSI_168MHZ (16u | 336u << 6 | 0u << 16 | 0u << 22 | 7u << 24)
/* AHB / 1 (168 MHz), APB1 / 4 (42 MHz), APB2 / 2 (84 MHz: USART1), system clock = PLL */
#define CFGR_BUSES_PLL (0u << 4 | 5u << 10 | 4u << 13 | 2u)
#define CFGR_SWS_MASK (3u << 2)
#define CFGR_SWS_PLL (2u << 2)
#define AHB1ENR_GPIOA (1u << 0)
#define APB1ENR_PWR (1u << 28)
#define APB2ENR_USART1 (1u << 4)
#define APB2_HZ 84000000u

/* PWR: voltage scale 1, needed above 144 MHz */
#define PWR_CR REG(0x40007000u)
#define PWR_CR_VOS (1u << 14)

/* Flash interface: 5 wait states at 168 MHz and 3.3 V, prefetch and both caches */
#define FLASH_ACR REG(0x40023C00u)
#define FLASH_ACR_168MHZ (5u | 1u << 8 | 1u << 9 | 1u << 10)
#define FLASH_ACR_LATENCY_MASK 0xFu

/* GPIOA: PA9 and PA10 in alternate function 7 (USART1) */
#define GPIOA_MODER REG(0x40020000u)
#define GPIOA_AFRH REG(0x40020024u)

/* USART1 */
#define USART_SR REG(UART_BASE + 0x00u)
#define USART_DR REG(UART_BASE + 0x04u)
#define USART_BRR REG(UART_BASE + 0x08u)
#define USART_CR1 REG(UART_BASE + 0x0Cu)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_UE_TE_RE (1u << 13 | 1u << 3 | 1u << 2)

/* DWT cycle counter (ARMv7-M debug): counts core cycles on the part; QEMU reads 0 */
#define DEMCR REG(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

static int rcc_present(void) { return RCC_CR != 0u; }

static void clock_to_168mhz(void)
{
    /* a bootloader (the ROM's DFU one jumps here on :leave) may have left the PLL
     * running, and PLLCFGR is only written with the PLL off: run from HSI first */
    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY)) {
    }
    RCC_CFGR = 0u; /* system clock = HSI, buses undivided */
    while ((RCC_CFGR & CFGR_SWS_MASK) != 0u) {
    }
    RCC_CR &= ~RCC_CR_PLLON;
    while (RCC_CR & RCC_CR_PLLRDY) {
    }
    RCC_APB1ENR |= APB1ENR_PWR;
    PWR_CR |= PWR_CR_VOS;
    FLASH_ACR = FLASH_ACR_168MHZ;
    while ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != 5u) {
    }
    RCC_PLLCFGR = PLLCFGR_HSI_168MHZ;
    RCC_CR |= RCC_CR_PLLON;
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }
    RCC_CFGR = CFGR_BUSES_PLL;
    while ((RCC_CFGR & CFGR_SWS_MASK) != CFGR_SWS_PLL) {
    }
}

void port_init(void)
{
    if (rcc_present()) clock_to_168mhz();
    /* Clock gates and pins: plain writes, which the emulator ignores harmlessly. */
    RCC_AHB1ENR |= AHB1ENR_GPIOA;
    RCC_APB2ENR |= APB2ENR_USART1;
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18); /* PA9, PA10: AF */
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);   /* AF7 */
    /* 16x oversampling: BRR = APB2 / baud, rounded (84 MHz / 115200 = 729.2) */
    USART_BRR = (APB2_HZ + UART_BAUD / 2u) / UART_BAUD;
    USART_CR1 = USART_CR1_UE_TE_RE;
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= 1u;
}

void port_uart_write(const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n; i++) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = p[i];
    }
}

int port_uart_read(void)
{
    /* reading SR then DR also clears an overrun, so a flood cannot wedge the receiver */
    return (USART_SR & USART_SR_RXNE) ? (int)(USART_DR & 0xFFu) : -1;
}

void port_info_fields(mote_text *line)
{
    mote_text_str(line, rcc_present() ? " clock=pll168" : " clock=emulated");
    mote_text_str(line, " dwt_cycles=");
    mote_text_u64(line, DWT_CYCCNT);
}
