/* kernels_cm.c - the plain-C Cortex-M kernel set, for cores without the DSP extension
 * (Cortex-M0/M0+, M3: MicroPython's armv6m and armv7m native modules; cores with it run
 * the dsp set): the reference's arithmetic, blocked for cores that run one instruction
 * after another, where the cost is instructions per multiply-add. Four rows (positions, neurons, columns) share each load of an
 * activation code or query element, and their sums stay in registers. Bit for bit
 * the reference (tests/c/test_kernels.c): the integer sums may run in any order, and
 * each output keeps its own float sum in the reference's order. */
#include "kernels.h"

/* ------------------------------------------------------------------ matvec */

/* The int32 sums over columns [begin, end) of four q8 rows. */
static void group_sums_q8(int32_t sum[4], const uint8_t *const row[4], const int8_t *xq,
                          uint32_t begin, uint32_t end)
{
    const int8_t *r0 = (const int8_t *)row[0], *r1 = (const int8_t *)row[1];
    const int8_t *r2 = (const int8_t *)row[2], *r3 = (const int8_t *)row[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i;
    for (i = begin; i < end; i++) {
        const int32_t a = xq[i];
        s0 += r0[i] * a;
        s1 += r1[i] * a;
        s2 += r2[i] * a;
        s3 += r3[i] * a;
    }
    sum[0] = s0;
    sum[1] = s1;
    sum[2] = s2;
    sum[3] = s3;
}

/* The same for four q4 rows: one byte holds columns i (low nibble) and i + 1 (high
 * nibble); groups start on even columns, and an odd last column has only a low one. */
static void group_sums_q4(int32_t sum[4], const uint8_t *const row[4], const int8_t *xq,
                          uint32_t begin, uint32_t end)
{
    const uint8_t *r0 = row[0], *r1 = row[1], *r2 = row[2], *r3 = row[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i;
    for (i = begin; i + 1u < end; i += 2u) {
        const int32_t a = xq[i], b = xq[i + 1u];
        const uint32_t at = i / 2u;
        s0 += mote_q4_low(r0[at]) * a;
        s0 += mote_q4_high(r0[at]) * b;
        s1 += mote_q4_low(r1[at]) * a;
        s1 += mote_q4_high(r1[at]) * b;
        s2 += mote_q4_low(r2[at]) * a;
        s2 += mote_q4_high(r2[at]) * b;
        s3 += mote_q4_low(r3[at]) * a;
        s3 += mote_q4_high(r3[at]) * b;
    }
    if (i < end) {
        const int32_t a = xq[i];
        s0 += mote_q4_low(r0[i / 2u]) * a;
        s1 += mote_q4_low(r1[i / 2u]) * a;
        s2 += mote_q4_low(r2[i / 2u]) * a;
        s3 += mote_q4_low(r3[i / 2u]) * a;
    }
    sum[0] = s0;
    sum[1] = s1;
    sum[2] = s2;
    sum[3] = s3;
}

void mote_cm_matvec(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                     uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    if (w->dtype == MOTE_Q4A) { /* q4a: the reference kernel (kernels.h, README) */
        mote_ref_matvec(y, w, xq, xs, group, row_begin, row_end);
        return;
    }
    const uint32_t cols = w->cols;
    const uint32_t n_groups = (cols + group - 1u) / group;
    const int is_q4 = w->dtype == MOTE_Q4;
    const size_t row_bytes = is_q4 ? (cols + 1u) / 2u : cols;
    uint32_t r, k;
    for (r = row_begin; r < row_end; r += 4u) {
        const uint8_t *row[4];
        const uint16_t *ws[4];
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        uint32_t g;
        /* past row_end the block repeats the last row; those sums are dropped */
        for (k = 0; k < 4u; k++) {
            const uint32_t rk = r + k < row_end ? r + k : row_end - 1u;
            row[k] = (const uint8_t *)w->data + (size_t)rk * row_bytes;
            ws[k] = w->scales + (size_t)rk * n_groups;
        }
        for (g = 0; g < n_groups; g++) {
            const uint32_t begin = g * group;
            const uint32_t end = cols - begin < group ? cols : begin + group;
            int32_t sum[4];
            if (is_q4)
                group_sums_q4(sum, row, xq, begin, end);
            else
                group_sums_q8(sum, row, xq, begin, end);
            for (k = 0; k < 4u; k++)
                acc[k] += (float)sum[k] * (mote_f16_to_f32(ws[k][g]) * xs[g]);
        }
        for (k = 0; k < 4u && r + k < row_end; k++)
            y[r + k] = acc[k];
    }
}

/* Rows per tile of the matrix x matrix product: every position runs the matvec over
 * a tile of rows (a few KB of weights, within a Cortex-M7's data cache) before the next
 * tile, so a tile is fetched from flash once per pass; the classifier and the rest of
 * a prompt's per-token overhead are what a pass saves on a core without a cache. */
#define MATMAT_TILE_ROWS 16u

void mote_cm_matmat(float *y, uint32_t y_stride, const mote_tensor *w, const int8_t *xq,
                    const float *xs, uint32_t n_pos, uint32_t group, uint32_t row_begin,
                    uint32_t row_end)
{
    if (w->dtype == MOTE_Q4A) { /* q4a: the reference kernel (kernels.h, README) */
        mote_ref_matmat(y, y_stride, w, xq, xs, n_pos, group, row_begin, row_end);
        return;
    }
    const uint32_t cols = w->cols, n_groups = (cols + group - 1u) / group;
    uint32_t r0, p;
    for (r0 = row_begin; r0 < row_end; r0 += MATMAT_TILE_ROWS) {
        const uint32_t r1 = row_end - r0 < MATMAT_TILE_ROWS ? row_end : r0 + MATMAT_TILE_ROWS;
        for (p = 0; p < n_pos; p++)
            mote_cm_matvec(y + (size_t)p * y_stride, w, xq + (size_t)p * cols,
                           xs + (size_t)p * n_groups, group, r0, r1);
    }
}

/* ------------------------------------------------------------------ sparse matvec */

/* Rows of y done at a time by the column kernel, as the reference: their int32 group
 * sums live on the stack (256 bytes). */
#define COLUMN_TILE 64u

void mote_cm_matvec_cols(float *y, const mote_tensor *w, const int8_t *xq, const float *xs,
                          uint32_t group, uint32_t row_begin, uint32_t row_end)
{
    const mote_column_map map = mote_columns_of(w, group);
    const uint32_t cols = w->cols;
    int32_t acc[COLUMN_TILE];
    uint32_t tile, r;
    for (tile = row_begin; tile < row_end; tile += COLUMN_TILE) {
        const uint32_t n = row_end - tile < COLUMN_TILE ? row_end - tile : COLUMN_TILE;
        uint32_t begin, g = 0;
        for (r = 0; r < n; r++)
            y[tile + r] = 0.0f;
        for (begin = 0; begin < cols; begin += group, g++) {
            const uint32_t end = cols - begin < group ? cols : begin + group;
            const uint16_t *ws;
            uint32_t j;
            int any = 0;
            for (j = begin; j < end && !any; j++)
                any = xq[j] != 0;
            if (!any)
                continue; /* all codes 0: the dense term is +0, skip the group's scales */
            for (r = 0; r < n; r++)
                acc[r] = 0;
            /* the needed columns four at a time, so that each int32 sum is loaded and
             * stored once per four multiply-adds (integer sums: any order is exact) */
            for (j = begin; j < end;) {
                const int8_t *col[4];
                int32_t a[4];
                uint32_t k = 0, i;
                for (; j < end && k < 4u; j++) {
                    if (xq[j] == 0)
                        continue; /* a column this token does not need: not read */
                    a[k] = xq[j];
                    col[k++] = map.codes + g * map.group_stride + (j - begin) * map.col_stride + tile;
                }
                if (k == 4u) {
                    for (r = 0; r < n; r++)
                        acc[r] += a[0] * col[0][r] + a[1] * col[1][r] + a[2] * col[2][r] +
                                  a[3] * col[3][r];
                } else {
                    for (i = 0; i < k; i++)
                        for (r = 0; r < n; r++)
                            acc[r] += a[i] * col[i][r];
                }
            }
            ws = (const uint16_t *)(const void *)(map.scales + g * map.group_stride_scales) + tile;
            for (r = 0; r < n; r++)
                y[tile + r] += (float)acc[r] * (mote_f16_to_f32(ws[r]) * xs[g]);
        }
    }
}

void mote_cm_matvec_bundled_rows(float *u, const mote_tensor *w_up, const float *gate,
                                  const int8_t *xq, const float *xs, uint32_t group,
                                  uint32_t begin, uint32_t end)
{
    const uint32_t dim = w_up->cols, n_groups = (dim + group - 1u) / group;
    const size_t bundle = 2u * (size_t)dim + 2u * n_groups;
    const size_t group_stride = 2u * (size_t)dim + group * bundle;
    uint32_t j = begin;
    while (j < end) {
        /* the next (up to) four kept neurons, as mote_cm_matvec blocks four rows; a
         * short block repeats its first row and drops the copies' results */
        const uint8_t *row[4];
        uint32_t which[4], k = 0, g, i;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (; j < end && k < 4u; j++) {
            if (gate[j] == 0.0f)
                continue; /* a dropped neuron: its whole bundle stays unread */
            which[k] = j;
            row[k++] = (const uint8_t *)w_up->data + (j / group) * group_stride +
                       2u * (size_t)dim + (j % group) * bundle;
        }
        if (k == 0)
            break;
        for (i = k; i < 4u; i++)
            row[i] = row[0];
        for (g = 0; g < n_groups; g++) {
            const uint32_t lo = g * group, hi = dim - lo < group ? dim : lo + group;
            int32_t sum[4];
            group_sums_q8(sum, row, xq, lo, hi);
            for (i = 0; i < k; i++) {
                const uint16_t *ws = (const uint16_t *)(const void *)(row[i] + dim);
                acc[i] += (float)sum[i] * (mote_f16_to_f32(ws[g]) * xs[g]);
            }
        }
        for (i = 0; i < k; i++)
            u[which[i]] = acc[i];
    }
}

/* ------------------------------------------------------------------ attention */

static void attn_scores_head(float *att, const float *q, const int8_t *kq, const uint16_t *ks,
                             uint32_t stride, uint32_t head_dim, uint32_t n_pos, float sqrt_hd)
{
    uint32_t t, i, j;
    for (t = 0; t < n_pos; t += 4u) {
        const int8_t *k[4];
        float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        /* past n_pos the block repeats the last position; those scores are dropped */
        for (j = 0; j < 4u; j++)
            k[j] = kq + (size_t)(t + j < n_pos ? t + j : n_pos - 1u) * stride;
        for (i = 0; i < head_dim; i++) {
            const float qi = q[i];
            for (j = 0; j < 4u; j++)
                dot[j] += qi * (float)k[j][i];
        }
        for (j = 0; j < 4u && t + j < n_pos; j++)
            att[t + j] = (dot[j] * mote_f16_to_f32(ks[t + j])) / sqrt_hd;
    }
}

static void attn_mix_head(float *out, const float *att, const int8_t *vq, const uint16_t *vs,
                          uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    uint32_t t, i = 0, j;
    for (; i + 8u <= head_dim; i += 8u) {
        float o[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (t = 0; t < n_pos; t++) {
            const int8_t *v = vq + (size_t)t * stride + i;
            const float a = att[t] * mote_f16_to_f32(vs[t]);
            for (j = 0; j < 8u; j++)
                o[j] += a * (float)v[j];
        }
        for (j = 0; j < 8u; j++)
            out[i + j] = o[j];
    }
    if (i == head_dim)
        return;
    /* the last head_dim % 8 dims */
    for (j = i; j < head_dim; j++)
        out[j] = 0.0f;
    for (t = 0; t < n_pos; t++) {
        const int8_t *v = vq + (size_t)t * stride;
        const float a = att[t] * mote_f16_to_f32(vs[t]);
        for (j = i; j < head_dim; j++)
            out[j] += a * (float)v[j];
    }
}


/* one head at a time */
void mote_cm_attn_scores(float *const att[], const float *q, uint32_t n_q, const int8_t *kq,
                         const uint16_t *ks, uint32_t stride, uint32_t head_dim, uint32_t n_pos,
                         float sqrt_hd)
{
    uint32_t h;
    for (h = 0; h < n_q; h++)
        attn_scores_head(att[h], q + (size_t)h * head_dim, kq, ks, stride, head_dim, n_pos, sqrt_hd);
}

void mote_cm_attn_mix(float *out, const float *const att[], uint32_t n_q, const int8_t *vq,
                      const uint16_t *vs, uint32_t stride, uint32_t head_dim, uint32_t n_pos)
{
    uint32_t h;
    for (h = 0; h < n_q; h++)
        attn_mix_head(out + (size_t)h * head_dim, att[h], vq, vs, stride, head_dim, n_pos);
}
