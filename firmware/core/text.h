/* text.h - the core's only number formatting and parsing (it has no printf or strtod):
 * a bounded line builder and the parsers of the console's settings. Ports use the
 * builder too, for their own lines. */
#ifndef MOTE_TEXT_H
#define MOTE_TEXT_H

#include <stdint.h>

/* Appends into buf[0, cap); what does not fit is dropped, never written past cap. */
typedef struct {
    char *buf;
    uint32_t cap, len;
} mote_text;

void mote_text_init(mote_text *t, char *buf, uint32_t cap);
void mote_text_str(mote_text *t, const char *s);
void mote_text_bytes(mote_text *t, const char *s, uint32_t n);
void mote_text_u64(mote_text *t, uint64_t v);
/* `v` >= 0 rounded to `decimals` places, trailing zeros dropped when `trim`. */
void mote_text_fixed(mote_text *t, double v, uint32_t decimals, int trim);

/* A decimal integer that fits in u64; returns 1, or 0 (and leaves *out) otherwise. */
int mote_parse_u64(const char *s, uint64_t *out);

/* A plain decimal ("0.8", "1", ".5", "2.") of at most 18 significant digits, as the
 * float Python's np.float32(float(s)) gives; returns 1, or 0 otherwise. */
int mote_parse_float(const char *s, float *out);

#endif /* MOTE_TEXT_H */
