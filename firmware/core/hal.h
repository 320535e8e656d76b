/* hal.h - the whole boundary between the portable core and a port. A port (Linux
 * process, CMSDK board under QEMU, a real MCU) implements these six functions and
 * nothing else; the core never includes an OS or vendor header. */
#ifndef MOTE_HAL_H
#define MOTE_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Bring up the console transport and clocks. */
void hal_init(void);

/* Write n bytes to the console; blocks until they are queued. */
void hal_write(const void *bytes, size_t n);

/* One byte from the console, or -1 if none arrives within timeout_ms
 * (0 = poll, return at once). */
int hal_read_byte(uint32_t timeout_ms);

/* A free-running clock: cycles (or any fixed-rate tick) and its rate in Hz, for the
 * tok/s the console reports. Under QEMU -icount one tick is one instruction. */
uint64_t hal_ticks(void);
uint64_t hal_ticks_per_second(void);

/* Where the model blob lies (flash partition, or a copy in RAM) and how many bytes that region
 * holds; the core validates what it finds there. */
const uint8_t *hal_blob(size_t *region_bytes);

#endif /* MOTE_HAL_H */
