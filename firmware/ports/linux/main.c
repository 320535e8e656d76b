/* main.c - mote-linux: the runtime as a Linux process. It maps the blob read-only,
 * allocates the arena (the only allocation: the core never allocates), and either
 * speaks the serial protocol (docs/serial-protocol.md) on stdin/stdout, a tty or an
 * inherited pty master, or runs one prompt for scripts and benchmarks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <signal.h>

#include "console.h"
#include "hal.h"
#include "hal_linux.h"
#include "threads.h"

#define EXIT_USAGE 2
#define ARENA_ALIGN 64u

static const char usage[] =
    "usage: mote-linux BLOB [--tty PATH | --tty-fd FD] [--threads N] [--ctx N] [--batch N]\n"
    "       mote-linux BLOB --prompt TEXT [-n N] [--temp T] [--topp P] [--topk K] [--seed S]\n"
    "                       [--system TEXT] [--threads N] [--ctx N] [--batch N]\n"
    "       mote-linux BLOB --info [--ctx N]\n"
    "Speaks the Mote serial protocol on stdin/stdout, on the tty at PATH (raw mode), or\n"
    "on the pty master FD inherited from the parent (which holds the other side; when\n"
    "that side closes, mote-linux waits for it to be opened again). --prompt prints only\n"
    "the generated text, and the stats line on stderr. Settings default as the console's.\n"
    "A chat model's prompt is one user turn after the system prompt (--system: another,\n"
    "\"\" for none; the default is the blob's). --batch: prompt positions per prefill\n"
    "pass, 1..64 (default 64; each adds its activations to the arena).\n";

typedef struct {
    const char *blob_path, *tty_path, *prompt;
    int tty_fd, info;
    unsigned long threads, ctx, batch;
    /* one-shot settings as text (NULL: the default), applied through the console's
     * own parser; indexed like setting_names */
    const char *settings[6];
} options;

static const char *const setting_names[6] = {"n", "temp", "topp", "topk", "seed", "system"};

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "mote-linux: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return EXIT_USAGE;
}

static int parse_count(const char *text, unsigned long *out)
{
    char *end;
    errno = 0;
    const unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') return 0;
    *out = v;
    return 1;
}

/* Returns -1 when the arguments are fine, else the exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"tty", required_argument, NULL, 'T'},   {"tty-fd", required_argument, NULL, 'F'},
        {"threads", required_argument, NULL, 'j'}, {"ctx", required_argument, NULL, 'c'},
        {"batch", required_argument, NULL, 'b'},
        {"prompt", required_argument, NULL, 'p'}, {"temp", required_argument, NULL, 't'},
        {"topp", required_argument, NULL, 'P'},   {"topk", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},   {"info", no_argument, NULL, 'i'},
        {"system", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    unsigned long fd = 0;
    int opt;
    memset(o, 0, sizeof *o);
    o->tty_fd = -1;
    o->threads = 1;
    o->batch = MOTE_MAX_BATCH;
    while ((opt = getopt_long(argc, argv, "n:h", longs, NULL)) != -1) {
        switch (opt) {
        case 'T': o->tty_path = optarg; break;
        case 'F':
            if (!parse_count(optarg, &fd) || fd > 65535u) return fail("bad --tty-fd", optarg);
            o->tty_fd = (int)fd;
            break;
        case 'j':
            if (!parse_count(optarg, &o->threads) || o->threads < 1u ||
                o->threads > MOTE_THREADS_MAX)
                return fail("--threads must be 1..64", optarg);
            break;
        case 'b':
            if (!parse_count(optarg, &o->batch) || o->batch < 1u || o->batch > MOTE_MAX_BATCH)
                return fail("--batch must be 1..64", optarg);
            break;
        case 'c':
            if (!parse_count(optarg, &o->ctx) || o->ctx < 1u || o->ctx > 0xFFFFFFFFu)
                return fail("bad --ctx", optarg);
            break;
        case 'p': o->prompt = optarg; break;
        case 'n': o->settings[0] = optarg; break;
        case 't': o->settings[1] = optarg; break;
        case 'P': o->settings[2] = optarg; break;
        case 'k': o->settings[3] = optarg; break;
        case 's': o->settings[4] = optarg; break;
        case 'S': o->settings[5] = optarg; break;
        case 'i': o->info = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    o->blob_path = argv[optind];
    if (o->tty_path && o->tty_fd >= 0) return fail("--tty and --tty-fd exclude each other", NULL);
    if ((o->prompt || o->info) && (o->tty_path || o->tty_fd >= 0))
        return fail("--prompt and --info print to stdout; drop --tty/--tty-fd", NULL);
    int any_setting = 0;
    for (int i = 0; i < 6; i++) any_setting |= o->settings[i] != NULL;
    if (any_setting && !o->prompt) return fail("-n, --temp, --topp, --topk, --seed and --system need --prompt; a console sets them with /commands", NULL);
    return -1;
}

/* The blob is read into private memory rather than mapped: a file rewritten in place
 * while the port runs (`cp new.mote model.mote`, an editor, a second convert) would
 * otherwise change or truncate the bytes under a running forward pass (SIGBUS, or a
 * model that no longer matches what was validated). The copy costs the blob's size in
 * RAM, which this tier of board has, and sits in huge pages where the kernel gives
 * them (hal_linux_alloc_blob). An empty file gives no blob, which the console reports
 * as truncated. */
static int read_blob(const char *path, const uint8_t **blob, size_t *bytes)
{
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return fail(path, strerror(errno));
    *bytes = (size_t)st.st_size;
    *blob = NULL;
    void *copy = NULL;
    if (*bytes && (copy = hal_linux_alloc_blob(*bytes)) == NULL) {
        close(fd);
        return fail(path, strerror(ENOMEM));
    }
    size_t got = 0;
    while (got < *bytes) {
        const ssize_t n = read(fd, (uint8_t *)copy + got, *bytes - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return fail(path, n < 0 ? strerror(errno) : "file shrank while being read");
        }
        got += (size_t)n;
    }
    close(fd);
    *blob = copy;
    return -1;
}

static void print_info(const mote_model *m, uint32_t ctx, uint32_t batch)
{
    static const char *const dtypes[MOTE_DTYPE_CODES] = MOTE_DTYPE_NAMES_INIT;
    const mote_config *k = &m->config;
    printf("model=%s\ndim=%u\nhidden_dim=%u\nn_layers=%u\nn_heads=%u\nn_kv_heads=%u\n"
           "head_dim=%u\nvocab_size=%u\nmax_seq_len=%u\nactivation=%s\ngroup_size=%u\n"
           "quant=%s\nblob_bytes=%u\nctx=%u\narena_bytes=%u\n",
           k->name, k->dim, k->hidden_dim, k->n_layers, k->n_heads, k->n_kv_heads, k->head_dim,
           k->vocab_size, k->max_seq_len, k->activation == MOTE_ACT_RELU ? "relu" : "silu",
           k->group_size, dtypes[m->layers[0].wq.dtype], m->blob_bytes, ctx,
           mote_arena_bytes(k, ctx));
    printf("prefill_batch=%u\narena_allocated=%u\n", batch,
           mote_arena_bytes_batch(k, ctx, batch) + mote_rope_table_bytes(k, ctx));
}

static int run_one_shot(mote_console *c, const options *o)
{
    for (int i = 0; i < 6; i++) {
        const char *err = o->settings[i] ? mote_console_set(c, setting_names[i], o->settings[i]) : NULL;
        if (err) {
            fprintf(stderr, "mote-linux: %s (got '%s')\n", err, o->settings[i]);
            return EXIT_USAGE;
        }
    }
    mote_gen_stats stats;
    const char *err = mote_console_generate(c, o->prompt, (uint32_t)strlen(o->prompt), 0, &stats);
    if (err) return fail(err, NULL);
    char line[256]; /* as the console's own stats line */
    mote_console_format_stats(&stats, line, sizeof line);
    if (isatty(STDOUT_FILENO)) fputc('\n', stdout); /* stdout itself gets only the text */
    fflush(stdout);
    fprintf(stderr, "%s\n", line);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0) return status;

    const uint8_t *blob = NULL;
    size_t blob_bytes = 0;
    if ((status = read_blob(o.blob_path, &blob, &blob_bytes)) >= 0) return status;
    hal_linux_set_blob(blob, blob_bytes);

    /* Size the arena from the header. The CRC is checked here too, so every mode names
     * a corrupted blob by its CRC first, as the console and the host reader do. */
    static mote_model probe;
    const mote_status probed = mote_model_open(&probe, blob, blob_bytes, 1);
    const uint32_t ctx = o.ctx ? (uint32_t)o.ctx : probe.config.ctx_len;
    const int one_shot = o.prompt || o.info;
    if (probed != MOTE_OK && one_shot) return fail(o.blob_path, mote_status_str(probed));
    if (probed == MOTE_OK && ctx > probe.config.max_seq_len) {
        fprintf(stderr, "mote-linux: --ctx %u exceeds the model's max_seq_len %u\n", ctx,
                probe.config.max_seq_len);
        return EXIT_USAGE;
    }
    if (o.info) {
        print_info(&probe, ctx, (uint32_t)o.batch);
        return 0;
    }
    /* the blob's own arena plus the activations of wider prefill passes and the RoPE
     * table of every position */
    const size_t arena_bytes =
        probed == MOTE_OK ? (size_t)mote_arena_bytes_batch(&probe.config, ctx, (uint32_t)o.batch) +
                                mote_rope_table_bytes(&probe.config, ctx)
                          : 0u;
    void *arena = NULL;
    if (arena_bytes && posix_memalign(&arena, ARENA_ALIGN, arena_bytes) != 0)
        return fail("cannot allocate the arena", strerror(ENOMEM));

    hal_linux_console kind = HAL_LINUX_STDIO;
    if (o.prompt) kind = HAL_LINUX_NO_INPUT;
    else if (o.tty_path) kind = HAL_LINUX_TTY;
    else if (o.tty_fd >= 0) kind = HAL_LINUX_PTY_FD;
    if (kind == HAL_LINUX_PTY_FD) {
        /* the parent holds the other side; when it dies nobody can reopen it */
        const pid_t parent = getppid();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) return 0;
    }
    if (hal_linux_console_open(kind, o.tty_path, o.tty_fd) != 0)
        return fail(o.tty_path ? o.tty_path : "console", strerror(errno));
    hal_init();

    static mote_console console; /* ~25 KB (model views, line, prompt ids): not on the stack */
    const mote_console_config cfg = {.board = "linux",
                                     .arena = arena,
                                     .arena_bytes = arena_bytes,
                                     .ctx = ctx,
                                     /* a terminal on stdin echoes by itself */
                                     .echo = kind == HAL_LINUX_TTY || kind == HAL_LINUX_PTY_FD};
    const mote_status opened = mote_console_init(&console, &cfg);
    mote_threads pool;
    if (opened == MOTE_OK && o.threads > 1u) {
        if (mote_threads_start(&pool, (uint32_t)o.threads) != 0)
            return fail("cannot start threads", strerror(errno));
        mote_threads_attach(&pool, &console.state);
    }
    if (one_shot) {
        status = opened == MOTE_OK ? run_one_shot(&console, &o)
                                   : fail(o.blob_path, mote_status_str(opened));
    } else {
        mote_console_banner(&console);
        while (!hal_linux_input_closed()) {
            const int b = hal_read_byte(1000u);
            if (b >= 0) mote_console_input(&console, (uint8_t)b);
        }
        status = 0;
    }
    if (opened == MOTE_OK && o.threads > 1u) mote_threads_stop(&pool);
    free(arena);
    return status;
}
