/* chat.c - see chat.h. Step for step host/mote/reference/chat.py (the oracle): the
 * same layout, the same ids, the same choice of what to drop. */
#include "chat.h"

#include <string.h>

#include "text.h"

/* ------------------------------------------------------------------------------------
 * Laying out segments as ids */

typedef struct {
    const mote_tokenizer *tok;
    const mote_chat_work *w;
    uint32_t text_len; /* text waiting in w->text, joined until a token comes */
    int32_t *ids;
    uint32_t n, cap;
    int failed;
} layout;

static void layout_init(layout *l, const mote_tokenizer *tok, const mote_chat_work *w, int32_t *ids,
                        uint32_t cap)
{
    l->tok = tok;
    l->w = w;
    l->text_len = 0;
    l->ids = ids;
    l->n = 0;
    l->cap = cap;
    l->failed = 0;
}

static void layout_text(layout *l, const uint8_t *p, uint32_t n)
{
    if (n > l->w->text_cap - l->text_len) {
        l->failed = 1;
        return;
    }
    memcpy(l->w->text + l->text_len, p, n);
    l->text_len += n;
}

/* Encode the waiting text (as text: a user can never type a control token). */
static void layout_flush(layout *l)
{
    int32_t got;
    if (l->text_len == 0 || l->failed) return;
    got = mote_tok_encode(l->tok, l->w->text, l->text_len, 0, l->ids + l->n, l->cap - l->n);
    if (got < 0) l->failed = 1;
    else l->n += (uint32_t)got;
    l->text_len = 0;
}

static void layout_id(layout *l, int32_t id)
{
    layout_flush(l);
    if (l->failed || l->n == l->cap) {
        l->failed = 1;
        return;
    }
    l->ids[l->n++] = id;
}

/* A segment's items: text, a token mark and its id, the content mark (validated at
 * open, so every mark is whole). */
static void layout_segment(layout *l, const mote_chat *tpl, uint32_t seg, const char *content,
                           uint32_t content_len)
{
    const uint8_t *p = tpl->segment[seg];
    const uint32_t n = tpl->segment_bytes[seg];
    uint32_t i = 0, start = 0;
    while (i < n) {
        if (p[i] == MOTE_CHAT_TOKEN_MARK) {
            layout_text(l, p + start, i - start);
            layout_id(l, (int32_t)((uint32_t)p[i + 1u] | (uint32_t)p[i + 2u] << 8));
            start = i += 3u;
        } else if (p[i] == MOTE_CHAT_CONTENT_MARK) {
            layout_text(l, p + start, i - start);
            layout_text(l, (const uint8_t *)content, content_len);
            start = ++i;
        } else {
            i++;
        }
    }
    layout_text(l, p + start, n - start);
}

static const char *message(const mote_chat_work *w, const char *a, uint64_t x, const char *b, uint64_t y,
                           const char *c)
{
    mote_text t;
    mote_text_init(&t, w->msg, w->msg_cap - 1u);
    mote_text_str(&t, a);
    mote_text_u64(&t, x);
    mote_text_str(&t, b);
    mote_text_u64(&t, y);
    mote_text_str(&t, c);
    w->msg[t.len] = '\0';
    return w->msg;
}

/* ------------------------------------------------------------------------------------
 * The conversation */

mote_chat_work mote_chat_scratch_work(const mote_state *s, uint32_t content, char *msg, uint32_t msg_cap)
{
    mote_chat_work w;
    uint32_t text_cap = MOTE_CHAT_TEXT_CAP(content);
    if (text_cap > s->scratch_bytes / 2u) text_cap = s->scratch_bytes / 2u; /* tiny models */
    text_cap &= ~3u;
    w.ids = (int32_t *)s->scratch;
    w.ids_cap = (s->scratch_bytes - text_cap) / (uint32_t)sizeof(int32_t);
    w.text = (char *)s->scratch + (s->scratch_bytes - text_cap);
    w.text_cap = text_cap;
    w.msg = msg;
    w.msg_cap = msg_cap;
    return w;
}

void mote_conv_init(mote_conversation *cv, const mote_chat *tpl)
{
    memset(cv, 0, sizeof *cv);
    cv->tpl = tpl;
    cv->unfed = -1;
}

const char *mote_chat_default_system(const mote_chat *tpl, uint32_t *len)
{
    *len = tpl->segment_bytes[MOTE_CHAT_SEG_DEFAULT_SYSTEM];
    return (const char *)tpl->segment[MOTE_CHAT_SEG_DEFAULT_SYSTEM];
}

const char *mote_conv_start(mote_conversation *cv, mote_state *s, const char *system,
                            uint32_t len, const mote_chat_work *w)
{
    layout l;
    layout_init(&l, &s->model->tokenizer, w, w->ids, w->ids_cap);
    layout_segment(&l, cv->tpl, MOTE_CHAT_SEG_BEGIN, NULL, 0);
    if (len) layout_segment(&l, cv->tpl, MOTE_CHAT_SEG_SYSTEM, system, len);
    layout_flush(&l);
    /* a turn needs at least one position and a reply another */
    if (l.failed || l.n + 2u > s->ctx)
        return message(w, "the system prompt of ", len, " bytes leaves no room in the context of ",
                       s->ctx, " tokens");
    memcpy(s->tokens, w->ids, (size_t)l.n * sizeof *w->ids);
    mote_conv_init(cv, cv->tpl);
    cv->started = 1;
    cv->system_turn = len != 0u;
    cv->pinned = cv->pos = l.n;
    mote_conv_reset(cv);
    return NULL;
}

void mote_conv_reset(mote_conversation *cv)
{
    cv->pos = cv->pinned;
    if (cv->run > cv->pinned) cv->run = cv->pinned;
    cv->n_turns = 0;
    cv->unfed = -1;
    cv->replied = 0;
    cv->first_user = cv->system_turn && cv->tpl->segment_bytes[MOTE_CHAT_SEG_USER_FIRST] != 0u;
}

/* Positions the conversation holds after dropping its `k` oldest exchanges (k ==
 * n_turns: all of them, and the closing of the last reply with them). */
static uint32_t pos_after_dropping(const mote_conversation *cv, uint32_t k)
{
    if (k == 0u) return cv->pos;
    if (k == cv->n_turns) return cv->pinned;
    return cv->pos - (cv->turn_start[k] - cv->pinned);
}

static void drop_oldest(mote_conversation *cv, mote_state *s, uint32_t k)
{
    const uint32_t keep = k == cv->n_turns ? cv->pos : cv->turn_start[k];
    const uint32_t gone = keep - cv->pinned;
    uint32_t i;
    memmove(s->tokens + cv->pinned, s->tokens + keep, (size_t)(cv->pos - keep) * sizeof *s->tokens);
    for (i = k; i < cv->n_turns; i++) cv->turn_start[i - k] = cv->turn_start[i] - gone;
    cv->n_turns -= k;
    cv->pos -= gone;
    if (cv->run > cv->pinned) cv->run = cv->pinned;
}

const char *mote_conv_turn(mote_conversation *cv, mote_state *s, mote_sampler *smp,
                           const char *line, uint32_t len, const mote_gen_io *io,
                           const mote_chat_work *w, mote_gen_stats *stats, mote_turn_info *info)
{
    const mote_chat *tpl = cv->tpl;
    const uint32_t ctx = s->ctx;
    const int32_t *ids;
    mote_gen_io gen;
    layout l;
    uint32_t n_close = 0, n_turn, reserve, k, end;
    memset(info, 0, sizeof *info);
    if (!cv->started) {
        uint32_t n;
        const char *system = mote_chat_default_system(tpl, &n);
        const char *err = mote_conv_start(cv, s, system, n, w);
        if (err) return err;
    }
    /* the closing of the open reply (its own text), then the turn, in w->ids */
    layout_init(&l, &s->model->tokenizer, w, w->ids, w->ids_cap);
    if (cv->replied) {
        if (cv->unfed >= 0) layout_id(&l, cv->unfed);
        layout_segment(&l, tpl, MOTE_CHAT_SEG_ASSISTANT_END, NULL, 0);
        layout_flush(&l);
        n_close = l.n;
    }
    layout_segment(&l, tpl, cv->first_user ? MOTE_CHAT_SEG_USER_FIRST : MOTE_CHAT_SEG_USER, line, len);
    layout_segment(&l, tpl, MOTE_CHAT_SEG_ASSISTANT, NULL, 0);
    layout_flush(&l);
    if (l.failed)
        return message(w, "a turn of ", len, " bytes is more than this model's arena can lay out (",
                       w->ids_cap, " tokens); a shorter line");
    n_turn = l.n - n_close;

    /* room for the reply: n tokens, at most a quarter of what the system turn leaves */
    reserve = (ctx - cv->pinned) / 4u;
    if (io->max_new_tokens < reserve) reserve = io->max_new_tokens;
    if (reserve == 0u) reserve = 1u;
    for (k = 0; k <= cv->n_turns; k++) {
        const uint32_t closing = k == cv->n_turns && k ? 0u : n_close;
        if ((uint64_t)pos_after_dropping(cv, k) + closing + n_turn + reserve <= ctx) break;
    }
    if (k > cv->n_turns) {
        /* not with the whole reserve: with whatever room dropping everything leaves */
        if ((uint64_t)cv->pinned + n_turn + 1u > ctx)
            return message(w, "this turn of ", n_turn, " tokens does not fit the context of ", ctx,
                           " tokens with the system prompt: /reset, a shorter line or a larger context");
        k = cv->n_turns;
    }
    ids = w->ids;
    if (k) {
        drop_oldest(cv, s, k);
        info->dropped = k;
        if (cv->n_turns == 0u) { /* the reply that closing closed is gone too */
            ids += n_close;
            n_close = 0;
        }
    }
    info->rerun = cv->pos - cv->run;
    memcpy(s->tokens + cv->pos, ids, (size_t)n_close * sizeof *ids);
    cv->pos += n_close;
    if (cv->n_turns == MOTE_CHAT_TURNS_MAX) { /* the two oldest exchanges become one */
        memmove(cv->turn_start + 1, cv->turn_start + 2, (MOTE_CHAT_TURNS_MAX - 2u) * sizeof cv->turn_start[0]);
        cv->n_turns--;
    }
    cv->turn_start[cv->n_turns++] = cv->pos;
    memcpy(s->tokens + cv->pos, ids + n_close, (size_t)n_turn * sizeof *ids);
    end = cv->pos + n_turn;
    cv->replied = 0;
    cv->unfed = -1;

    gen = *io;
    gen.stop_ids = tpl->stops;
    gen.n_stop_ids = tpl->n_stops;
    if (mote_generate(s, smp, s->tokens + cv->run, end - cv->run, cv->run, &gen, stats) != MOTE_OK)
        return message(w, "the turn's ", end - cv->run, " ids cannot run at position ", cv->run, "");
    if (stats->end_pos < end) {
        /* stopped while the turn was read: it is dropped, what ran before it stays */
        cv->run = stats->end_pos < cv->pos ? stats->end_pos : cv->pos;
        cv->n_turns--;
        cv->pos = cv->turn_start[cv->n_turns];
        return NULL;
    }
    cv->run = cv->pos = stats->end_pos;
    cv->unfed = stats->unfed;
    cv->replied = 1;
    cv->first_user = 0;
    return NULL;
}
