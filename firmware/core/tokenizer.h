/* tokenizer.h - on-device BPE encoding of a prompt and streaming, UTF-8-safe decoding
 * of generated tokens, reading the blob's tokenizer section in place
 * (docs/blob-format.md, "Tokenizer section layout"). No allocation: callers pass
 * buffers. host/mote/tokenizer.py implements the same algorithms and is the oracle. */
#ifndef MOTE_TOKENIZER_H
#define MOTE_TOKENIZER_H

#include <stdint.h>

#define MOTE_TOK_KIND_LLAMA2C 1u   /* sentencepiece vocabulary, merges ranked by score */
#define MOTE_TOK_KIND_BYTELEVEL 2u /* GPT-2 byte-level BPE */
#define MOTE_TOK_MAX_TOKEN_BYTES 256u /* longest token a valid section holds */
/* Output bytes one mote_tok_decode call can produce for tokens of at most `m` bytes:
 * each byte may become a 3-byte U+FFFD, plus one for bytes held back earlier. */
#define MOTE_TOK_DECODE_CAP(m) (3u * (m) + 3u)

/* Views into the tokenizer section; filled by mote_tok_open. */
typedef struct {
    uint32_t kind; /* MOTE_TOK_KIND_* */
    uint32_t vocab_size;
    int32_t bos_id, eos_id; /* -1 when absent */
    uint32_t max_token_bytes;
    const uint8_t *section;
    uint32_t section_bytes;
    /* private to tokenizer.c: arrays inside `section` (little-endian, read bytewise) */
    uint32_t flags;
    uint32_t n_merges, n_codepoints, n_letters, n_numbers, n_spaces;
    const uint8_t *token_offsets; /* (vocab + 1,) u32 */
    const uint8_t *token_bytes;
    const uint8_t *token_flags;   /* (vocab,) u8 */
    const uint8_t *byte_tokens;   /* (256,) u16 */
    const uint8_t *merges;        /* (n_merges, 4) u16: left, right, merged, rank */
    const uint8_t *codepoints;    /* (n_codepoints, 2) u32: code point, token */
    const uint8_t *letters, *numbers, *spaces; /* (n, 2) u32: first, last */
} mote_tokenizer;

/* Validate the section (every offset and count inside it) and fill `t`.
 * Returns 0, or -1 if the section is malformed. */
int mote_tok_open(mote_tokenizer *t, const uint8_t *section, uint32_t bytes);

/* Encode `len` bytes of UTF-8 `text` (BOS first when add_bos and the vocabulary has
 * one). Returns the number of ids written to `out`, or -1 when cap < len + 2 or
 * `text` is not valid UTF-8 (overlong forms, surrogates and values above U+10FFFF
 * are invalid). `out` also serves as the merge workspace, hence cap >= len + 2
 * (BOS, the dummy prefix, and at most one token per byte). */
int32_t mote_tok_encode(const mote_tokenizer *t, const char *text, uint32_t len, int add_bos,
                        int32_t *out, uint32_t cap);

/* Index of the first byte of `s` that is not part of valid UTF-8 (the rule of
 * mote_tok_encode), or len when all of it is valid. The core's only validator. */
uint32_t mote_utf8_invalid_at(const uint8_t *s, uint32_t len);

/* Streaming decode state: holds the bytes of an incomplete UTF-8 character. */
typedef struct {
    uint8_t pending[4];
    uint32_t n_pending;
    int32_t prev; /* previous token, -1 at the start */
} mote_tok_decoder;

void mote_tok_decoder_init(mote_tok_decoder *d);

/* Text of `token`, as complete UTF-8 characters only: bytes of a character split
 * across tokens are held back until it is complete. A byte that cannot continue the
 * held-back bytes turns them into one U+FFFD, and a byte no UTF-8 character starts
 * with is one U+FFFD, so the whole stream equals Python's
 * bytes.decode("utf-8", "replace"). Special tokens give nothing; for llama2c the
 * token after BOS loses its leading space. An id outside the vocabulary gives
 * nothing. Writes at most `cap` bytes and returns how many; with
 * cap >= MOTE_TOK_DECODE_CAP(t->max_token_bytes) nothing is ever dropped. */
uint32_t mote_tok_decode(const mote_tokenizer *t, mote_tok_decoder *d, int32_t token, char *out,
                         uint32_t cap);

/* Emit whatever an interrupted stream still holds (an incomplete character becomes
 * U+FFFD, 3 bytes) and reset the pending bytes. */
uint32_t mote_tok_decode_flush(mote_tok_decoder *d, char *out, uint32_t cap);

#endif /* MOTE_TOKENIZER_H */
