/* text.c - see text.h. */
#include "text.h"

void mote_text_init(mote_text *t, char *buf, uint32_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
}

void mote_text_str(mote_text *t, const char *s)
{
    while (*s && t->len < t->cap) t->buf[t->len++] = *s++;
}

void mote_text_bytes(mote_text *t, const char *s, uint32_t n)
{
    for (uint32_t i = 0; i < n && t->len < t->cap; i++) t->buf[t->len++] = s[i];
}

void mote_text_u64(mote_text *t, uint64_t v)
{
    char digits[20];
    uint32_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n && t->len < t->cap) t->buf[t->len++] = digits[--n];
}

void mote_text_fixed(mote_text *t, double v, uint32_t decimals, int trim)
{
    uint64_t scale = 1u;
    for (uint32_t i = 0; i < decimals; i++) scale *= 10u;
    const uint64_t scaled = (uint64_t)(v * (double)scale + 0.5);
    mote_text_u64(t, scaled / scale);
    uint64_t frac = scaled % scale;
    if (decimals == 0u || (trim && frac == 0u)) return;
    char digits[20];
    uint32_t n = decimals;
    for (uint32_t i = n; i-- > 0;) {
        digits[i] = (char)('0' + frac % 10u);
        frac /= 10u;
    }
    while (trim && digits[n - 1] == '0') n--;
    mote_text_str(t, ".");
    mote_text_bytes(t, digits, n);
}

int mote_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        const uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10u) return 0;
        v = v * 10u + d;
    }
    *out = v;
    return 1;
}

/* The digits form an exact integer m and the value is m / 10^k: one correctly rounded
 * division in double, then a conversion to float. */
int mote_parse_float(const char *s, float *out)
{
    uint64_t mantissa = 0;
    uint32_t digits = 0, frac_digits = 0;
    int seen_point = 0, any_digit = 0;
    for (; *s; s++) {
        if (*s == '.' && !seen_point) {
            seen_point = 1;
        } else if (*s >= '0' && *s <= '9') {
            if (mantissa || *s != '0') digits++; /* leading zeros are not significant */
            if (digits > 18u) return 0;
            mantissa = mantissa * 10u + (uint64_t)(*s - '0');
            frac_digits += (uint32_t)seen_point;
            any_digit = 1;
        } else {
            return 0;
        }
    }
    if (!any_digit) return 0;
    double scale = 1.0;
    for (uint32_t i = 0; i < frac_digits; i++) scale *= 10.0;
    *out = (float)((double)mantissa / scale);
    return 1;
}
