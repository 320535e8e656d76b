/* generate.c - see generate.h. The loop is host/mote/reference's generate: prefill,
 * then sample, stop, emit, forward, so the same seed gives the same tokens. A step of
 * mote_gen_step is forward (the token emitted last), stop, sample, emit. */
#include "generate.h"

#include <string.h>

int32_t mote_gen_encode(const mote_tokenizer *t, const char *text, uint32_t len, int32_t *ids,
                        uint32_t cap)
{
    const int add_bos = t->kind == MOTE_TOK_KIND_LLAMA2C;
    return mote_tok_encode(t, text, len, add_bos, ids, cap);
}

const char *mote_end_name(mote_end end)
{
    static const char *const names[] = {"eos", "length", "context", "stopped", "numeric"};
    return (uint32_t)end < sizeof names / sizeof names[0] ? names[end] : "?";
}

static int is_end_token(const mote_tokenizer *t, const mote_gen_io *io, int32_t token)
{
    uint32_t i;
    for (i = 0; i < io->n_stop_ids; i++)
        if (token == io->stop_ids[i]) return 1;
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

/* n ids at positions pos.. in one pass (mote_prefill), recorded in the token history,
 * its last logits shown to the logits observer. */
static float *forward(mote_state *s, const mote_gen_io *io, const int32_t *tokens, uint32_t n,
                      uint32_t pos)
{
    float *logits;
    /* memmove: a re-prefill (chat.c) passes the history itself */
    if (s->tokens) memmove(s->tokens + pos, tokens, n * sizeof *tokens);
    logits = mote_prefill(s, tokens, n, pos);
    if (io->logits) io->logits(io->ctx, pos + n - 1u, logits);
    return logits;
}

/* End the generation: final stats, and the text still held back. Returns 0. */
static int finish(mote_gen *g, mote_end end)
{
    const mote_gen_io *io = g->io;
    g->ended = 1;
    g->stats.end = end;
    g->stats.end_pos = g->pos;
    /* n or the context reached: the token emitted last was never run */
    g->stats.unfed = end == MOTE_END_LENGTH || end == MOTE_END_CONTEXT ? g->last : -1;
    g->stats.decode_read_bytes = g->s->reads.bytes - g->prefill_read_bytes;
    if (io->write) emit(io, mote_tok_decode_flush(&g->dec, io->text, io->text_cap));
    g->stats.total_ticks = now(io) - g->start;
    return 0;
}

mote_status mote_gen_start(mote_gen *g, mote_state *s, mote_sampler *smp, const int32_t *prompt,
                           uint32_t n_prompt, uint32_t start, const mote_gen_io *io)
{
    const uint32_t vocab = s->model->config.vocab_size;
    if (n_prompt == 0u) return MOTE_E_ARG;
    if (start >= s->ctx || n_prompt >= s->ctx - start) return MOTE_E_CONTEXT;
    for (uint32_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= vocab) return MOTE_E_ARG;

    memset(g, 0, sizeof *g);
    g->s = s;
    g->smp = smp;
    g->io = io;
    g->last = -1;
    g->stats.prompt_tokens = n_prompt;
    g->stats.ticks_per_second = io->ticks_per_second;
    g->start = now(io);
    g->pos = start;
    int stopped = 0;
    /* the prompt in passes as wide as the arena allows, the stop request polled
     * before each */
    while (g->pos < start + n_prompt && !(stopped = stop_requested(io))) {
        const uint32_t left = start + n_prompt - g->pos;
        const uint32_t n = left < s->batch ? left : s->batch;
        g->logits = forward(s, io, prompt + (g->pos - start), n, g->pos);
        g->pos += n;
    }
    g->stats.prefill_ticks = now(io) - g->start;
    g->prefill_read_bytes = s->reads.bytes;
    mote_tok_decoder_init(&g->dec);
    if (stopped) finish(g, MOTE_END_STOPPED);
    return MOTE_OK;
}

int mote_gen_step(mote_gen *g)
{
    mote_state *s = g->s;
    const mote_gen_io *io = g->io;
    const mote_tokenizer *tok = &s->model->tokenizer;
    const uint32_t vocab = s->model->config.vocab_size;
    if (g->ended) return 0;
    if (g->stats.new_tokens == io->max_new_tokens) return finish(g, MOTE_END_LENGTH);
    if (g->last >= 0) {
        if (g->pos >= s->ctx) return finish(g, MOTE_END_CONTEXT);
        g->logits = forward(s, io, &g->last, 1u, g->pos++);
        g->stats.decode_passes++;
    }
    if (stop_requested(io)) return finish(g, MOTE_END_STOPPED);
    if (!all_finite(g->logits, vocab)) return finish(g, MOTE_END_NUMERIC);
    /* after the prompt the arena's scratch space belongs to the sampler */
    const int32_t token = mote_sample(g->smp, g->logits, vocab, s->scratch);
    if (io->stop_at_end && is_end_token(tok, io, token)) return finish(g, MOTE_END_EOS);
    if (io->token) io->token(io->ctx, token);
    if (io->write) emit(io, mote_tok_decode(tok, &g->dec, token, io->text, io->text_cap));
    g->stats.new_tokens++;
    g->last = token;
    return 1;
}

mote_status mote_generate(mote_state *s, mote_sampler *smp, const int32_t *prompt,
                          uint32_t n_prompt, uint32_t start, const mote_gen_io *io,
                          mote_gen_stats *stats)
{
    mote_gen g;
    const mote_status st = mote_gen_start(&g, s, smp, prompt, n_prompt, start, io);
    if (st != MOTE_OK) return st;
    while (mote_gen_step(&g)) {
    }
    *stats = g.stats;
    return MOTE_OK;
}
