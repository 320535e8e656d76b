/* hal_linux.h - what main.c tells the Linux hal before hal_init: where the console is
 * and where the blob is mapped. hal.h itself stays the same six functions as on boards. */
#ifndef MOTE_HAL_LINUX_H
#define MOTE_HAL_LINUX_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HAL_LINUX_STDIO,   /* stdin/stdout; end of input ends the program */
    HAL_LINUX_TTY,     /* a device path, put in raw mode; a hang-up ends the program */
    HAL_LINUX_PTY_FD,  /* an inherited pty master (`mote chat`): when the other side
                          closes, wait for it to be opened again */
    HAL_LINUX_NO_INPUT /* one-shot runs: input is only SIGINT, read as a 0x03 byte */
} hal_linux_console;

/* Choose the console; `path` for HAL_LINUX_TTY, `fd` for HAL_LINUX_PTY_FD. Returns 0,
 * or -1 with errno set. */
int hal_linux_console_open(hal_linux_console kind, const char *path, int fd);

/* The mapped blob hal_blob() reports. */
void hal_linux_set_blob(const uint8_t *blob, size_t bytes);

/* Memory for a copy of the blob, released with free(): 2 MiB-aligned and advised to
 * be backed by transparent huge pages (where the kernel's THP setting is `madvise`, as
 * is common, only advised memory gets them). Decode reads every weight once per token;
 * with 4 KiB pages that stream is a TLB miss every 4 KiB. The advice is a hint: a
 * kernel without THP gives ordinary pages, the same bytes. NULL with errno set. */
void *hal_linux_alloc_blob(size_t bytes);

/* 1 once the input has ended (EOF on stdin, a tty hung up). */
int hal_linux_input_closed(void);

#endif /* MOTE_HAL_LINUX_H */
