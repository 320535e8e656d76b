/* mote_dump.c - test driver for the runtime core: loads a blob, runs a prompt (token
 * ids, or text through mote_gen_encode and its BOS rule), then generates with
 * mote_generate (through end tokens, as the reference does), printing what the golden
 * tests compare with the numpy reference:
 *
 *   prompt <id> <id> ...
 *   logits <pos> <v0> <v1> ...     (positions < --logits that end a forward pass, %.9g:
 *                                   every position with --batch 1, the default)
 *   tokens <id> <id> ...           (generated)
 *   reads <pos> <rows> <cols> <bytes>   (with --reads: weights read by each forward pass)
 *
 * and "open <status>" instead when mote_model_open refuses the blob.
 * usage: mote_dump BLOB (--tokens 1,2,3 | --prompt TEXT) [--logits N] [-n N]
 *                  [--temp T] [--top-p P] [--top-k K] [--seed S] [--ctx N] [--threads N]
 *                  [--batch N] [--no-rope-table] [--no-crc] [--time] [--reads]
 * --batch N gives the state the arena of N positions per prefill pass (1..MOTE_MAX_BATCH)
 * and of the RoPE table of every position, which --no-rope-table leaves out (each pass
 * then computes its positions' rows). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "hal_linux.h"
#include "mote.h"
#include "threads.h"

static void usage(void)
{
    fprintf(stderr, "usage: mote_dump BLOB (--tokens IDS | --prompt TEXT) [--logits N] [-n N] "
                    "[--temp T] [--top-p P] [--top-k K] [--seed S] [--ctx N] [--threads N] "
                    "[--batch N] [--no-rope-table] [--no-crc] [--time] [--reads]\n");
    exit(2);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "mote_dump: cannot read %s\n", path);
        exit(2);
    }
    buf = hal_linux_alloc_blob((size_t)size + 1u);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "mote_dump: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What the generation callbacks print and collect. */
typedef struct {
    const mote_state *state;
    unsigned long n_logits;
    int reads;
    mote_reads before; /* the counters after the previous forward pass */
    int32_t *tokens;   /* generated ids */
    uint32_t produced;
} dump;

static void on_logits(void *ctx, uint32_t pos, const float *logits)
{
    dump *d = ctx;
    const mote_reads now = d->state->reads;
    uint32_t v;
    if (d->reads)
        printf("reads %u %llu %llu %llu\n", pos, (unsigned long long)(now.rows - d->before.rows),
               (unsigned long long)(now.cols - d->before.cols),
               (unsigned long long)(now.bytes - d->before.bytes));
    d->before = now;
    if (pos < d->n_logits) {
        printf("logits %u", pos);
        for (v = 0; v < d->state->model->config.vocab_size; v++)
            printf(" %.9g", (double)logits[v]);
        printf("\n");
    }
}

static void on_token(void *ctx, int32_t token)
{
    dump *d = ctx;
    d->tokens[d->produced++] = token;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *token_list = NULL, *prompt = NULL;
    unsigned long n_logits = 0, n_new = 0, ctx = 0, threads = 1, top_k = 0, batch = 1;
    unsigned long long seed = 0;
    float temperature = 0.0f, top_p = 1.0f;
    int check_crc = 1, timing = 0, reads = 0, rope_table = 1, i;
    size_t len;
    uint8_t *blob;
    void *arena;
    int32_t *ids;
    int32_t n_ids = 0;
    static mote_model model;
    mote_state state;
    mote_sampler sampler;
    mote_threads pool;
    mote_status st;
    mote_gen_io io = {0};
    mote_gen_stats stats;
    dump out;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-crc")) { check_crc = 0; continue; }
        if (!strcmp(a, "--time")) { timing = 1; continue; }
        if (!strcmp(a, "--reads")) { reads = 1; continue; }
        if (!strcmp(a, "--no-rope-table")) { rope_table = 0; continue; }
        if (a[0] != '-') { path = a; continue; }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--tokens")) token_list = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--logits")) n_logits = strtoul(v, NULL, 10);
        else if (!strcmp(a, "-n")) n_new = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--temp")) temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-p")) top_p = strtof(v, NULL);
        else if (!strcmp(a, "--top-k")) top_k = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--ctx")) ctx = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--threads")) threads = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--batch")) batch = strtoul(v, NULL, 10);
        else usage();
    }
    if (!path || (!token_list && !prompt) || batch < 1 || batch > MOTE_MAX_BATCH)
        usage();

    blob = read_file(path, &len);
    st = mote_model_open(&model, blob, len, check_crc);
    if (st != MOTE_OK) {
        printf("open %d %s\n", (int)st, mote_status_str(st));
        free(blob);
        return 1;
    }
    len = mote_arena_bytes_batch(&model.config, ctx ? (uint32_t)ctx : model.config.ctx_len,
                                 (uint32_t)batch);
    if (rope_table)
        len += mote_rope_table_bytes(&model.config, ctx ? (uint32_t)ctx : model.config.ctx_len);
    arena = malloc(len);
    st = arena ? mote_state_init(&state, &model, arena, len, (uint32_t)ctx) : MOTE_E_ARENA;
    if (st != MOTE_OK) {
        printf("state %d %s\n", (int)st, mote_status_str(st));
        free(arena);
        free(blob);
        return 1;
    }
    if (threads > 1) {
        if (mote_threads_start(&pool, (uint32_t)threads) != 0) {
            fprintf(stderr, "mote_dump: cannot start threads\n");
            return 2;
        }
        mote_threads_attach(&pool, &state);
    }

    /* the prompt's ids, or the encoder's workspace (a token per byte, BOS and the dummy
     * prefix), then the generated ids: at most one per position left */
    n_ids = prompt ? (int32_t)strlen(prompt) + 2 : (int32_t)state.ctx;
    ids = malloc(sizeof *ids * ((size_t)n_ids + state.ctx));
    if (prompt) {
        n_ids = mote_gen_encode(&model.tokenizer, prompt, (uint32_t)strlen(prompt), ids,
                                (uint32_t)n_ids);
        if (n_ids < 0) {
            fprintf(stderr, "mote_dump: cannot encode the prompt\n");
            return 2;
        }
    } else {
        const char *p = token_list;
        n_ids = 0;
        while (*p) {
            char *end;
            if (n_ids == (int32_t)state.ctx) usage();
            ids[n_ids++] = (int32_t)strtol(p, &end, 10);
            if (end == p) usage();
            p = *end == ',' ? end + 1 : end;
        }
    }
    if (n_ids == 0 || (uint32_t)n_ids >= state.ctx) {
        fprintf(stderr, "mote_dump: prompt of %d tokens does not fit the context\n", n_ids);
        return 2;
    }
    printf("prompt");
    for (i = 0; i < n_ids; i++)
        printf(" %d", ids[i]);
    printf("\n");

    out.state = &state;
    out.n_logits = n_logits;
    out.reads = reads;
    out.before = state.reads;
    out.tokens = ids + n_ids;
    out.produced = 0;
    /* the golden reference generates through end tokens: no stop_at_end */
    io.max_new_tokens = (uint32_t)n_new;
    io.logits = on_logits;
    io.token = on_token;
    io.ticks = now_ns;
    io.ticks_per_second = 1000000000u;
    io.ctx = &out;
    mote_sampler_init(&sampler, temperature, top_p, (uint32_t)top_k, seed);
    st = mote_generate(&state, &sampler, ids, (uint32_t)n_ids, 0, &io, &stats);
    if (st != MOTE_OK) {
        fprintf(stderr, "mote_dump: %s\n", mote_status_str(st));
        return 1;
    }
    printf("tokens");
    for (i = 0; i < (int32_t)out.produced; i++)
        printf(" %d", out.tokens[i]);
    printf("\n");
    if (timing) {
        const double prefill = (double)stats.prefill_ticks * 1e-9;
        const double gen = (double)(stats.total_ticks - stats.prefill_ticks) * 1e-9;
        fprintf(stderr, "time prefill_s %.6f gen_s %.6f new_tokens %u decode_passes %u tok_s %.1f "
                "batch %u\n", prefill, gen, stats.new_tokens, stats.decode_passes,
                gen > 0 ? (double)stats.new_tokens / gen : 0.0, state.batch);
    }
    if (threads > 1)
        mote_threads_stop(&pool);
    free(ids);
    free(arena);
    free(blob);
    return 0;
}
