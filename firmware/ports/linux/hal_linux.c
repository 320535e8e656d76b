/* hal_linux.c - hal.h for a Linux process: the console on stdin/stdout, a tty, or an
 * inherited pty master; the clock is CLOCK_MONOTONIC in nanoseconds; the blob is
 * wherever main.c mapped it. */
#include "hal_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hal.h"

#define CTRL_C 0x03
#define REOPEN_POLL_MS 50 /* how often a pty whose other side is closed is retried */

/* hal.h calls carry no context, so the port keeps its state here (a port may have
 * globals; the core may not). */
static struct {
    hal_linux_console kind;
    int in_fd, out_fd;
    int closed;
    uint8_t in[256]; /* bytes read ahead of the console */
    size_t in_len, in_pos;
    const uint8_t *blob;
    size_t blob_bytes;
} port = {.kind = HAL_LINUX_STDIO, .in_fd = 0, .out_fd = 1};

#define HUGE_PAGE_BYTES (2u << 20)

void *hal_linux_alloc_blob(size_t bytes)
{
    void *p = NULL;
    const int err = posix_memalign(&p, HUGE_PAGE_BYTES, bytes ? bytes : 1u);
    if (err != 0) {
        errno = err;
        return NULL;
    }
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint (see hal_linux.h) */
    return p;
}

static volatile sig_atomic_t sigint_pending;

static void on_sigint(int sig)
{
    (void)sig;
    sigint_pending = 1;
}

/* A serial line carries bytes, not a terminal's line editing: no echo, no CR/LF
 * translation, no signals from ^C. */
static int make_raw(int fd)
{
    struct termios t;
    if (!isatty(fd)) return 0;
    if (tcgetattr(fd, &t) != 0) return -1;
    cfmakeraw(&t);
    return tcsetattr(fd, TCSANOW, &t);
}

int hal_linux_console_open(hal_linux_console kind, const char *path, int fd)
{
    port.kind = kind;
    switch (kind) {
    case HAL_LINUX_STDIO:
        port.in_fd = STDIN_FILENO;
        port.out_fd = STDOUT_FILENO;
        return 0;
    case HAL_LINUX_TTY:
        fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) return -1;
        break;
    case HAL_LINUX_PTY_FD:
        if (fcntl(fd, F_GETFD) < 0) return -1;
        break;
    case HAL_LINUX_NO_INPUT: {
        struct sigaction sa = {.sa_handler = on_sigint};
        port.in_fd = -1;
        port.out_fd = STDOUT_FILENO;
        return sigaction(SIGINT, &sa, NULL);
    }
    }
    port.in_fd = port.out_fd = fd;
    return make_raw(fd);
}

void hal_linux_set_blob(const uint8_t *blob, size_t bytes)
{
    port.blob = blob;
    port.blob_bytes = bytes;
}

int hal_linux_input_closed(void) { return port.closed; }

void hal_init(void)
{
    /* a reader that went away shows up as EPIPE from write(), not as a fatal signal */
    signal(SIGPIPE, SIG_IGN);
}

void hal_write(const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    while (n > 0) {
        const ssize_t w = write(port.out_fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* the other side is gone (EIO, EPIPE): like an unplugged UART */
        p += w;
        n -= (size_t)w;
    }
}

uint64_t hal_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hal_ticks_per_second(void) { return 1000000000u; }

static int remaining_ms(uint64_t deadline)
{
    const uint64_t now = hal_ticks();
    return now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
}

int hal_read_byte(uint32_t timeout_ms)
{
    if (port.in_pos < port.in_len) return port.in[port.in_pos++];
    const uint64_t deadline = hal_ticks() + (uint64_t)timeout_ms * 1000000u;
    if (port.kind == HAL_LINUX_NO_INPUT) {
        if (timeout_ms && !sigint_pending) poll(NULL, 0, remaining_ms(deadline));
        if (!sigint_pending) return -1;
        sigint_pending = 0;
        return CTRL_C;
    }
    while (!port.closed) {
        struct pollfd p = {.fd = port.in_fd, .events = POLLIN};
        const int ready = poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) return -1;
        const ssize_t got = ready > 0 ? read(port.in_fd, port.in, sizeof port.in) : -1;
        if (got > 0) {
            port.in_len = (size_t)got;
            port.in_pos = 1;
            return port.in[0];
        }
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (port.kind != HAL_LINUX_PTY_FD) {
            port.closed = 1; /* end of file, or the device hung up (EIO) */
            break;
        }
        /* EIO on a pty master: nobody has the other side open right now; it may be
         * opened again (the host reconnects), so wait instead of ending. */
        const int wait_ms = remaining_ms(deadline);
        if (wait_ms == 0) return -1;
        poll(NULL, 0, wait_ms < REOPEN_POLL_MS ? wait_ms : REOPEN_POLL_MS);
    }
    return -1;
}

const uint8_t *hal_blob(size_t *region_bytes)
{
    *region_bytes = port.blob_bytes;
    return port.blob;
}
