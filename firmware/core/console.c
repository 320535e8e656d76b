/* console.c - the serial text protocol (docs/serial-protocol.md) over hal.h: banner,
 * line assembly, /commands and settings, error lines, a prompt line run through
 * generate.h and its stats line. No OS, no malloc, no mutable globals: everything
 * lives in the caller's mote_console. */
#include "console.h"

#include <string.h>

#include "hal.h"
#include "text.h"

#define CTRL_C 0x03u
#define BACKSPACE 0x08u
#define DELETE 0x7Fu
#define MAX_TEMPERATURE 100.0f

static const mote_settings default_settings = {
    .temperature = 0.8f, .top_p = 0.9f, .top_k = 0u, .seed = 0u, .max_new_tokens = 256u};

/* ------------------------------------------------------------------------------------
 * Output: lines built with text.h (the core has no printf) */

typedef struct {
    char buf[256]; /* the longest line, the banner, stays under 200 bytes */
    mote_text t;
} out_line;

static void out_init(out_line *o) { mote_text_init(&o->t, o->buf, sizeof o->buf); }

static void out_str(out_line *o, const char *s) { mote_text_str(&o->t, s); }
static void out_bytes(out_line *o, const char *s, uint32_t n) { mote_text_bytes(&o->t, s, n); }
static void out_u64(out_line *o, uint64_t v) { mote_text_u64(&o->t, v); }
static void out_fixed(out_line *o, double v, uint32_t decimals, int trim)
{
    mote_text_fixed(&o->t, v, decimals, trim);
}

static void out_send(const out_line *o) { hal_write(o->buf, o->t.len); }

/* The built text as a C string in c->msg (error messages outlive the builder). */
static const char *out_to_msg(const out_line *o, mote_console *c)
{
    const uint32_t n = o->t.len < MOTE_CONSOLE_MSG_MAX ? o->t.len : MOTE_CONSOLE_MSG_MAX - 1u;
    memcpy(c->msg, o->buf, n);
    c->msg[n] = '\0';
    return c->msg;
}

static void send_str(const char *s) { hal_write(s, strlen(s)); }

static void send_line(const char *s)
{
    send_str(s);
    send_str("\r\n");
}

static void send_error(const char *message)
{
    send_str("error: ");
    send_line(message);
}

/* Generated text, with every "\n" sent as "\r\n" when crlf (terminals in raw mode). */
static void send_text(const char *s, uint32_t n, int crlf)
{
    uint32_t start = 0;
    for (uint32_t i = 0; crlf && i < n; i++) {
        if (s[i] != '\n') continue;
        hal_write(s + start, i - start);
        hal_write("\r\n", 2);
        start = i + 1;
    }
    hal_write(s + start, n - start);
}

/* ------------------------------------------------------------------------------------
 * Settings */

static const char *line_problem(mote_console *c, const char *s, uint32_t len);

static void apply_settings(mote_console *c)
{
    const mote_settings *s = &c->settings;
    mote_sampler_init(&c->sampler, s->temperature, s->top_p, s->top_k, s->seed);
}

static int is_chat(const mote_console *c) { return c->status == MOTE_OK && c->model.chat.n_stops > 0u; }

/* The buffers a conversation works in: the arena's scratch, and the console's msg. */
static mote_chat_work chat_work(mote_console *c)
{
    return mote_chat_scratch_work(&c->state, MOTE_CONSOLE_LINE_MAX, c->msg, sizeof c->msg);
}

/* A new conversation with this system prompt (NULL: the blob's default). */
static const char *start_conversation(mote_console *c, const char *system, uint32_t len)
{
    const mote_chat_work w = chat_work(c);
    if (system == NULL) system = mote_chat_default_system(&c->model.chat, &len);
    return mote_conv_start(&c->conv, &c->state, system, len, &w);
}

const char *mote_console_set(mote_console *c, const char *name, const char *value)
{
    mote_settings *s = &c->settings;
    float f;
    uint64_t u;
    if (strcmp(name, "temp") == 0) {
        if (!mote_parse_float(value, &f) || f > MAX_TEMPERATURE) return "temp must be a decimal number from 0 to 100";
        s->temperature = c->sampler.temperature = f;
    } else if (strcmp(name, "topp") == 0) {
        if (!mote_parse_float(value, &f) || f <= 0.0f || f > 1.0f) return "topp must be a decimal number above 0 and at most 1";
        s->top_p = c->sampler.top_p = f;
    } else if (strcmp(name, "topk") == 0) {
        if (!mote_parse_u64(value, &u) || u > UINT32_MAX) return "topk must be a whole number (0 = off)";
        s->top_k = c->sampler.top_k = (uint32_t)u;
    } else if (strcmp(name, "seed") == 0) {
        if (!mote_parse_u64(value, &u)) return "seed must be a whole number below 2^64";
        s->seed = u;
        apply_settings(c); /* restarts the random sequence */
    } else if (strcmp(name, "n") == 0) {
        if (!mote_parse_u64(value, &u) || u == 0u || u > UINT32_MAX) return "n must be a whole number from 1";
        s->max_new_tokens = (uint32_t)u;
    } else if (strcmp(name, "system") == 0) {
        if (!is_chat(c)) return "this model has no chat template: /system does not apply";
        const uint32_t len = (uint32_t)strlen(value);
        const char *problem = line_problem(c, value, len);
        if (problem) return problem;
        return start_conversation(c, value, len);
    } else {
        return "unknown setting";
    }
    return NULL;
}

static void out_setting(out_line *o, const mote_console *c, const char *name)
{
    const mote_settings *s = &c->settings;
    out_str(o, name);
    out_str(o, "=");
    if (strcmp(name, "temp") == 0) out_fixed(o, s->temperature, 3, 1);
    else if (strcmp(name, "topp") == 0) out_fixed(o, s->top_p, 3, 1);
    else if (strcmp(name, "topk") == 0) out_u64(o, s->top_k);
    else if (strcmp(name, "seed") == 0) out_u64(o, s->seed);
    else if (strcmp(name, "n") == 0) out_u64(o, s->max_new_tokens);
    else if (strcmp(name, "echo") == 0) out_str(o, c->cfg.echo ? "on" : "off");
}

static void out_all_settings(out_line *o, const mote_console *c)
{
    static const char *const names[] = {"temp", "topp", "topk", "seed", "n", "echo"};
    for (uint32_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (i) out_str(o, " ");
        out_setting(o, c, names[i]);
    }
}

/* ------------------------------------------------------------------------------------
 * Banner and /info */

static const char *dtype_name(uint8_t dtype)
{
    static const char *const names[MOTE_DTYPE_CODES] = MOTE_DTYPE_NAMES_INIT;
    return dtype < MOTE_DTYPE_CODES && names[dtype] ? names[dtype] : "?";
}

/* The model name with anything that would break "key=value" parsing replaced. */
static void out_name(out_line *o, const char *name)
{
    if (!*name) out_str(o, "unnamed");
    for (; *name; name++) {
        const char ch = (*name == ' ' || (unsigned char)*name < 0x20u) ? '_' : *name;
        out_bytes(o, &ch, 1);
    }
}

static const char *model_problem(const mote_console *c)
{
    return c->model.blob ? "cannot start the model" : "no valid model in flash";
}

/* "no valid model in flash: bad magic" and the like, into c->msg. */
static const char *model_error(mote_console *c)
{
    out_line o;
    out_init(&o);
    out_str(&o, model_problem(c));
    out_str(&o, ": ");
    out_str(&o, mote_status_str(c->status));
    return out_to_msg(&o, c);
}

static const char *line_too_long(mote_console *c)
{
    out_line o;
    out_init(&o);
    out_str(&o, "line longer than ");
    out_u64(&o, MOTE_CONSOLE_LINE_MAX);
    out_str(&o, " bytes");
    return out_to_msg(&o, c);
}

static const char *invalid_utf8(mote_console *c, uint32_t at)
{
    out_line o;
    out_init(&o);
    out_str(&o, "invalid UTF-8 at byte ");
    out_u64(&o, at);
    return out_to_msg(&o, c);
}

/* Why a received line (command or prompt) cannot run, or NULL. A NUL is refused
 * rather than read: the C strings the commands parse would end there silently. */
static const char *line_problem(mote_console *c, const char *s, uint32_t len)
{
    if (len > MOTE_CONSOLE_LINE_MAX) return line_too_long(c);
    if (memchr(s, '\0', len)) return "line contains a NUL byte";
    const uint32_t bad = mote_utf8_invalid_at((const uint8_t *)s, len);
    return bad != len ? invalid_utf8(c, bad) : NULL;
}

static void send_banner_line(const mote_console *c)
{
    out_line o;
    out_init(&o);
    out_str(&o, "mote " MOTE_CONSOLE_VERSION " board=");
    out_str(&o, c->cfg.board);
    if (c->status != MOTE_OK) {
        out_str(&o, " model=none\r\n");
        out_send(&o);
        return;
    }
    const mote_config *k = &c->model.config;
    out_str(&o, " model=");
    out_name(&o, k->name);
    out_str(&o, " params=");
    out_u64(&o, mote_param_count(k));
    out_str(&o, " ctx=");
    out_u64(&o, c->state.ctx);
    out_str(&o, " arena=");
    out_u64(&o, mote_arena_bytes(k, c->state.ctx));
    out_str(&o, " quant=");
    out_str(&o, dtype_name(c->model.layers[0].wq.dtype));
    out_str(&o, " group=");
    out_u64(&o, k->group_size);
    out_str(&o, " chat=");
    out_str(&o, is_chat(c) ? c->model.chat.name : "none");
    out_str(&o, "\r\n");
    out_send(&o);
}

void mote_console_banner(mote_console *c)
{
    send_banner_line(c);
    if (c->status != MOTE_OK) send_error(model_error(c));
    send_str("> ");
}

static void send_info(mote_console *c)
{
    send_banner_line(c);
    out_line o;
    out_init(&o);
    if (c->status != MOTE_OK) {
        send_error(model_error(c));
    } else {
        const mote_config *k = &c->model.config;
        out_str(&o, "model dim=");
        out_u64(&o, k->dim);
        out_str(&o, " hidden=");
        out_u64(&o, k->hidden_dim);
        out_str(&o, " layers=");
        out_u64(&o, k->n_layers);
        out_str(&o, " heads=");
        out_u64(&o, k->n_heads);
        out_str(&o, " kv_heads=");
        out_u64(&o, k->n_kv_heads);
        out_str(&o, " head_dim=");
        out_u64(&o, k->head_dim);
        out_str(&o, " vocab=");
        out_u64(&o, k->vocab_size);
        out_str(&o, " max_seq_len=");
        out_u64(&o, k->max_seq_len);
        out_str(&o, k->activation == MOTE_ACT_RELU ? " activation=relu\r\n" : " activation=silu\r\n");
        out_send(&o);
        o.t.len = 0;
        out_str(&o, "memory arena=");
        out_u64(&o, mote_arena_bytes(k, c->state.ctx));
        out_str(&o, " blob=");
        out_u64(&o, c->model.blob_bytes);
        out_str(&o, " ctx=");
        out_u64(&o, c->state.ctx);
        out_str(&o, " prefill_batch=");
        out_u64(&o, c->state.batch);
        out_str(&o, " rope_table=");
        out_u64(&o, c->state.rope_all_cos ? mote_rope_table_bytes(k, c->state.ctx) : 0u);
        out_str(&o, "\r\n");
        out_send(&o);
        o.t.len = 0;
        if (is_chat(c)) {
            const mote_conversation *cv = &c->conv;
            out_str(&o, "chat template=");
            out_str(&o, c->model.chat.name);
            out_str(&o, " turns=");
            out_u64(&o, cv->n_turns);
            out_str(&o, " ctx_used=");
            out_u64(&o, cv->pos);
            out_str(&o, " system_tokens=");
            out_u64(&o, cv->pinned);
            out_str(&o, "\r\n");
            out_send(&o);
            o.t.len = 0;
        }
    }
    if (c->cfg.port_info) {
        char port[MOTE_CONSOLE_MSG_MAX];
        const uint32_t n = c->cfg.port_info(port, sizeof port);
        out_bytes(&o, port, n < sizeof port ? n : sizeof port);
        out_str(&o, "\r\n");
        out_send(&o);
        o.t.len = 0;
    }
    out_str(&o, "sampler ");
    out_all_settings(&o, c);
    out_str(&o, "\r\n");
    out_send(&o);
}

/* ------------------------------------------------------------------------------------
 * Prompt lines */

/* Reads what arrived during a generation: 1 at a 0x03 byte. Other bytes are kept for
 * after the generation (type-ahead) while there is room; when the room is full they
 * stay unread in the port (an OS buffer keeps them, a FIFO-less UART drops them). */
static int stop_requested(void *ctx)
{
    mote_console *c = ctx;
    while (c->ahead_len < MOTE_CONSOLE_AHEAD) {
        const int b = hal_read_byte(0);
        if (b < 0) return 0;
        if (b == (int)CTRL_C) {
            /* as at the prompt, 0x03 also drops the unfinished line typed before it, so
             * "0x03 then /echo off" resynchronises a host from anywhere */
            while (c->ahead_len) {
                const uint8_t last =
                    c->ahead[(c->ahead_start + c->ahead_len - 1u) % MOTE_CONSOLE_AHEAD];
                if (last == '\r' || last == '\n') break;
                c->ahead_len--;
            }
            return 1;
        }
        c->ahead[(c->ahead_start + c->ahead_len++) % MOTE_CONSOLE_AHEAD] = (uint8_t)b;
    }
    return 0;
}

static void write_text(void *ctx, const char *text, uint32_t len)
{
    (void)ctx;
    send_text(text, len, 0);
}

static void write_text_crlf(void *ctx, const char *text, uint32_t len)
{
    (void)ctx;
    send_text(text, len, 1);
}

const char *mote_console_generate(mote_console *c, const char *prompt, uint32_t len, int crlf,
                                  mote_gen_stats *stats)
{
    if (c->status != MOTE_OK) return model_error(c);
    if (len == 0u) return "empty prompt";
    const char *problem = line_problem(c, prompt, len);
    if (problem) return problem;

    const mote_gen_io io = {.max_new_tokens = c->settings.max_new_tokens,
                            .stop_at_end = 1,
                            .write = crlf ? write_text_crlf : write_text,
                            .text = c->text,
                            .text_cap = sizeof c->text,
                            .stop = stop_requested,
                            .ticks = hal_ticks,
                            .ticks_per_second = hal_ticks_per_second(),
                            .ctx = c};
    if (is_chat(c)) {
        const mote_chat_work w = chat_work(c);
        return mote_conv_turn(&c->conv, &c->state, &c->sampler, prompt, len, &io, &w, stats,
                              &c->turn);
    }
    const int32_t n_prompt = mote_gen_encode(&c->model.tokenizer, prompt, len, c->ids,
                                             sizeof c->ids / sizeof c->ids[0]);
    if (n_prompt <= 0) return "the prompt cannot be encoded";
    if (mote_generate(&c->state, &c->sampler, c->ids, (uint32_t)n_prompt, 0, &io, stats) != MOTE_OK) {
        /* the only refusal left for ids the tokenizer made */
        out_line o;
        out_init(&o);
        out_str(&o, "prompt of ");
        out_u64(&o, (uint64_t)n_prompt);
        out_str(&o, " tokens does not fit the context of ");
        out_u64(&o, c->state.ctx);
        return out_to_msg(&o, c);
    }
    return NULL;
}

static uint64_t ticks_to_ms(uint64_t ticks, uint64_t per_second)
{
    if (per_second == 0u) return 0u;
    return ticks / per_second * 1000u + ticks % per_second * 1000u / per_second;
}

uint32_t mote_console_format_stats(const mote_gen_stats *s, char *out, uint32_t cap)
{
    out_line o;
    out_init(&o);
    const uint64_t decode_ticks = s->total_ticks - s->prefill_ticks;
    double tok_s = 0.0;
    if (decode_ticks && s->ticks_per_second)
        tok_s = (double)s->new_tokens * (double)s->ticks_per_second / (double)decode_ticks;
    out_str(&o, "[stats] tokens=");
    out_u64(&o, s->new_tokens);
    out_str(&o, " prompt=");
    out_u64(&o, s->prompt_tokens);
    out_str(&o, " prefill_ms=");
    out_u64(&o, ticks_to_ms(s->prefill_ticks, s->ticks_per_second));
    out_str(&o, " ms=");
    out_u64(&o, ticks_to_ms(s->total_ticks, s->ticks_per_second));
    out_str(&o, " tok_s=");
    out_fixed(&o, tok_s, 2, 0);
    out_str(&o, " decode_ticks="); /* exact, for hosts that count instructions per tick */
    out_u64(&o, decode_ticks);
    out_str(&o, " ticks_hz=");
    out_u64(&o, s->ticks_per_second);
    out_str(&o, " read_bytes_per_token="); /* weights read, counted by the runtime */
    out_u64(&o, s->decode_passes ? s->decode_read_bytes / s->decode_passes : 0u);
    out_str(&o, " end=");
    out_str(&o, mote_end_name(s->end));
    const uint32_t n = o.t.len < cap ? o.t.len : cap - 1u;
    memcpy(out, o.buf, n);
    out[n] = '\0';
    return n;
}

static void run_prompt(mote_console *c)
{
    mote_gen_stats stats;
    const char *err = mote_console_generate(c, c->line, c->line_len, 1, &stats);
    if (err) {
        send_error(err);
        return;
    }
    /* Always a line break before the stats, so a host can cut the text off exactly. */
    send_str("\r\n");
    char line[256];
    uint32_t n = mote_console_format_stats(&stats, line, sizeof line);
    if (is_chat(c)) { /* where the conversation stands after this turn */
        mote_text t;
        mote_text_init(&t, line + n, (uint32_t)sizeof line - n - 1u);
        mote_text_str(&t, " ctx_used=");
        mote_text_u64(&t, c->conv.pos);
        mote_text_str(&t, " dropped=");
        mote_text_u64(&t, c->turn.dropped);
        line[n + t.len] = '\0';
    }
    send_line(line);
}

/* ------------------------------------------------------------------------------------
 * Commands */

#define COMMAND_HELP \
    "commands: /temp X  /topp X  /topk N  /seed N  /n N  /echo on|off  /reset  /info  /help\r\n" \
    "chat models: /system TEXT (a new conversation with this system prompt; alone: the default)\r\n" \
    "any other line is a prompt (chat models: your turn); a 0x03 byte (Ctrl-C) stops a generation\r\n"

/* Splits "/name  arg" into NUL-terminated name and argument; 0 if either is too long. */
static int split_command(const char *line, uint32_t len, char *name, uint32_t name_cap, char *arg,
                         uint32_t arg_cap)
{
    uint32_t i = 1, n = 0;
    while (i < len && line[i] != ' ' && line[i] != '\t') {
        if (n + 1u >= name_cap) return 0;
        name[n++] = line[i++];
    }
    name[n] = '\0';
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    while (len > i && (line[len - 1u] == ' ' || line[len - 1u] == '\t')) len--;
    if (len - i + 1u > arg_cap) return 0;
    memcpy(arg, line + i, len - i);
    arg[len - i] = '\0';
    return 1;
}

/* "/system TEXT": the rest of the line, however long, is the system prompt. */
static void run_system(mote_console *c, const char *text, uint32_t len)
{
    const char *err;
    if (!is_chat(c)) {
        send_error("this model has no chat template: /system does not apply");
        return;
    }
    /* the line itself passed line_problem; the default may be empty: then no system turn */
    err = len ? start_conversation(c, text, len) : start_conversation(c, NULL, 0);
    if (err) {
        send_error(err);
        return;
    }
    out_line o;
    out_init(&o);
    out_str(&o, "ok new conversation, system prompt of ");
    out_u64(&o, c->conv.pinned);
    out_str(&o, " tokens\r\n");
    out_send(&o);
}

static void run_command(mote_console *c)
{
    char name[16], arg[64];
    static const char system[] = "/system";
    const uint32_t n = (uint32_t)sizeof system - 1u;
    if (c->line_len >= n && memcmp(c->line, system, n) == 0 &&
        (c->line_len == n || c->line[n] == ' ' || c->line[n] == '\t')) {
        uint32_t start = n, end = c->line_len;
        while (start < end && (c->line[start] == ' ' || c->line[start] == '\t')) start++;
        while (end > start && (c->line[end - 1u] == ' ' || c->line[end - 1u] == '\t')) end--;
        run_system(c, c->line + start, end - start);
        return;
    }
    if (!split_command(c->line, c->line_len, name, sizeof name, arg, sizeof arg)) {
        send_error("unknown command or argument too long; /help lists the commands");
        return;
    }
    out_line o;
    out_init(&o);
    if (strcmp(name, "help") == 0 || strcmp(name, "info") == 0 || strcmp(name, "reset") == 0) {
        if (arg[0]) {
            out_str(&o, "usage: /");
            out_str(&o, name);
            out_str(&o, " (no argument)");
            send_error(out_to_msg(&o, c));
        } else if (name[0] == 'h') {
            send_str(COMMAND_HELP);
        } else if (name[0] == 'i') {
            send_info(c);
        } else {
            c->settings = default_settings;
            apply_settings(c);
            if (is_chat(c)) mote_conv_reset(&c->conv); /* a new conversation, same system */
            out_str(&o, "ok ");
            out_all_settings(&o, c);
            out_str(&o, "\r\n");
            out_send(&o);
        }
        return;
    }
    if (strcmp(name, "echo") == 0) {
        if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0) {
            send_error("usage: /echo on|off");
            return;
        }
        c->cfg.echo = (arg[1] == 'n');
    } else {
        const char *err = mote_console_set(c, name, arg);
        if (err) {
            send_error(strcmp(err, "unknown setting") == 0
                           ? "unknown command; /help lists the commands"
                           : err);
            return;
        }
    }
    out_str(&o, "ok ");
    out_setting(&o, c, name);
    out_str(&o, "\r\n");
    out_send(&o);
}

/* ------------------------------------------------------------------------------------
 * Line assembly */

static void end_line(mote_console *c)
{
    if (c->cfg.echo) send_str("\r\n");
    const char *problem = line_problem(c, c->line, c->line_len);
    if (c->line_overflow) {
        send_error(line_too_long(c));
    } else if (c->line_len == 0u) {
        /* an empty line only asks for a new prompt */
    } else if (problem) {
        send_error(problem);
    } else if (c->line[0] == '/') {
        run_command(c);
    } else {
        run_prompt(c);
    }
    c->line_len = 0u;
    c->line_overflow = 0u;
    send_str("> ");
}

static void handle_byte(mote_console *c, uint8_t byte)
{
    const int after_cr = c->after_cr;
    c->after_cr = (byte == '\r');
    if (byte == '\n' && after_cr) return; /* the \n of a \r\n */
    if (byte == '\r' || byte == '\n') {
        end_line(c);
    } else if (byte == CTRL_C) {
        /* at the prompt, Ctrl-C drops the line being typed */
        if (c->line_len || c->line_overflow) {
            if (c->cfg.echo) send_str("^C\r\n> ");
            c->line_len = 0u;
            c->line_overflow = 0u;
        }
    } else if (byte == BACKSPACE || byte == DELETE) {
        if (c->line_overflow || c->line_len == 0u) return;
        /* drop one whole UTF-8 character: its continuation bytes, then its lead */
        while (c->line_len > 1u && ((uint8_t)c->line[c->line_len - 1u] & 0xC0u) == 0x80u)
            c->line_len--;
        c->line_len--;
        if (c->cfg.echo) send_str("\b \b");
    } else if (c->line_overflow || c->line_len == MOTE_CONSOLE_LINE_MAX) {
        c->line_overflow = 1u; /* keep reading to the end of the line, then one error */
    } else {
        c->line[c->line_len++] = (char)byte;
        if (c->cfg.echo) hal_write(&byte, 1);
    }
}

void mote_console_input(mote_console *c, uint8_t byte)
{
    handle_byte(c, byte);
    /* bytes that arrived while a line ran; a loop, since handling them can queue more */
    while (c->ahead_len) {
        const uint8_t next = c->ahead[c->ahead_start];
        c->ahead_start = (c->ahead_start + 1u) % MOTE_CONSOLE_AHEAD;
        c->ahead_len--;
        handle_byte(c, next);
    }
}

/* ------------------------------------------------------------------------------------
 * Setup */

mote_status mote_console_init(mote_console *c, const mote_console_config *cfg)
{
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    c->settings = default_settings;
    size_t blob_bytes = 0;
    const uint8_t *blob = hal_blob(&blob_bytes);
    c->status = mote_model_open(&c->model, blob, blob_bytes, 1);
    if (c->status != MOTE_OK) {
        c->model.blob = NULL; /* model_problem(): the blob itself is bad */
        return c->status;
    }
    c->status = mote_state_init(&c->state, &c->model, cfg->arena, cfg->arena_bytes, cfg->ctx);
    if (c->status == MOTE_OK) apply_settings(c);
    mote_conv_init(&c->conv, &c->model.chat);
    return c->status;
}

void mote_console_run(mote_console *c)
{
    mote_console_banner(c);
    for (;;) {
        const int b = hal_read_byte(1000u);
        if (b >= 0) mote_console_input(c, (uint8_t)b);
    }
}
