/* mote.h - the public API of the Mote runtime core: open a blob in place, size and
 * carve the arena, run the forward pass, sample. Portable C99, no OS, no malloc.
 * The blob layout and the arithmetic are specified in docs/blob-format.md. */
#ifndef MOTE_H
#define MOTE_H

#include <stddef.h>
#include <stdint.h>

#include "blob_format.h"
#include "tokenizer.h"

typedef enum {
    MOTE_OK = 0,
    MOTE_E_TRUNCATED,      /* blob shorter than its header or its total_bytes */
    MOTE_E_MAGIC,          /* not a .mote blob */
    MOTE_E_VERSION,        /* a format version this runtime does not read */
    MOTE_E_CRC,            /* contents do not match the CRC32 */
    MOTE_E_HEADER,         /* impossible hyperparameters */
    MOTE_E_TABLE,          /* tensor table entry out of bounds, misaligned, mis-shaped or overlapping */
    MOTE_E_TOKENIZER,      /* tokenizer section malformed */
    MOTE_E_SPARSITY,       /* sparsity section malformed */
    MOTE_E_CHAT,           /* chat section malformed */
    MOTE_E_VALUES,         /* a norm or a scale is NaN or infinite */
    MOTE_E_ARENA,          /* arena smaller than mote_arena_bytes() */
    MOTE_E_CONTEXT,        /* position or prompt beyond the context length */
    MOTE_E_ARG,            /* invalid argument */
} mote_status;

const char *mote_status_str(mote_status s);

/* codes as stored in the blob (blob_format.h, generated from host/mote/format/spec.py) */
typedef enum {
    MOTE_F32 = MOTE_DTYPE_F32, MOTE_Q8 = MOTE_DTYPE_Q8, MOTE_Q4 = MOTE_DTYPE_Q4,
    MOTE_Q4A = MOTE_DTYPE_Q4A
} mote_dtype;
/* f16 values per row and group in a quantized tensor's scales (spec.py's
 * SCALES_PER_GROUP): q4a stores its group's scale, then its offset. */
static inline uint32_t mote_scales_per_group(uint8_t dtype) { return dtype == MOTE_Q4A ? 2u : 1u; }
typedef enum {
    MOTE_ACT_SILU = MOTE_ACTIVATION_SILU, MOTE_ACT_RELU = MOTE_ACTIVATION_RELU
} mote_activation;

typedef struct {
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size;
    uint32_t max_seq_len; /* trained context */
    uint32_t ctx_len;     /* context the blob's arena_bytes is computed for */
    uint32_t arena_bytes; /* as stored in the blob */
    uint32_t group_size;
    uint32_t activation; /* mote_activation */
    uint32_t tied_classifier;
    uint32_t has_chat;    /* a chat section: the arena also keeps the token history */
    float rope_theta, norm_eps;
    char name[33];
} mote_config;

/* Weight layouts (docs/blob-format.md, "Sparsity section"): row-major; input-major
 * (column j's codes contiguous, the scales of input group g contiguous); or FFN
 * row-column bundles (w_up row j, its scales and w_down column j side by side). */
typedef enum {
    MOTE_LAYOUT_ROWS = MOTE_LAYOUT_CODE_ROWS, MOTE_LAYOUT_COLUMNS = MOTE_LAYOUT_CODE_COLUMNS,
    MOTE_LAYOUT_BUNDLED = MOTE_LAYOUT_CODE_BUNDLED
} mote_layout;

/* A weight matrix (or vector) viewed in place inside the blob. */
typedef struct {
    const void *data;       /* f32 values, or q8/q4/q4a codes row after row (see layout) */
    const uint16_t *scales; /* f16, rows x n_groups (q4a: scale, offset per group);
                               NULL for f32 and bundled */
    uint32_t rows, cols;
    uint8_t dtype;          /* mote_dtype */
    uint8_t layout;         /* mote_layout; a bundled w_down shares w_up's data */
} mote_tensor;

/* Dynamic activation sparsity: per layer and point, activations of magnitude at or
 * below the threshold are set to 0 before quantization, and the kernels skip the
 * weights of zero codes. flags == 0 (no sparsity section): dense. */
typedef enum {
    MOTE_SPARSE_ATTN_IN = MOTE_SPARSE_POINT_ATTN_IN,   /* wq/wk/wv input (TEAL) */
    MOTE_SPARSE_ATTN_OUT = MOTE_SPARSE_POINT_ATTN_OUT, /* wo input (TEAL) */
    MOTE_SPARSE_FFN_IN = MOTE_SPARSE_POINT_FFN_IN,     /* w_gate/w_up input (TEAL) */
    MOTE_SPARSE_GATE = MOTE_SPARSE_POINT_GATE,         /* activated gate: neurons (CATS) */
    MOTE_SPARSE_POINTS = MOTE_SPARSE_POINT_COUNT
} mote_sparse_point;

typedef struct {
    uint32_t flags;           /* bit p set: point p is sparsified */
    const float *thresholds;  /* (n_layers, MOTE_SPARSE_POINTS), inside the blob */
} mote_sparsity;

/* Weights actually read, summed over every token since mote_state_init: rows by
 * row kernels (dot products, the embedding row), columns by column kernels, bytes of
 * weight codes, scales and norm vectors. host/mote/format/sparsity.py counts the same. */
typedef struct {
    uint64_t rows, cols, bytes;
} mote_reads;

typedef struct {
    mote_tensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
} mote_layer;

/* The chat template (docs/blob-format.md, "Chat section"), viewed in place; the
 * console runs conversations with it (chat.h). n_stops == 0: a completion model. */
typedef struct {
    char name[MOTE_C_NAME_BYTES + 1];
    uint32_t n_stops;
    int32_t stops[MOTE_CHAT_MAX_STOPS];       /* ids that end a reply */
    const uint8_t *segment[MOTE_CHAT_SEGMENTS]; /* MOTE_CHAT_SEG_*: bytes inside the blob */
    uint32_t segment_bytes[MOTE_CHAT_SEGMENTS];
} mote_chat;

typedef struct {
    mote_config config;
    mote_tensor tok_embedding, final_norm, classifier; /* classifier == tok_embedding if tied */
    mote_layer layers[MOTE_MAX_LAYERS];
    mote_sparsity sparsity;
    mote_tokenizer tokenizer;
    mote_chat chat;
    const uint8_t *blob;
    uint32_t blob_bytes;
} mote_model;

/* Validate `blob` in place (header, every table entry, tokenizer section and, when
 * check_crc, the CRC32) and fill `m` with views into it. Never reads outside
 * [blob, blob + len). */
mote_status mote_model_open(mote_model *m, const uint8_t *blob, size_t len, int check_crc);

/* The model's parameters (the banner's params=): embedding, classifier unless tied,
 * every layer's matrices and norms, the final norm. */
uint64_t mote_param_count(const mote_config *c);

/* Arena bytes the runtime needs for `ctx` positions of this model (what a blob's
 * arena_bytes records): prefill runs one position per pass. */
uint32_t mote_arena_bytes(const mote_config *c, uint32_t ctx);

/* The most positions one prefill pass takes (mote_prefill), and the arena bytes for
 * passes of `batch` (1..MOTE_MAX_BATCH) positions: each position beyond the first adds
 * its activation rows. mote_state_init takes the widest batch its arena holds. */
#define MOTE_MAX_BATCH 64u
uint32_t mote_arena_bytes_batch(const mote_config *c, uint32_t ctx, uint32_t batch);

/* The RoPE table of all `ctx` positions, which mote_state_init computes once when its
 * arena has these bytes beyond a single position's needs (before widening the batch):
 * a forward pass then reads its positions' rows instead of computing them. */
uint32_t mote_rope_table_bytes(const mote_config *c, uint32_t ctx);

/* Optional parallelism, filled in by a port that has threads (firmware/ports/linux/
 * threads.c); NULL runs everything inline. parallel_rows must call fn(ctx, begin, end)
 * over disjoint ranges covering [0, rows) and return when all are done. */
typedef void (*mote_rows_fn)(void *ctx, uint32_t begin, uint32_t end);
typedef void (*mote_parallel_fn)(void *pool, mote_rows_fn fn, void *ctx, uint32_t rows);

/* Activation buffers and KV cache, all carved from the caller's arena. The
 * per-position buffers have one row per position of a prefill pass (batch rows). */
typedef struct {
    const mote_model *model;
    uint32_t ctx;          /* positions available, <= config.max_seq_len */
    uint32_t batch;        /* positions per prefill pass, 1..MOTE_MAX_BATCH */
    float *x, *xb, *xb2;   /* (batch, dim) (batch, max(dim, q_dim)) (batch, dim) */
    float *q, *k, *v;      /* (batch, q_dim) (batch, kv_dim) (batch, kv_dim) */
    float *hb, *hb2;       /* (batch, hidden) */
    float *att;            /* (ctx,) one head at a time */
    float *logits;         /* (vocab,) of the last position run */
    int8_t *xq;            /* quantized activations, (batch, max(dim, q_dim, hidden)) */
    float *xs;             /* their group scales */
    float *rope_cos, *rope_sin;         /* (batch, head_dim/2) for the pass's positions */
    const float *rope_all_cos, *rope_all_sin; /* (ctx, head_dim/2): every position's,
                                                 when the arena had room; else NULL */
    int8_t *key_cache, *value_cache;    /* (layer, ctx, kv_dim) */
    uint16_t *key_scales, *value_scales; /* (layer, ctx) f16 */
    void *scratch;         /* sampler candidates; between generations, a chat turn's layout;
                              in a forward pass, a second head's scores */
    uint32_t scratch_bytes;
    int32_t *tokens;       /* (ctx,) the token at each position; NULL without a chat section */
    mote_parallel_fn parallel_rows; /* NULL after mote_state_init: single-threaded */
    void *pool;
    mote_reads reads;      /* weights read so far (zeroed by mote_state_init) */
} mote_state;

/* Carve `arena` (16-byte aligned) for `ctx` positions (0 means the blob's ctx_len;
 * at most max_seq_len), the RoPE table of every position if it fits
 * (mote_rope_table_bytes) and the widest prefill batch that fits then (s->batch).
 * MOTE_E_ARENA if arena_bytes < mote_arena_bytes(). */
mote_status mote_state_init(mote_state *s, const mote_model *m, void *arena, size_t arena_bytes,
                            uint32_t ctx);

/* Run one token at position `pos` (< s->ctx) through the model; returns the logits
 * (vocab floats, inside the arena), valid until the next call, or NULL when the token
 * or the position is out of range. Positions 0..pos-1 must have run before. */
float *mote_forward(mote_state *s, int32_t token, uint32_t pos);

/* Run n tokens at positions pos..pos+n-1 (pos + n <= s->ctx) in passes of up to
 * s->batch positions, each weight read once per pass; returns the logits of the last
 * position, or NULL (before any work) when a token or position is out of range. Bit
 * for bit what n calls of mote_forward give. */
float *mote_prefill(mote_state *s, const int32_t *tokens, uint32_t n, uint32_t pos);

/* Sampling, identical to host/mote/reference/sample.py: temperature 0 is greedy (argmax, lowest
 * index on ties); otherwise logits / temperature, softmax, keep the top_k most likely
 * (0 = all), keep the smallest prefix whose mass reaches top_p (1 = all), renormalize and
 * draw with sample.c's xorshift64* generator (docs/sampling.md). */
typedef struct {
    float temperature;
    float top_p;
    uint32_t top_k;
    uint64_t rng;
} mote_sampler;

void mote_sampler_init(mote_sampler *smp, float temperature, float top_p, uint32_t top_k,
                       uint64_t seed);
/* Picks a token; modifies `logits`. `scratch` holds 8 * n bytes (s->scratch fits). */
int32_t mote_sample(mote_sampler *smp, float *logits, uint32_t n, void *scratch);

#endif /* MOTE_H */
