/* generate.h - one generation: prefill the prompt ids, then sample and run tokens,
 * streaming their text as complete UTF-8 characters, until an end token, the token
 * limit, the end of the context or a stop request; with stats. The console, the Linux
 * one-shot mode and tests/c/mote_dump.c all generate through it. No OS, no malloc, no
 * globals: the model state and every buffer come from the caller, the outside world
 * through the callbacks of mote_gen_io. */
#ifndef MOTE_GENERATE_H
#define MOTE_GENERATE_H

#include <stdint.h>

#include "mote.h"

/* Why a generation ended; the console's stats line names it (end=...). */
typedef enum {
    MOTE_END_EOS = 0, /* the model produced an end-of-text token (EOS or BOS) */
    MOTE_END_LENGTH,  /* max_new_tokens reached */
    MOTE_END_CONTEXT, /* the context is full */
    MOTE_END_STOPPED, /* the stop callback asked for it */
    MOTE_END_NUMERIC, /* a logit came out NaN or infinite: the model's arithmetic overflowed */
} mote_end;

/* The end's name in the console's stats line (end=eos, ...). */
const char *mote_end_name(mote_end end);

typedef struct {
    uint32_t prompt_tokens; /* including BOS */
    uint32_t new_tokens;    /* generated and streamed (an ending EOS is not counted) */
    uint64_t prefill_ticks; /* prompt forward passes */
    uint64_t total_ticks;   /* prefill + generation */
    uint64_t ticks_per_second;
    uint64_t decode_read_bytes; /* weight bytes the generation's forward passes read */
    uint32_t decode_passes;     /* those forward passes */
    mote_end end;
    uint32_t end_pos;       /* positions of the KV cache filled when it ended */
    int32_t unfed;          /* the last token streamed but not run (n or the context
                             * reached), or -1 */
} mote_gen_stats;

/* How a generation talks to its caller. Every callback may be NULL (nothing) and gets
 * `ctx`. */
typedef struct {
    uint32_t max_new_tokens;
    /* 1: EOS or BOS ends the generation, as the console and host/mote's generate with
     * stop ids; 0: they are generated like any token (the golden reference runs). */
    int stop_at_end;
    /* More ids that end it (a chat template's end-of-turn tokens), n_stop_ids of them. */
    const int32_t *stop_ids;
    uint32_t n_stop_ids;
    /* The new tokens' text, piece by piece, decoded into text[0, text_cap) (a piece
     * longer than that loses characters; MOTE_TOK_DECODE_CAP(max_token_bytes) never
     * does); without it no text is decoded. */
    void (*write)(void *ctx, const char *text, uint32_t len);
    char *text;
    uint32_t text_cap;
    /* Polled before every forward pass and every sampled token; nonzero stops. */
    int (*stop)(void *ctx);
    /* Each new token's id, before its text. */
    void (*token)(void *ctx, int32_t token);
    /* After each forward pass: the position of its last token and the logits it gave
     * (for test drivers). The prompt runs in passes of up to s->batch ids (mote_prefill),
     * each new token in a pass of its own. */
    void (*logits)(void *ctx, uint32_t pos, const float *logits);
    /* A free-running clock for the stats times (hal_ticks on a port). */
    uint64_t (*ticks)(void);
    uint64_t ticks_per_second;
    void *ctx;
} mote_gen_io;

/* Encode `len` bytes of UTF-8 prompt text into ids (cap >= len + 2) with the one BOS
 * rule: llama2.c models were trained with BOS before every text and get it; the Hugging
 * Face (byte-level) models were trained on plain text and get none (host/mote/eval
 * adds_bos). Returns the id count, or -1 as mote_tok_encode. */
int32_t mote_gen_encode(const mote_tokenizer *t, const char *text, uint32_t len, int32_t *ids,
                        uint32_t cap);

/* Generate from `n_prompt` ids run at positions start.. of `s` (start + n_prompt <
 * s->ctx; positions before start hold an earlier part of the same text, as in a
 * conversation), sampling with `smp` (its scratch is s->scratch). With s->tokens, every
 * id run is recorded there at its position (`prompt` may point into it). Returns
 * MOTE_OK with `stats` filled, MOTE_E_ARG for no prompt, MOTE_E_CONTEXT for a prompt the
 * context cannot hold (both before any work), or MOTE_E_ARG when a prompt id is outside
 * the vocabulary. */
mote_status mote_generate(mote_state *s, mote_sampler *smp, const int32_t *prompt,
                          uint32_t n_prompt, uint32_t start, const mote_gen_io *io,
                          mote_gen_stats *stats);

/* The same generation one token at a time, for a caller that must return to its own
 * loop between tokens (an iterator: bindings/micropython/). mote_generate is exactly
 * mote_gen_start, then mote_gen_step until it returns 0. The fields are private but
 * `stats`, final once mote_gen_step has returned 0. */
typedef struct {
    mote_state *s;
    mote_sampler *smp;
    const mote_gen_io *io;
    float *logits;     /* of the last forward pass */
    uint32_t pos;      /* position of the next forward pass */
    int32_t last;      /* the token emitted last, not yet run */
    int ended;
    uint64_t start, prefill_read_bytes;
    mote_tok_decoder dec;
    mote_gen_stats stats;
} mote_gen;

/* Check the prompt as mote_generate does (same statuses, before any work), then run
 * it through the model (the prefill; `io->stop` is polled before every pass). `io`
 * must outlive the generation; `prompt` is not read after this returns. */
mote_status mote_gen_start(mote_gen *g, mote_state *s, mote_sampler *smp, const int32_t *prompt,
                           uint32_t n_prompt, uint32_t start, const mote_gen_io *io);

/* Run the token emitted last, then sample, announce and write the next one. Returns 1
 * when a token was emitted; 0 when the generation has ended (then the stats are final
 * and held-back text has been written; every later call returns 0 too). */
int mote_gen_step(mote_gen *g);

#endif /* MOTE_GENERATE_H */
