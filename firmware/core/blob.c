/* blob.c - validate a .mote blob in place and index it (docs/blob-format.md).
 * Every field is read with memcpy (unaligned-safe) and every range is checked in
 * 64-bit arithmetic before anything points into the blob, so a corrupt or hostile
 * blob gets a status, never an out-of-bounds read (tests/fuzz/fuzz_blob.c). */
#include <string.h>

#include "mote.h"

/* The blob is little-endian and read with plain loads: refuse big-endian builds. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
typedef char mote_little_endian_host[(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) ? 1 : -1];
#endif

/* Offsets, codes and limits come from blob_format.h, generated from the format's one
 * description (host/mote/format/spec.py); host/mote/format/blob.py `load` makes the
 * same checks in the same order with the same reasons (tests/test_blob_verdicts.py). */

const char *mote_status_str(mote_status s)
{
    switch (s) {
    case MOTE_OK: return "ok";
    case MOTE_E_TRUNCATED: return MOTE_REASON_TRUNCATED;
    case MOTE_E_MAGIC: return MOTE_REASON_MAGIC;
    case MOTE_E_VERSION: return MOTE_REASON_VERSION;
    case MOTE_E_CRC: return MOTE_REASON_CRC;
    case MOTE_E_HEADER: return MOTE_REASON_HEADER;
    case MOTE_E_TABLE: return MOTE_REASON_TABLE;
    case MOTE_E_TOKENIZER: return MOTE_REASON_TOKENIZER;
    case MOTE_E_SPARSITY: return MOTE_REASON_SPARSITY;
    case MOTE_E_CHAT: return MOTE_REASON_CHAT;
    case MOTE_E_VALUES: return MOTE_REASON_VALUES;
    case MOTE_E_ARENA: return "arena too small";
    case MOTE_E_CONTEXT: return "beyond the context length";
    case MOTE_E_ARG: return "invalid argument";
    }
    return "unknown status";
}

static uint32_t read_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint16_t read_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static float read_f32(const uint8_t *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int all_zero(const uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib), four bits a step. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 15u];
        crc = (crc >> 4) ^ nibble[crc & 15u];
    }
    return ~crc;
}

/* [offset, offset + bytes) aligned and inside [0, total). */
static int range_ok(uint64_t offset, uint64_t bytes, uint64_t total)
{
    return offset % MOTE_ALIGN == 0 && offset <= total && bytes <= total - offset;
}

static mote_status read_config(mote_config *c, const uint8_t *h)
{
    uint32_t flags = read_u32(h + MOTE_H_FLAGS);
    uint64_t q_dim, kv_dim;
    c->dim = read_u32(h + MOTE_H_DIM);
    c->hidden_dim = read_u32(h + MOTE_H_HIDDEN_DIM);
    c->n_layers = read_u32(h + MOTE_H_N_LAYERS);
    c->n_heads = read_u32(h + MOTE_H_N_HEADS);
    c->n_kv_heads = read_u32(h + MOTE_H_N_KV_HEADS);
    c->head_dim = read_u32(h + MOTE_H_HEAD_DIM);
    c->vocab_size = read_u32(h + MOTE_H_VOCAB_SIZE);
    c->max_seq_len = read_u32(h + MOTE_H_MAX_SEQ_LEN);
    c->ctx_len = read_u32(h + MOTE_H_CTX_LEN);
    c->arena_bytes = read_u32(h + MOTE_H_ARENA_BYTES);
    c->group_size = read_u32(h + MOTE_H_GROUP_SIZE);
    c->activation = read_u32(h + MOTE_H_ACTIVATION);
    c->tied_classifier = (flags & MOTE_FLAG_TIED_CLASSIFIER) != 0;
    c->has_chat = (read_u32(h + MOTE_H_CHAT_OFFSET) | read_u32(h + MOTE_H_CHAT_BYTES)) != 0;
    c->rope_theta = read_f32(h + MOTE_H_ROPE_THETA);
    c->norm_eps = read_f32(h + MOTE_H_NORM_EPS);
    memcpy(c->name, h + MOTE_H_NAME, MOTE_H_NAME_BYTES);
    c->name[MOTE_H_NAME_BYTES] = '\0';

    q_dim = (uint64_t)c->n_heads * c->head_dim;
    kv_dim = (uint64_t)c->n_kv_heads * c->head_dim;
    if (c->dim == 0 || c->dim > MOTE_MAX_DIM || c->hidden_dim == 0 ||
        c->hidden_dim > MOTE_MAX_DIM || c->n_layers == 0 || c->n_layers > MOTE_MAX_LAYERS ||
        c->n_heads == 0 || c->n_kv_heads == 0 || c->n_heads % c->n_kv_heads != 0 ||
        c->head_dim == 0 || c->head_dim % 2u != 0 || q_dim > MOTE_MAX_DIM ||
        kv_dim > MOTE_MAX_DIM || c->vocab_size == 0 || c->vocab_size > MOTE_MAX_DIM ||
        c->max_seq_len == 0 || c->max_seq_len > MOTE_MAX_SEQ_LEN || c->ctx_len == 0 ||
        c->ctx_len > c->max_seq_len || c->group_size < MOTE_MIN_GROUP ||
        c->group_size % 2u != 0 || c->group_size > MOTE_MAX_GROUP ||
        c->activation > MOTE_ACT_RELU || (flags & ~MOTE_FLAGS_KNOWN) != 0)
        return MOTE_E_HEADER;
    /* finite and positive; NaN fails both comparisons */
    if (!(c->rope_theta > 0.0f && c->rope_theta < MOTE_ROPE_THETA_MAX) ||
        !(c->norm_eps >= 0.0f && c->norm_eps < MOTE_NORM_EPS_MAX))
        return MOTE_E_HEADER;
    /* mote_arena_bytes saturates at UINT32_MAX, which no real arena (a sum of 16-byte
     * pieces) equals: an arena too large for the field is refused, not matched */
    if (c->arena_bytes != mote_arena_bytes(c, c->ctx_len) || c->arena_bytes == UINT32_MAX)
        return MOTE_E_HEADER;
    return MOTE_OK;
}

/* The kind, layer, shape and allowed dtypes of table entry `index`. */
typedef struct {
    uint8_t kind;
    uint16_t layer;
    uint32_t rows, cols;
    mote_tensor *dest;
} expected_entry;

static expected_entry expect(mote_model *m, uint32_t index)
{
    const mote_config *c = &m->config;
    const uint32_t q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    const uint32_t last = 1u + MOTE_LAYER_KINDS * c->n_layers;
    expected_entry e;
    if (index == 0) {
        e.kind = MOTE_KIND_TOK_EMBEDDING; e.layer = MOTE_GLOBAL_LAYER;
        e.rows = c->vocab_size; e.cols = c->dim; e.dest = &m->tok_embedding;
    } else if (index == last) {
        e.kind = MOTE_KIND_FINAL_NORM; e.layer = MOTE_GLOBAL_LAYER;
        e.rows = 1; e.cols = c->dim; e.dest = &m->final_norm;
    } else if (index == last + 1u) {
        e.kind = MOTE_KIND_CLASSIFIER; e.layer = MOTE_GLOBAL_LAYER;
        e.rows = c->vocab_size; e.cols = c->dim; e.dest = &m->classifier;
    } else {
        mote_layer *L = &m->layers[(index - 1u) / MOTE_LAYER_KINDS];
        e.layer = (uint16_t)((index - 1u) / MOTE_LAYER_KINDS);
        e.kind = (uint8_t)(MOTE_KIND_ATTN_NORM + (index - 1u) % MOTE_LAYER_KINDS);
        switch (e.kind) {
        case MOTE_KIND_ATTN_NORM: e.rows = 1; e.cols = c->dim; e.dest = &L->attn_norm; break;
        case MOTE_KIND_WQ: e.rows = q_dim; e.cols = c->dim; e.dest = &L->wq; break;
        case MOTE_KIND_WK: e.rows = kv_dim; e.cols = c->dim; e.dest = &L->wk; break;
        case MOTE_KIND_WV: e.rows = kv_dim; e.cols = c->dim; e.dest = &L->wv; break;
        case MOTE_KIND_WO: e.rows = c->dim; e.cols = q_dim; e.dest = &L->wo; break;
        case MOTE_KIND_FFN_NORM: e.rows = 1; e.cols = c->dim; e.dest = &L->ffn_norm; break;
        case MOTE_KIND_W_GATE: e.rows = c->hidden_dim; e.cols = c->dim; e.dest = &L->w_gate; break;
        case MOTE_KIND_W_UP: e.rows = c->hidden_dim; e.cols = c->dim; e.dest = &L->w_up; break;
        default: e.rows = c->dim; e.cols = c->hidden_dim; e.dest = &L->w_down; break;
        }
    }
    return e;
}

/* The layout the sparsity flags imply for a tensor (host/mote/format/sparsity.py layout_of). */
static uint8_t expected_layout(uint8_t kind, uint32_t flags)
{
    const uint32_t attn_in = flags & (1u << MOTE_SPARSE_ATTN_IN);
    const uint32_t attn_out = flags & (1u << MOTE_SPARSE_ATTN_OUT);
    const uint32_t ffn_in = flags & (1u << MOTE_SPARSE_FFN_IN);
    const uint32_t gate = flags & (1u << MOTE_SPARSE_GATE);
    switch (kind) {
    case MOTE_KIND_WQ: case MOTE_KIND_WK: case MOTE_KIND_WV:
        return attn_in ? MOTE_LAYOUT_COLUMNS : MOTE_LAYOUT_ROWS;
    case MOTE_KIND_WO:
        return attn_out ? MOTE_LAYOUT_COLUMNS : MOTE_LAYOUT_ROWS;
    case MOTE_KIND_W_UP:
        return gate ? MOTE_LAYOUT_BUNDLED : ffn_in ? MOTE_LAYOUT_COLUMNS : MOTE_LAYOUT_ROWS;
    case MOTE_KIND_W_DOWN:
        return gate ? MOTE_LAYOUT_BUNDLED : MOTE_LAYOUT_ROWS;
    case MOTE_KIND_W_GATE:
        return ffn_in ? MOTE_LAYOUT_COLUMNS : MOTE_LAYOUT_ROWS;
    default:
        return MOTE_LAYOUT_ROWS;
    }
}

/* Bytes of the bundled w_up/w_down region: per hidden group, w_down's scales for it
 * (dim f16), then per neuron its w_up row codes, w_up row scales, w_down column codes. */
static uint64_t bundled_bytes(const mote_config *c)
{
    const uint64_t g = c->group_size, dim = c->dim, hidden = c->hidden_dim;
    const uint64_t per_neuron = 2u * dim + 2u * ((dim + g - 1u) / g);
    return ((hidden + g - 1u) / g) * 2u * dim + hidden * per_neuron;
}

/* The spec's dtypes per kind (norms f32, matrices q8 or q4; the embedding too, since
 * the kernels read only quantized embedding rows). `kind` is the expected one. */
static int dtype_allowed(uint8_t kind, uint8_t dtype)
{
    static const uint8_t allowed[] = MOTE_KIND_DTYPES_INIT;
    return kind < sizeof allowed && dtype < 8u && ((allowed[kind] >> dtype) & 1u) != 0;
}

static mote_status read_tensor(mote_model *m, uint32_t index, const uint8_t *entry,
                               uint64_t total)
{
    const expected_entry want = expect(m, index);
    const uint8_t kind = entry[MOTE_T_KIND], dtype = entry[MOTE_T_DTYPE];
    const uint16_t layer = read_u16(entry + MOTE_T_LAYER);
    const uint32_t rows = read_u32(entry + MOTE_T_ROWS), cols = read_u32(entry + MOTE_T_COLS);
    const uint32_t data_offset = read_u32(entry + MOTE_T_DATA_OFFSET);
    const uint32_t data_bytes = read_u32(entry + MOTE_T_DATA_BYTES);
    const uint32_t scales_offset = read_u32(entry + MOTE_T_SCALES_OFFSET);
    const uint32_t scales_bytes = read_u32(entry + MOTE_T_SCALES_BYTES);
    const uint32_t layout = read_u32(entry + MOTE_T_LAYOUT);
    const uint64_t group = m->config.group_size;
    uint64_t want_data, want_scales;

    if (kind != want.kind || layer != want.layer || rows != want.rows || cols != want.cols ||
        !dtype_allowed(kind, dtype) || layout != expected_layout(kind, m->sparsity.flags) ||
        (layout != MOTE_LAYOUT_ROWS && dtype != MOTE_Q8))
        return MOTE_E_TABLE;
    want.dest->layout = (uint8_t)layout;
    if (layout == MOTE_LAYOUT_BUNDLED) {
        /* w_up's entry holds the region, w_down's is empty and shares it */
        if (kind == MOTE_KIND_W_DOWN) {
            if (data_offset || data_bytes || scales_offset || scales_bytes)
                return MOTE_E_TABLE;
            want.dest->data = m->layers[layer].w_up.data;
        } else {
            if (m->config.dim % 2u != 0 || data_bytes != bundled_bytes(&m->config) ||
                scales_offset || scales_bytes || data_offset < MOTE_HEADER_BYTES ||
                !range_ok(data_offset, data_bytes, total))
                return MOTE_E_TABLE;
            want.dest->data = m->blob + data_offset;
        }
        want.dest->scales = NULL;
        want.dest->rows = rows;
        want.dest->cols = cols;
        want.dest->dtype = dtype;
        return MOTE_OK;
    }
    if (dtype == MOTE_F32) {
        want_data = 4u * (uint64_t)rows * cols;
        want_scales = 0;
    } else {
        uint64_t row_bytes = dtype == MOTE_Q8 ? cols : ((uint64_t)cols + 1u) / 2u;
        want_data = (uint64_t)rows * row_bytes;
        want_scales = mote_scales_per_group(dtype) * 2u * (uint64_t)rows *
                      (((uint64_t)cols + group - 1u) / group);
    }
    /* data and scales lie past the header (optimized kernels may read the 2 bytes
     * before a scales array) */
    if (data_bytes != want_data || scales_bytes != want_scales ||
        data_offset < MOTE_HEADER_BYTES || !range_ok(data_offset, data_bytes, total))
        return MOTE_E_TABLE;
    if (want_scales ? scales_offset < MOTE_HEADER_BYTES ||
                          !range_ok(scales_offset, scales_bytes, total)
                    : scales_offset != 0)
        return MOTE_E_TABLE;

    want.dest->data = m->blob + data_offset;
    want.dest->scales = want_scales ? (const uint16_t *)(const void *)(m->blob + scales_offset)
                                    : NULL;
    want.dest->rows = rows;
    want.dest->cols = cols;
    want.dest->dtype = dtype;
    return MOTE_OK;
}

/* The optional sparsity section: magic, layer count, known flags, zero reserved bytes,
 * thresholds finite and >= 0 (and 0 for the points left dense). */
static mote_status read_sparsity(mote_model *m, uint32_t offset, uint32_t bytes, uint64_t total)
{
    const uint32_t n_layers = m->config.n_layers;
    const uint8_t *sec;
    uint32_t flags, i;
    if (offset == 0 && bytes == 0)
        return MOTE_OK; /* dense */
    if (offset < MOTE_HEADER_BYTES || !range_ok(offset, bytes, total) ||
        bytes != MOTE_SPARSITY_HEADER_BYTES + 4u * MOTE_SPARSE_POINTS * n_layers)
        return MOTE_E_SPARSITY;
    sec = m->blob + offset;
    flags = read_u32(sec + MOTE_S_FLAGS);
    if (read_u32(sec + MOTE_S_MAGIC) != MOTE_SPARSITY_MAGIC ||
        read_u32(sec + MOTE_S_N_LAYERS) != n_layers ||
        (flags & ~((1u << MOTE_SPARSE_POINTS) - 1u)) != 0 ||
        !all_zero(sec + MOTE_S_RESERVED, MOTE_S_RESERVED_BYTES))
        return MOTE_E_SPARSITY;
    for (i = 0; i < n_layers * MOTE_SPARSE_POINTS; i++) {
        const float t = read_f32(sec + MOTE_SPARSITY_HEADER_BYTES + 4u * i);
        const int on = (flags >> (i % MOTE_SPARSE_POINTS)) & 1u;
        if (!(t >= 0.0f && t <= 3.40282347e38f) || (!on && t != 0.0f)) /* NaN, inf fail */
            return MOTE_E_SPARSITY;
    }
    m->sparsity.flags = flags;
    m->sparsity.thresholds = (const float *)(const void *)(sec + MOTE_SPARSITY_HEADER_BYTES);
    return MOTE_OK;
}

/* The optional chat section: in range, magic, zero reserved bytes, a printable name,
 * 1..MOTE_CHAT_MAX_STOPS stop ids (the unused ones 0), each segment no longer than its
 * limit, the section exactly the header and the segments zero-padded to 4, and each
 * segment valid (segment_valid); host/mote/format/chat.py parse_section, in this order. */

/* UTF-8 text runs, MOTE_CHAT_TOKEN_MARK + a u16 id below vocab, and the content mark as
 * often as `rule` says (MOTE_CHAT_CONTENT_INIT: 0 never, 1 once, 2 once unless empty,
 * 3 plain text with no marks at all). */
static int segment_valid(const uint8_t *p, uint32_t n, uint32_t rule, uint32_t vocab)
{
    uint32_t i = 0, start = 0, contents = 0;
    if (rule == 3u)
        return mote_utf8_invalid_at(p, n) == n;
    for (;;) {
        const int end = i == n;
        if (end || p[i] == MOTE_CHAT_TOKEN_MARK || p[i] == MOTE_CHAT_CONTENT_MARK) {
            if (mote_utf8_invalid_at(p + start, i - start) != i - start)
                return 0;
            if (end)
                break;
            if (p[i] == MOTE_CHAT_CONTENT_MARK) {
                contents++;
                i++;
            } else {
                if (n - i < 3u || ((uint32_t)p[i + 1u] | (uint32_t)p[i + 2u] << 8) >= vocab)
                    return 0;
                i += 3u;
            }
            start = i;
        } else {
            i++;
        }
    }
    if (rule == 2u)
        return contents == (n ? 1u : 0u);
    return contents == rule;
}

static mote_status read_chat(mote_model *m, uint32_t offset, uint32_t bytes, uint64_t total)
{
    static const uint8_t rules[MOTE_CHAT_SEGMENTS] = MOTE_CHAT_CONTENT_INIT;
    mote_chat *chat = &m->chat;
    const uint32_t vocab = m->config.vocab_size;
    const uint8_t *sec;
    uint32_t i, n_stops, used = MOTE_CHAT_HEADER_BYTES, at;
    if (!m->config.has_chat)
        return MOTE_OK; /* a completion model */
    if (offset < MOTE_HEADER_BYTES || !range_ok(offset, bytes, total) ||
        bytes < MOTE_CHAT_HEADER_BYTES)
        return MOTE_E_CHAT;
    sec = m->blob + offset;
    if (read_u32(sec + MOTE_C_MAGIC) != MOTE_CHAT_MAGIC ||
        !all_zero(sec + MOTE_C_RESERVED, MOTE_C_RESERVED_BYTES))
        return MOTE_E_CHAT;
    /* the name: printable ASCII without spaces, then zeros only */
    for (i = 0; i < MOTE_C_NAME_BYTES && sec[MOTE_C_NAME + i] != 0; i++)
        if (sec[MOTE_C_NAME + i] < 0x21u || sec[MOTE_C_NAME + i] > 0x7Eu)
            return MOTE_E_CHAT;
    if (i == 0 || !all_zero(sec + MOTE_C_NAME + i, MOTE_C_NAME_BYTES - i))
        return MOTE_E_CHAT;
    memcpy(chat->name, sec + MOTE_C_NAME, i);
    chat->name[i] = '\0';
    n_stops = read_u32(sec + MOTE_C_N_STOPS);
    if (n_stops == 0 || n_stops > MOTE_CHAT_MAX_STOPS)
        return MOTE_E_CHAT;
    for (i = 0; i < MOTE_CHAT_MAX_STOPS; i++) {
        const uint32_t stop = read_u32(sec + MOTE_C_STOP0 + 4u * i);
        if (i < n_stops ? stop >= vocab : stop != 0u)
            return MOTE_E_CHAT;
        chat->stops[i] = (int32_t)stop;
    }
    for (i = 0; i < MOTE_CHAT_SEGMENTS; i++) {
        const uint32_t length = read_u32(sec + MOTE_C_BEGIN_BYTES + 4u * i);
        const uint32_t limit =
            i == MOTE_CHAT_SEG_DEFAULT_SYSTEM ? MOTE_CHAT_SYSTEM_MAX : MOTE_CHAT_SEGMENT_MAX;
        if (length > limit)
            return MOTE_E_CHAT;
        chat->segment_bytes[i] = length;
        used += length;
    }
    if (bytes != ((used + 3u) & ~3u) || !all_zero(sec + used, bytes - used))
        return MOTE_E_CHAT;
    for (i = 0, at = MOTE_CHAT_HEADER_BYTES; i < MOTE_CHAT_SEGMENTS; i++) {
        chat->segment[i] = sec + at;
        if (!segment_valid(sec + at, chat->segment_bytes[i], rules[i], vocab))
            return MOTE_E_CHAT;
        at += chat->segment_bytes[i];
    }
    chat->n_stops = n_stops;
    return MOTE_OK;
}

/* Region k of an opened blob, k < 4 + 2 * n_tensors: the tensor table, the tokenizer,
 * sparsity and chat sections, then each entry's data and scales. Every range was checked
 * to lie inside the blob and past the header, so the header overlaps none of them. */
static void region(const uint8_t *blob, uint32_t k, uint32_t *offset, uint32_t *bytes)
{
    const uint8_t *h = blob;
    const uint32_t table = read_u32(h + MOTE_H_TENSOR_TABLE_OFFSET);
    if (k == 0) {
        *offset = table;
        *bytes = read_u32(h + MOTE_H_N_TENSORS) * MOTE_TABLE_ENTRY_BYTES;
    } else if (k == 1) {
        *offset = read_u32(h + MOTE_H_TOKENIZER_OFFSET);
        *bytes = read_u32(h + MOTE_H_TOKENIZER_BYTES);
    } else if (k == 2) {
        *offset = read_u32(h + MOTE_H_SPARSITY_OFFSET);
        *bytes = read_u32(h + MOTE_H_SPARSITY_BYTES);
    } else if (k == 3) {
        *offset = read_u32(h + MOTE_H_CHAT_OFFSET);
        *bytes = read_u32(h + MOTE_H_CHAT_BYTES);
    } else {
        const uint8_t *entry = blob + table + (size_t)((k - 4u) / 2u) * MOTE_TABLE_ENTRY_BYTES;
        const int scales = (k - 4u) % 2u;
        *offset = read_u32(entry + (scales ? MOTE_T_SCALES_OFFSET : MOTE_T_DATA_OFFSET));
        *bytes = read_u32(entry + (scales ? MOTE_T_SCALES_BYTES : MOTE_T_DATA_BYTES));
    }
}

/* No two non-empty regions share a byte (a tensor pointed at the table or at another
 * tensor would run as nonsense). A pairwise check, chosen over sorting because it needs
 * no stack array: at most (4 + 2 * 579)^2 / 2 comparisons, bounded by MOTE_MAX_LAYERS,
 * tens of milliseconds once at open on an MCU. Ranges end inside a 32-bit blob, so the
 * sums cannot wrap. */
static mote_status check_disjoint(const uint8_t *blob, uint32_t n_tensors)
{
    const uint32_t n = 4u + 2u * n_tensors;
    uint32_t i, j, a_off, a_len, b_off, b_len;
    for (i = 0; i < n; i++) {
        region(blob, i, &a_off, &a_len);
        if (a_len == 0)
            continue;
        for (j = i + 1u; j < n; j++) {
            region(blob, j, &b_off, &b_len);
            if (b_len != 0 && a_off < b_off + b_len && b_off < a_off + a_len)
                return MOTE_E_TABLE;
        }
    }
    return MOTE_OK;
}

/* IEEE NaN and infinity have every exponent bit set. */
static int f32_finite(const uint8_t *p) { return (read_u32(p) & 0x7F800000u) != 0x7F800000u; }
static int f16_finite(const uint8_t *p) { return (read_u16(p) & 0x7C00u) != 0x7C00u; }

static int all_f16_finite(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!f16_finite(p + 2u * i))
            return 0;
    return 1;
}

/* Every stored float of a tensor is finite: an f32 norm's values, a q8/q4 matrix's f16
 * scales (and a q4a matrix's offsets). A bundled w_up region holds, per group of neurons, w_down's scales for it,
 * then per neuron the up row's codes and scales and the down column's codes (`t` is
 * w_up: rows = hidden, cols = dim). */
static int tensor_finite(const mote_tensor *t, uint32_t group)
{
    const uint8_t *p = (const uint8_t *)t->data;
    size_t i;
    if (t->dtype == MOTE_F32) {
        for (i = 0; i < (size_t)t->rows * t->cols; i++)
            if (!f32_finite(p + 4u * i))
                return 0;
        return 1;
    }
    if (t->layout != MOTE_LAYOUT_BUNDLED)
        return all_f16_finite((const uint8_t *)t->scales, mote_scales_per_group(t->dtype) *
                                                              (size_t)t->rows *
                                                              ((t->cols + group - 1u) / group));
    {
        const size_t dim = t->cols, hidden = t->rows, n_groups_dim = (dim + group - 1u) / group;
        size_t first, j;
        for (first = 0; first < hidden; first += group) {
            if (!all_f16_finite(p, dim))
                return 0;
            p += 2u * dim;
            for (j = first; j < hidden && j < first + group; j++) {
                if (!all_f16_finite(p + dim, n_groups_dim))
                    return 0;
                p += 2u * dim + 2u * n_groups_dim;
            }
        }
        return 1;
    }
}

/* Last, once every range is known to be good: a NaN norm or scale would make every
 * logit NaN, and the model would then stream token 0 as if it were text. */
static mote_status check_finite(const mote_model *m)
{
    const uint32_t group = m->config.group_size;
    uint32_t l;
    if (!tensor_finite(&m->tok_embedding, group) || !tensor_finite(&m->final_norm, group) ||
        !tensor_finite(&m->classifier, group))
        return MOTE_E_VALUES;
    for (l = 0; l < m->config.n_layers; l++) {
        const mote_layer *L = &m->layers[l];
        const mote_tensor *t[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                                  &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        uint32_t k;
        for (k = 0; k < sizeof t / sizeof t[0]; k++)
            if (!(t[k] == &L->w_down && t[k]->layout == MOTE_LAYOUT_BUNDLED) && /* in w_up's region */
                !tensor_finite(t[k], group))
                return MOTE_E_VALUES;
    }
    return MOTE_OK;
}

mote_status mote_model_open(mote_model *m, const uint8_t *blob, size_t len, int check_crc)
{
    const uint8_t *h = blob;
    uint32_t total, n_tensors, table_offset, tok_offset, tok_bytes, i;
    mote_status st;

    if (m == NULL || blob == NULL)
        return MOTE_E_ARG;
    /* f32 norms and f16 scales are read through typed pointers: they need the 4-byte
     * alignment the format gives them relative to the blob's start. */
    if (((uintptr_t)blob & 3u) != 0)
        return MOTE_E_ARG;
    memset(m, 0, sizeof *m);
    /* The magic first, so that a short file that is no blob is called that. Then the
     * CRC before any field it covers, so that corruption is reported as corruption. */
    if (len < 4u)
        return MOTE_E_TRUNCATED;
    if (read_u32(h + MOTE_H_MAGIC) != MOTE_MAGIC)
        return MOTE_E_MAGIC;
    if (len < MOTE_HEADER_BYTES)
        return MOTE_E_TRUNCATED;
    if (read_u32(h + MOTE_H_VERSION) != MOTE_VERSION)
        return MOTE_E_VERSION;
    total = read_u32(h + MOTE_H_TOTAL_BYTES);
    if (total > len)
        return MOTE_E_TRUNCATED;
    if (total < MOTE_HEADER_BYTES)
        return MOTE_E_HEADER;
    if (check_crc && crc32_update(0, h + MOTE_CRC_START, total - MOTE_CRC_START) !=
                         read_u32(h + MOTE_H_CRC32))
        return MOTE_E_CRC;
    if (read_u32(h + MOTE_H_HEADER_BYTES) != MOTE_HEADER_BYTES ||
        !all_zero(h + MOTE_H_RESERVED0, MOTE_H_RESERVED0_BYTES) ||
        !all_zero(h + MOTE_H_RESERVED1, MOTE_H_RESERVED1_BYTES))
        return MOTE_E_HEADER;
    m->blob = blob;
    m->blob_bytes = total;

    st = read_config(&m->config, h);
    if (st != MOTE_OK)
        return st;

    st = read_sparsity(m, read_u32(h + MOTE_H_SPARSITY_OFFSET), read_u32(h + MOTE_H_SPARSITY_BYTES),
                       total);
    if (st != MOTE_OK)
        return st;

    n_tensors = read_u32(h + MOTE_H_N_TENSORS);
    table_offset = read_u32(h + MOTE_H_TENSOR_TABLE_OFFSET);
    if (n_tensors != 2u + MOTE_LAYER_KINDS * m->config.n_layers +
                         (m->config.tied_classifier ? 0u : 1u) ||
        table_offset < MOTE_HEADER_BYTES ||
        !range_ok(table_offset, (uint64_t)n_tensors * MOTE_TABLE_ENTRY_BYTES, total))
        return MOTE_E_TABLE;
    for (i = 0; i < n_tensors; i++) {
        st = read_tensor(m, i, blob + table_offset + (size_t)i * MOTE_TABLE_ENTRY_BYTES, total);
        if (st != MOTE_OK)
            return st;
    }
    if (m->config.tied_classifier)
        m->classifier = m->tok_embedding;

    tok_offset = read_u32(h + MOTE_H_TOKENIZER_OFFSET);
    tok_bytes = read_u32(h + MOTE_H_TOKENIZER_BYTES);
    if (tok_offset < MOTE_HEADER_BYTES || !range_ok(tok_offset, tok_bytes, total) ||
        mote_tok_open(&m->tokenizer, blob + tok_offset, tok_bytes) != 0 ||
        m->tokenizer.vocab_size != m->config.vocab_size)
        return MOTE_E_TOKENIZER;
    st = read_chat(m, read_u32(h + MOTE_H_CHAT_OFFSET), read_u32(h + MOTE_H_CHAT_BYTES), total);
    if (st != MOTE_OK)
        return st;
    st = check_disjoint(blob, n_tensors);
    if (st != MOTE_OK)
        return st;
    return check_finite(m);
}
