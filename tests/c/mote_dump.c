/* mote_dump.c - test driver for the runtime core: loads a blob, runs a prompt (token
 * ids or text through mote_tok_encode), then generates, printing what the golden
 * tests compare with the numpy reference:
 *
 *   prompt <id> <id> ...
 *   logits <pos> <v0> <v1> ...     (positions < --logits, %.9g)
 *   tokens <id> <id> ...           (generated)
 *   reads <pos> <rows> <cols> <bytes>   (with --reads: weights read at each position)
 *
 * and "open <status>" instead when mote_model_open refuses the blob.
 * usage: mote_dump BLOB (--tokens 1,2,3 | --prompt TEXT) [--logits N] [-n N]
 *                  [--temp T] [--top-p P] [--top-k K] [--seed S] [--ctx N] [--threads N]
 *                  [--no-crc] [--time] [--reads] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mote.h"
#include "threads.h"

static void usage(void)
{
    fprintf(stderr, "usage: mote_dump BLOB (--tokens IDS | --prompt TEXT) [--logits N] [-n N] "
                    "[--temp T] [--top-p P] [--top-k K] [--seed S] [--ctx N] [--threads N] "
                    "[--no-crc] [--time] [--reads]\n");
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
    buf = malloc((size_t)size + 1u);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "mote_dump: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *token_list = NULL, *prompt = NULL;
    unsigned long n_logits = 0, n_new = 0, ctx = 0, threads = 1, top_k = 0;
    unsigned long long seed = 0;
    float temperature = 0.0f, top_p = 1.0f;
    int check_crc = 1, timing = 0, reads = 0, i;
    mote_reads before;
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
    uint32_t pos, produced = 0;
    float *logits = NULL;
    double t_start, t_prefill = 0.0;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-crc")) { check_crc = 0; continue; }
        if (!strcmp(a, "--time")) { timing = 1; continue; }
        if (!strcmp(a, "--reads")) { reads = 1; continue; }
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
        else usage();
    }
    if (!path || (!token_list && !prompt))
        usage();

    blob = read_file(path, &len);
    st = mote_model_open(&model, blob, len, check_crc);
    if (st != MOTE_OK) {
        printf("open %d %s\n", (int)st, mote_status_str(st));
        free(blob);
        return 1;
    }
    len = mote_arena_bytes(&model.config, ctx ? (uint32_t)ctx : model.config.ctx_len);
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

    ids = malloc(sizeof *ids * (size_t)(state.ctx + MOTE_LINE_MAX + 2u));
    if (prompt) {
        const uint32_t n = (uint32_t)strlen(prompt);
        n_ids = mote_tok_encode(&model.tokenizer, prompt, n, 1, ids, n + 2u);
        if (n_ids < 0) {
            fprintf(stderr, "mote_dump: cannot encode the prompt\n");
            return 2;
        }
    } else {
        const char *p = token_list;
        while (*p) {
            char *end;
            ids[n_ids++] = (int32_t)strtol(p, &end, 10);
            if (end == p || n_ids > (int32_t)state.ctx) usage();
            p = *end == ',' ? end + 1 : end;
        }
    }
    if (n_ids == 0 || (uint32_t)n_ids > state.ctx) {
        fprintf(stderr, "mote_dump: prompt of %d tokens does not fit the context\n", n_ids);
        return 2;
    }
    printf("prompt");
    for (i = 0; i < n_ids; i++)
        printf(" %d", ids[i]);
    printf("\n");

    mote_sampler_init(&sampler, temperature, top_p, (uint32_t)top_k, seed);
    t_start = now_seconds();
    for (pos = 0;; pos++) {
        const int32_t token = (int32_t)pos < n_ids ? ids[pos] : -1;
        uint32_t v;
        before = state.reads;
        if (token < 0) {
            /* generating: sample from the previous position's logits */
            int32_t next;
            if (produced == n_new)
                break;
            next = mote_sample(&sampler, logits, model.config.vocab_size, state.scratch);
            ids[pos] = next;
            produced++;
            if (pos >= state.ctx || produced == n_new)
                break;
            logits = mote_forward(&state, next, pos);
        } else {
            logits = mote_forward(&state, token, pos);
        }
        if (!logits) {
            fprintf(stderr, "mote_dump: forward failed at position %u\n", pos);
            return 1;
        }
        if ((int32_t)pos == n_ids - 1)
            t_prefill = now_seconds();
        if (reads)
            printf("reads %u %llu %llu %llu\n", pos,
                   (unsigned long long)(state.reads.rows - before.rows),
                   (unsigned long long)(state.reads.cols - before.cols),
                   (unsigned long long)(state.reads.bytes - before.bytes));
        if (pos < n_logits) {
            printf("logits %u", pos);
            for (v = 0; v < model.config.vocab_size; v++)
                printf(" %.9g", (double)logits[v]);
            printf("\n");
        }
    }
    printf("tokens");
    for (i = 0; i < (int32_t)produced; i++)
        printf(" %d", ids[n_ids + i]);
    printf("\n");
    if (timing) {
        const double gen = now_seconds() - t_prefill;
        fprintf(stderr, "time prefill_s %.6f gen_s %.6f new_tokens %u tok_s %.1f\n",
                t_prefill - t_start, gen, produced, gen > 0 ? (double)produced / gen : 0.0);
    }
    if (threads > 1)
        mote_threads_stop(&pool);
    free(ids);
    free(arena);
    free(blob);
    return 0;
}
