/* tokenizer.c - BPE encode and streaming decode over the blob's tokenizer section,
 * read in place (docs/blob-format.md, "Tokenizer section layout"). The algorithms
 * match host/mote/tokenizer.py step for step; tests/test_tokenizer.py compares them.
 * No allocation, no recursion, no mutable globals; every array is bounds-checked once
 * in mote_tok_open and every value read is little-endian, byte by byte (so neither
 * the host's byte order nor the section's alignment matters). */
#include "tokenizer.h"

#include <string.h>

#define HEADER_BYTES 96u
#define SECTION_MAGIC 0x4E4B4F54u /* "TOKN" */
#define FLAG_DUMMY_PREFIX 1u      /* encode prepends the token of " " to non-empty text */
#define FLAG_STRIP_AFTER_BOS 2u   /* decode drops the leading space of the token after BOS */
#define FLAG_SPLIT_DIGITS 4u      /* bytelevel: every \p{N} character is a piece of its own */
#define KNOWN_FLAGS (FLAG_DUMMY_PREFIX | FLAG_STRIP_AFTER_BOS | FLAG_SPLIT_DIGITS)
#define TOKEN_SPECIAL 1u          /* per-token flag: decodes to nothing */
#define NO_RANK 0xFFFFu           /* "this pair does not merge" */
#define NO_BYTE_TOKEN 0xFFFFu     /* byte_tokens entry of a byte without a token */
#define MAX_VOCAB 65536u          /* ids are u16 in the merge and byte tables */
#define MAX_CODEPOINT 0x10FFFFu

/* Header fields, u32 each, in file order (docs/blob-format.md). */
enum {
    H_MAGIC, H_KIND, H_VOCAB, H_N_MERGES, H_MAX_TOKEN_BYTES, H_BOS, H_EOS, H_FLAGS,
    H_TOKEN_OFFSETS, H_TOKEN_BYTES, H_TOKEN_FLAGS, H_BYTE_TOKENS, H_MERGES,
    H_N_CODEPOINTS, H_CODEPOINTS, H_N_LETTERS, H_LETTERS, H_N_NUMBERS, H_NUMBERS,
    H_N_SPACES, H_SPACES, H_FIELDS
};

/* Character classes of GPT-2's pre-tokenizer pattern. */
enum { CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE, CLASS_OTHER };

/* ------------------------------------------------------------------------------------
 * Little-endian reads, UTF-8 */

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bytes in the UTF-8 sequence `lead` starts; 0 for a byte no valid sequence starts with. */
static uint32_t utf8_length(uint32_t lead) {
    if (lead < 0x80u) return 1;
    if (lead >= 0xC2u && lead <= 0xDFu) return 2;
    if (lead >= 0xE0u && lead <= 0xEFu) return 3;
    if (lead >= 0xF0u && lead <= 0xF4u) return 4;
    return 0;
}

/* Whether `c` may follow `n_have` bytes of a sequence led by `lead`. The second byte's
 * range is narrowed after E0, ED, F0, F4 to exclude overlong forms, surrogates and
 * code points above U+10FFFF. */
static int utf8_continues(uint32_t lead, uint32_t n_have, uint32_t c) {
    uint32_t low = 0x80u, high = 0xBFu;
    if (n_have == 1) {
        if (lead == 0xE0u) low = 0xA0u;
        else if (lead == 0xEDu) high = 0x9Fu;
        else if (lead == 0xF0u) low = 0x90u;
        else if (lead == 0xF4u) high = 0x8Fu;
    }
    return c >= low && c <= high;
}

/* Decode the character at s[i] (i < len) into *cp; returns its length, 0 if invalid. */
static uint32_t utf8_decode(const uint8_t *s, uint32_t len, uint32_t i, uint32_t *cp) {
    uint32_t n = utf8_length(s[i]), k, value;
    if (n == 0 || n > len - i) return 0;
    value = n == 1 ? s[i] : s[i] & (0x7Fu >> n);
    for (k = 1; k < n; k++) {
        if (!utf8_continues(s[i], k, s[i + k])) return 0;
        value = value << 6 | (s[i + k] & 0x3Fu);
    }
    *cp = value;
    return n;
}

uint32_t mote_utf8_invalid_at(const uint8_t *s, uint32_t len) {
    uint32_t i = 0, k, cp;
    for (; i < len; i += k) {
        k = utf8_decode(s, len, i, &cp);
        if (k == 0) return i;
    }
    return len;
}

/* ------------------------------------------------------------------------------------
 * Opening: validate every array once */

/* The array of `count` items of `item_bytes` at `offset`, or NULL when it is
 * misaligned, overlaps the header or runs past the section. */
static const uint8_t *array_at(const uint8_t *s, uint32_t bytes, uint32_t offset, uint32_t count,
                               uint32_t item_bytes) {
    uint64_t end = (uint64_t)offset + (uint64_t)count * item_bytes;
    if (offset % 4u != 0 || offset < HEADER_BYTES || end > bytes) return NULL;
    return s + offset;
}

/* A header id field: -1 (stored as 0xFFFFFFFF) or an id below vocab; else sets *ok = 0. */
static int32_t id_field(uint32_t raw, uint32_t vocab, int *ok) {
    if (raw == 0xFFFFFFFFu) return -1;
    if (raw >= vocab) *ok = 0;
    return (int32_t)(raw & 0xFFFFu);
}

/* Sorted, disjoint, inclusive code point ranges. */
static int ranges_valid(const uint8_t *table, uint32_t n) {
    uint32_t i, first, last, next_free = 0; /* lowest code point the next range may use */
    for (i = 0; i < n; i++) {
        first = rd32(table + 8u * i);
        last = rd32(table + 8u * i + 4u);
        if (first < next_free || first > last || last > MAX_CODEPOINT) return 0;
        next_free = last + 1u;
    }
    return 1;
}

static int32_t codepoint_token(const mote_tokenizer *t, uint32_t cp);

int mote_tok_open(mote_tokenizer *t, const uint8_t *s, uint32_t bytes) {
    uint32_t h[H_FIELDS], i, vocab, previous, key, total;
    int ok = 1;
    if (t == NULL) return -1;
    memset(t, 0, sizeof *t);
    if (s == NULL || bytes < HEADER_BYTES) return -1;
    for (i = 0; i < H_FIELDS; i++) h[i] = rd32(s + 4u * i);
    for (i = 4u * H_FIELDS; i < HEADER_BYTES; i++)
        if (s[i] != 0) return -1; /* reserved */
    vocab = h[H_VOCAB];
    if (h[H_MAGIC] != SECTION_MAGIC || vocab == 0 || vocab > MAX_VOCAB) return -1;
    if (h[H_KIND] != MOTE_TOK_KIND_LLAMA2C && h[H_KIND] != MOTE_TOK_KIND_BYTELEVEL) return -1;
    if ((h[H_FLAGS] & ~KNOWN_FLAGS) != 0) return -1;
    if (h[H_MAX_TOKEN_BYTES] > MOTE_TOK_MAX_TOKEN_BYTES) return -1;
    t->kind = h[H_KIND];
    t->vocab_size = vocab;
    t->bos_id = id_field(h[H_BOS], vocab, &ok);
    t->eos_id = id_field(h[H_EOS], vocab, &ok);
    t->max_token_bytes = h[H_MAX_TOKEN_BYTES];
    t->flags = h[H_FLAGS];
    t->n_merges = h[H_N_MERGES];
    t->n_codepoints = h[H_N_CODEPOINTS];
    t->n_letters = h[H_N_LETTERS];
    t->n_numbers = h[H_N_NUMBERS];
    t->n_spaces = h[H_N_SPACES];
    if (!ok) return -1;

    /* Tokens: offsets non-decreasing from 0, each token at most max_token_bytes. */
    t->token_offsets = array_at(s, bytes, h[H_TOKEN_OFFSETS], vocab + 1u, 4);
    if (t->token_offsets == NULL) return -1;
    total = rd32(t->token_offsets + 4u * vocab);
    t->token_bytes = array_at(s, bytes, h[H_TOKEN_BYTES], total, 1);
    t->token_flags = array_at(s, bytes, h[H_TOKEN_FLAGS], vocab, 1);
    t->byte_tokens = array_at(s, bytes, h[H_BYTE_TOKENS], 256, 2);
    t->merges = array_at(s, bytes, h[H_MERGES], t->n_merges, 8);
    t->codepoints = array_at(s, bytes, h[H_CODEPOINTS], t->n_codepoints, 8);
    t->letters = array_at(s, bytes, h[H_LETTERS], t->n_letters, 8);
    t->numbers = array_at(s, bytes, h[H_NUMBERS], t->n_numbers, 8);
    t->spaces = array_at(s, bytes, h[H_SPACES], t->n_spaces, 8);
    if (t->token_bytes == NULL || t->token_flags == NULL || t->byte_tokens == NULL ||
        t->merges == NULL || t->codepoints == NULL || t->letters == NULL || t->numbers == NULL ||
        t->spaces == NULL)
        return -1;
    if (rd32(t->token_offsets) != 0) return -1;
    for (i = 0; i < vocab; i++) {
        uint32_t start = rd32(t->token_offsets + 4u * i), end = rd32(t->token_offsets + 4u * i + 4u);
        if (end < start || end - start > t->max_token_bytes) return -1;
    }

    /* Byte b's token is exactly the one byte b, so decoding it gives back b; or, below
     * MAX_VOCAB tokens, NO_BYTE_TOKEN: the vocabulary has none and encoding drops b. */
    for (i = 0; i < 256u; i++) {
        uint32_t token = rd16(t->byte_tokens + 2u * i);
        uint32_t start = token < vocab ? rd32(t->token_offsets + 4u * token) : 0;
        if (token == NO_BYTE_TOKEN && vocab <= NO_BYTE_TOKEN) continue;
        if (token >= vocab || rd32(t->token_offsets + 4u * token + 4u) - start != 1 ||
            t->token_bytes[start] != i)
            return -1;
    }

    /* Merges sorted strictly by (left, right) for binary search, every id a token. */
    previous = 0;
    for (i = 0; i < t->n_merges; i++) {
        const uint8_t *m = t->merges + 8u * i;
        key = rd16(m) << 16 | rd16(m + 2);
        if ((i > 0 && key <= previous) || rd16(m) >= vocab || rd16(m + 2) >= vocab ||
            rd16(m + 4) >= vocab || rd16(m + 6) == NO_RANK)
            return -1;
        previous = key;
    }

    /* Single-code-point tokens sorted strictly by code point. */
    for (i = 0; i < t->n_codepoints; i++) {
        uint32_t cp = rd32(t->codepoints + 8u * i);
        if ((i > 0 && cp <= rd32(t->codepoints + 8u * (i - 1u))) || cp > MAX_CODEPOINT ||
            rd32(t->codepoints + 8u * i + 4u) >= vocab)
            return -1;
    }
    if ((t->flags & FLAG_DUMMY_PREFIX) && codepoint_token(t, 0x20u) < 0) return -1;

    if (!ranges_valid(t->letters, t->n_letters) || !ranges_valid(t->numbers, t->n_numbers) ||
        !ranges_valid(t->spaces, t->n_spaces))
        return -1;
    t->section = s;
    t->section_bytes = bytes;
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Lookups (binary searches over the validated tables) */

/* Token of the single code point `cp`, or -1. */
static int32_t codepoint_token(const mote_tokenizer *t, uint32_t cp) {
    uint32_t low = 0, high = t->n_codepoints;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2u, at = rd32(t->codepoints + 8u * mid);
        if (at == cp) return (int32_t)rd32(t->codepoints + 8u * mid + 4u);
        if (at < cp) low = mid + 1u;
        else high = mid;
    }
    return -1;
}

static int in_ranges(const uint8_t *table, uint32_t n, uint32_t cp) {
    uint32_t low = 0, high = n; /* find the first range whose last >= cp */
    while (low < high) {
        uint32_t mid = low + (high - low) / 2u;
        if (rd32(table + 8u * mid + 4u) < cp) low = mid + 1u;
        else high = mid;
    }
    return low < n && rd32(table + 8u * low) <= cp;
}

/* Class of the (valid) character at s[i]; its length goes to *n. */
static uint32_t class_at(const mote_tokenizer *t, const uint8_t *s, uint32_t len, uint32_t i,
                         uint32_t *n) {
    uint32_t cp = 0;
    *n = utf8_decode(s, len, i, &cp);
    if (in_ranges(t->letters, t->n_letters, cp)) return CLASS_LETTER;
    if (in_ranges(t->numbers, t->n_numbers, cp)) return CLASS_NUMBER;
    if (in_ranges(t->spaces, t->n_spaces, cp)) return CLASS_SPACE;
    return CLASS_OTHER;
}

/* Rank of merging tokens a, b (NO_RANK if they do not merge); the result to *merged. */
static uint32_t pair_rank(const mote_tokenizer *t, uint32_t a, uint32_t b, uint32_t *merged) {
    uint32_t key = a << 16 | b, low = 0, high = t->n_merges;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2u;
        const uint8_t *m = t->merges + 8u * mid;
        uint32_t at = rd16(m) << 16 | rd16(m + 2);
        if (at == key) {
            *merged = rd16(m + 4);
            return rd16(m + 6);
        }
        if (at < key) low = mid + 1u;
        else high = mid;
    }
    return NO_RANK;
}

/* ------------------------------------------------------------------------------------
 * Encoding */

/* Rank of the pair starting at w[i], in the packed form of merge() below. */
static uint32_t rank_after(const mote_tokenizer *t, const uint32_t *w, uint32_t n, uint32_t i) {
    uint32_t merged;
    if (i + 1u >= n) return NO_RANK;
    return pair_rank(t, w[i] & 0xFFFFu, w[i + 1u] & 0xFFFFu, &merged);
}

/* Merge the n tokens in w in place: repeatedly the adjacent pair of lowest rank, the
 * leftmost on ties, until no pair merges. Returns the new count. Each slot packs the
 * token id (low 16 bits) with the rank of the pair it starts (high 16 bits), so a step
 * is one scan for the minimum plus two binary searches, without extra memory. */
static uint32_t merge(const mote_tokenizer *t, uint32_t *w, uint32_t n) {
    uint32_t i, best, at, merged = 0;
    for (i = 0; i < n; i++) w[i] |= rank_after(t, w, n, i) << 16;
    for (;;) {
        best = NO_RANK;
        at = 0;
        for (i = 0; i + 1u < n; i++) {
            if (w[i] >> 16 < best) {
                best = w[i] >> 16;
                at = i;
            }
        }
        if (best == NO_RANK) break;
        pair_rank(t, w[at] & 0xFFFFu, w[at + 1u] & 0xFFFFu, &merged);
        memmove(w + at + 1u, w + at + 2u, (n - at - 2u) * sizeof *w);
        n--;
        w[at] = merged;
        w[at] |= rank_after(t, w, n, at) << 16;
        if (at > 0) w[at - 1u] = (w[at - 1u] & 0xFFFFu) | rank_after(t, w, n, at - 1u) << 16;
    }
    for (i = 0; i < n; i++) w[i] &= 0xFFFFu;
    return n;
}

/* End of the GPT-2 pre-tokenizer piece starting at s[i]: the first alternative of
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * that matches there, as a backtracking regex engine would choose it. */
static uint32_t piece_end(const mote_tokenizer *t, const uint8_t *s, uint32_t len, uint32_t i) {
    static const char *const contractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    uint32_t k, n, start = i, end, last, cls;
    if (s[i] == '\'') {
        for (k = 0; k < sizeof contractions / sizeof contractions[0]; k++) {
            uint32_t m = (uint32_t)strlen(contractions[k]);
            if (m <= len - i - 1u && memcmp(s + i + 1u, contractions[k], m) == 0) return i + 1u + m;
        }
    }
    /* " ?" joins one space to the letter, number or other run after it */
    if (s[i] == ' ' && i + 1u < len && class_at(t, s, len, i + 1u, &n) != CLASS_SPACE) start = i + 1u;
    cls = class_at(t, s, len, start, &n);
    end = start + n;
    if (cls != CLASS_SPACE) {
        while (end < len && class_at(t, s, len, end, &n) == cls) end += n;
        return end;
    }
    last = i; /* start of the whitespace run's last character */
    while (end < len && class_at(t, s, len, end, &n) == CLASS_SPACE) {
        last = end;
        end += n;
    }
    /* \s+ at the end of the text, or a lone whitespace before a non-space (\s+);
     * otherwise \s+(?!\S) leaves the last one to join the next piece */
    if (end == len || last == i) return end;
    return last;
}

int32_t mote_tok_encode(const mote_tokenizer *t, const char *text, uint32_t len, int add_bos,
                        int32_t *out, uint32_t cap) {
    const uint8_t *s = (const uint8_t *)text;
    uint32_t *w = (uint32_t *)out; /* packed slots during merging, see merge() */
    uint32_t n = 0, first, i, j, k = 0, end, cp = 0; /* k: GCC 12 -O3 cannot see it is set before use */
    if (t == NULL || out == NULL || (s == NULL && len > 0)) return -1;
    if (len > 0x7FFFFFF0u || cap < len + 2u) return -1;
    if (mote_utf8_invalid_at(s, len) != len) return -1;
    if (add_bos && t->bos_id >= 0) w[n++] = (uint32_t)t->bos_id;
    if (t->kind == MOTE_TOK_KIND_LLAMA2C) {
        /* one token per code point (or its byte tokens), then merges by score rank */
        first = n;
        if ((t->flags & FLAG_DUMMY_PREFIX) && len > 0) w[n++] = (uint32_t)codepoint_token(t, 0x20u);
        for (i = 0; i < len; i += k) {
            int32_t token;
            k = utf8_decode(s, len, i, &cp);
            token = codepoint_token(t, cp);
            if (token >= 0) w[n++] = (uint32_t)token;
            else
                for (j = 0; j < k; j++) w[n++] = rd16(t->byte_tokens + 2u * s[i + j]);
        }
        n = first + merge(t, w + first, n - first);
    } else {
        /* each piece from its byte tokens; at most one token per byte, so the piece
         * starting at byte i fits below i + 2. With FLAG_SPLIT_DIGITS a \p{N} character
         * is a piece of its own, and GPT-2's pattern sees only the text up to the next
         * one (`stop`), as if that text were all there is. */
        uint32_t stop = 0;
        for (i = 0; i < len; i = end) {
            if (!(t->flags & FLAG_SPLIT_DIGITS)) {
                end = piece_end(t, s, len, i);
            } else if (class_at(t, s, len, i, &k) == CLASS_NUMBER) {
                end = i + k;
            } else {
                if (i >= stop) /* the next number, or the end */
                    for (stop = i; stop < len && class_at(t, s, len, stop, &k) != CLASS_NUMBER;) stop += k;
                end = piece_end(t, s, stop, i);
            }
            first = n;
            for (j = i; j < end; j++) w[n++] = rd16(t->byte_tokens + 2u * s[j]);
            n = first + merge(t, w + first, n - first);
        }
    }
    /* a byte without a token took part in merging as a symbol no pair merges with
     * (merge ids are below vocab_size <= NO_BYTE_TOKEN); it yields no id */
    if (t->vocab_size > NO_BYTE_TOKEN) return (int32_t)n; /* then 0xFFFF is a token */
    for (i = j = 0; i < n; i++)
        if (w[i] != NO_BYTE_TOKEN) out[j++] = (int32_t)w[i];
    return (int32_t)j;
}

/* ------------------------------------------------------------------------------------
 * Streaming decoding */

static const uint8_t replacement_char[3] = {0xEFu, 0xBFu, 0xBDu}; /* U+FFFD */

/* Append n bytes at out[at] if they all fit (a character is never cut); new length. */
static uint32_t emit(char *out, uint32_t cap, uint32_t at, const uint8_t *bytes, uint32_t n) {
    if (n > cap - at) return at;
    memcpy(out + at, bytes, n);
    return at + n;
}

void mote_tok_decoder_init(mote_tok_decoder *d) {
    memset(d, 0, sizeof *d);
    d->prev = -1;
}

uint32_t mote_tok_decode(const mote_tokenizer *t, mote_tok_decoder *d, int32_t token, char *out,
                         uint32_t cap) {
    const uint8_t *piece;
    uint32_t start, n, i, at = 0;
    int32_t prev = d->prev;
    d->prev = token;
    if (token < 0 || (uint32_t)token >= t->vocab_size) return 0;
    if (t->token_flags[token] & TOKEN_SPECIAL) return 0;
    start = rd32(t->token_offsets + 4u * (uint32_t)token);
    n = rd32(t->token_offsets + 4u * (uint32_t)token + 4u) - start;
    piece = t->token_bytes + start;
    if ((t->flags & FLAG_STRIP_AFTER_BOS) && t->bos_id >= 0 && prev == t->bos_id && n > 0 &&
        piece[0] == ' ') {
        piece++;
        n--;
    }
    for (i = 0; i < n; i++) {
        uint32_t c = piece[i];
        if (d->n_pending > 0 && !utf8_continues(d->pending[0], d->n_pending, c)) {
            at = emit(out, cap, at, replacement_char, 3);
            d->n_pending = 0;
        }
        if (d->n_pending == 0 && utf8_length(c) == 0) {
            at = emit(out, cap, at, replacement_char, 3);
            continue;
        }
        d->pending[d->n_pending++] = (uint8_t)c;
        if (d->n_pending == utf8_length(d->pending[0])) {
            at = emit(out, cap, at, d->pending, d->n_pending);
            d->n_pending = 0;
        }
    }
    return at;
}

uint32_t mote_tok_decode_flush(mote_tok_decoder *d, char *out, uint32_t cap) {
    uint32_t at = 0;
    if (d->n_pending > 0) at = emit(out, cap, at, replacement_char, 3);
    d->n_pending = 0;
    return at;
}
