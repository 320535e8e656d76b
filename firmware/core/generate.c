/* generate.c - see generate.h. The loop is host/mote/reference's generate: prefill,
 * then sample, stop, emit, forward, so the same seed gives the same tokens. */
#include "generate.h"

#include <string.h>

int32_t mote_gen_encode(const mote_tokenizer *t, const char *text, uint32_t len, int32_t *ids,
                        uint32_t cap)
{
    const int add_bos = t->kind == MOTE_TOK_KIND_LLAMA2C;
    return mote_tok_encode(t, text, len, add_bos, ids, cap);
}

static int is_end_token(const mote_tokenizer *t, int32_t token)
{
    /* llama2.c-trained models end a story with BOS, Hugging Face ones with EOS */
    return token == t->eos_id || token == t->bos_id;
}

/* Validation refuses non-finite stored values, but finite weights can still overflow
 * float (a norm of 1e38, say); the sampler would read such logits as token 0. */
static int all_finite(const float *x, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!(x[i] - x[i] == 0.0f)) return 0; /* inf - inf and NaN - NaN are NaN */
    return 1;
}

static int stop_requested(const mote_gen_io *io) { return io->stop && io->stop(io->ctx); }

static uint64_t now(const mote_gen_io *io) { return io->ticks ? io->ticks() : 0u; }

static void emit(const mote_gen_io *io, uint32_t n)
{
    if (n) io->write(io->ctx, io->text, n);
}

/* One forward pass, shown to the logits observer. */
static float *forward(mote_state *s, const mote_gen_io *io, int32_t token, uint32_t pos)
{
    float *logits = mote_forward(s, token, pos);
    if (io->logits) io->logits(io->ctx, pos, logits);
    return logits;
}

mote_status mote_generate(mote_state *s, mote_sampler *smp, const int32_t *prompt,
                          uint32_t n_prompt, const mote_gen_io *io, mote_gen_stats *stats)
{
    const mote_tokenizer *tok = &s->model->tokenizer;
    const uint32_t vocab = s->model->config.vocab_size;
    if (n_prompt == 0u) return MOTE_E_ARG;
    if (n_prompt >= s->ctx) return MOTE_E_CONTEXT;
    for (uint32_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= vocab) return MOTE_E_ARG;

    memset(stats, 0, sizeof *stats);
    stats->prompt_tokens = n_prompt;
    stats->ticks_per_second = io->ticks_per_second;
    stats->end = MOTE_END_LENGTH;
    const uint64_t start = now(io);
    float *logits = NULL;
    uint32_t pos = 0;
    int stopped = 0;
    for (; pos < n_prompt && !stopped; pos++) {
        stopped = stop_requested(io);
        if (!stopped) logits = forward(s, io, prompt[pos], pos);
    }
    stats->prefill_ticks = now(io) - start;
    const uint64_t prefill_read_bytes = s->reads.bytes;

    mote_tok_decoder dec;
    mote_tok_decoder_init(&dec);
    while (!stopped && stats->new_tokens < io->max_new_tokens) {
        if (stop_requested(io)) {
            stopped = 1;
            break;
        }
        if (!all_finite(logits, vocab)) {
            stats->end = MOTE_END_NUMERIC;
            break;
        }
        /* after the prompt the arena's scratch space belongs to the sampler */
        const int32_t token = mote_sample(smp, logits, vocab, s->scratch);
        if (io->stop_at_end && is_end_token(tok, token)) {
            stats->end = MOTE_END_EOS;
            break;
        }
        if (io->token) io->token(io->ctx, token);
        if (io->write) emit(io, mote_tok_decode(tok, &dec, token, io->text, io->text_cap));
        stats->new_tokens++;
        if (stats->new_tokens == io->max_new_tokens) break;
        if (pos >= s->ctx) {
            stats->end = MOTE_END_CONTEXT;
            break;
        }
        logits = forward(s, io, token, pos++);
        stats->decode_passes++;
    }
    stats->decode_read_bytes = s->reads.bytes - prefill_read_bytes;
    if (stopped) stats->end = MOTE_END_STOPPED;
    if (io->write) emit(io, mote_tok_decode_flush(&dec, io->text, io->text_cap));
    stats->total_ticks = now(io) - start;
    return MOTE_OK;
}
