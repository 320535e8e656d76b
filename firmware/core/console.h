/* console.h - the serial text protocol of docs/serial-protocol.md: a banner, then one
 * line per prompt or /command, generated text streamed as it is produced, a stats line.
 * Portable C99: it talks only through hal.h and keeps all of its state in one
 * mote_console that the port owns; the arena comes from the port too. */
#ifndef MOTE_CONSOLE_H
#define MOTE_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "generate.h"
#include "mote.h"

#define MOTE_CONSOLE_VERSION "0.1.0"
#define MOTE_CONSOLE_LINE_MAX 1024u /* longest line (prompt) in bytes */
/* One decode call's text for the longest token a valid tokenizer section holds: every
 * byte may become a 3-byte U+FFFD (tokenizer.h), so no blob's text is ever dropped. */
#define MOTE_CONSOLE_TEXT_MAX MOTE_TOK_DECODE_CAP(MOTE_TOK_MAX_TOKEN_BYTES)
#define MOTE_CONSOLE_MSG_MAX 160u
#define MOTE_CONSOLE_AHEAD 256u /* bytes received during a generation, kept for after it */

/* What /temp, /topp, /topk, /seed and /n set; /reset restores the defaults. */
typedef struct {
    float temperature; /* 0 = greedy */
    float top_p;       /* (0, 1], 1 = off */
    uint32_t top_k;    /* 0 = off */
    uint64_t seed;     /* re-seeds the sampler when set */
    uint32_t max_new_tokens;
} mote_settings;

typedef struct {
    const char *board; /* shown in the banner; no spaces */
    void *arena;       /* from the port: mote_arena_bytes(config, ctx) bytes */
    size_t arena_bytes;
    uint32_t ctx;      /* positions to use; 0 = the blob's ctx_len */
    int echo;          /* echo received line bytes back (serial terminals do not echo) */
    /* Optional (NULL: none): the port's own /info line, e.g. "port stack_high_water=1368
     * stack=16384 static_ram=239096", written to out without a line ending; returns its
     * length (< cap). */
    uint32_t (*port_info)(char *out, uint32_t cap);
} mote_console_config;

typedef struct {
    mote_console_config cfg;
    mote_status status; /* MOTE_OK once a model and its state are ready */
    mote_model model;
    mote_state state;
    mote_settings settings;
    mote_sampler sampler;
    /* a chat model's conversation (chat.h); unused by a completion model */
    mote_conversation conv;
    mote_turn_info turn;
    /* the line being received, and its prompt ids (the encoder's workspace: a token
     * per byte, BOS and the dummy prefix; a chat turn is laid out in the arena's scratch,
     * chat.h); the console's, not the model's arena */
    char line[MOTE_CONSOLE_LINE_MAX];
    int32_t ids[MOTE_CONSOLE_LINE_MAX + 2u];
    uint32_t line_len;
    uint8_t line_overflow; /* more than MOTE_CONSOLE_LINE_MAX bytes arrived: drop the line */
    uint8_t after_cr;      /* the previous byte was \r: a following \n ends nothing */
    uint8_t ahead[MOTE_CONSOLE_AHEAD]; /* ring buffer of type-ahead bytes */
    uint32_t ahead_start, ahead_len;
    char text[MOTE_CONSOLE_TEXT_MAX];   /* one decoded token */
    char msg[MOTE_CONSOLE_MSG_MAX];     /* the last error message */
} mote_console;

/* Open the blob at hal_blob() and carve the arena. Prints nothing. The console works
 * without a model (it reports why on every prompt), so the status is informational. */
mote_status mote_console_init(mote_console *c, const mote_console_config *cfg);

/* Boot output: the banner line (plus an error line without a model) and the prompt. */
void mote_console_banner(mote_console *c);

/* Feed one received byte; a completed line runs as a prompt or command (a prompt polls
 * hal_read_byte(0) for 0x03 while it generates). */
void mote_console_input(mote_console *c, uint8_t byte);

/* For ports without an end of input (boards): banner, then input forever. */
void mote_console_run(mote_console *c);

/* Apply one setting by its command name ("temp", "topp", "topk", "seed", "n"; "system"
 * for a chat model: a new conversation with that system prompt, "" for none) from its
 * text form, as the /commands do. Returns NULL, or an error message. */
const char *mote_console_set(mote_console *c, const char *name, const char *value);

/* A prompt line: check and encode `len` bytes of prompt text, then generate
 * (generate.h) with the settings, streaming the new text through hal_write (with "\n"
 * sent as "\r\n" when crlf) and stopping at a 0x03 byte from hal_read_byte. A chat
 * model takes the line as the user's turn in its conversation (chat.h). Returns NULL
 * and fills `stats`, or returns an error message and generates nothing. */
const char *mote_console_generate(mote_console *c, const char *prompt, uint32_t len, int crlf,
                                  mote_gen_stats *stats);

/* The stats line without its line ending, e.g. "[stats] tokens=64 prompt=5
 * prefill_ms=3 ms=120 tok_s=545.45 decode_ticks=2925000 ticks_hz=25000000 end=length";
 * returns its length (< cap). */
uint32_t mote_console_format_stats(const mote_gen_stats *stats, char *out, uint32_t cap);

#endif /* MOTE_CONSOLE_H */
