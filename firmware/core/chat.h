/* chat.h - a conversation with a chat model, held in the KV cache: each user line is
 * laid out by the blob's chat template (mote_chat, docs/blob-format.md "Chat section")
 * and appended after what came before, so earlier turns are never run again; the reply
 * ends at an end-of-turn token. When a turn would not fit the context, the oldest
 * exchanges are dropped and the kept ones run again from the end of the system turn.
 * No allocation: the history is the state's `tokens` (in the arena), the workspace the
 * caller's. host/mote/reference/chat.py is the same algorithm, the oracle. */
#ifndef MOTE_CHAT_H
#define MOTE_CHAT_H

#include <stdint.h>

#include "generate.h"
#include "mote.h"

#define MOTE_CHAT_TURNS_MAX 64u /* exchanges remembered one by one; older ones merge */
/* A turn's text: the template's text on both sides of the content (one segment before,
 * two after) around content of at most `content` bytes. */
#define MOTE_CHAT_TEXT_CAP(content) ((content) + 3u * MOTE_CHAT_SEGMENT_MAX)

/* The buffers a turn is laid out in: text[text_cap] joins a fragment before it is
 * encoded, ids[ids_cap] holds a turn's ids (at most one per byte of segments and
 * content, plus the unfed token and the encoder's two spare slots), msg[msg_cap] gets an
 * error message. */
typedef struct {
    char *text;
    uint32_t text_cap;
    int32_t *ids;
    uint32_t ids_cap;
    char *msg;
    uint32_t msg_cap;
} mote_chat_work;

typedef struct {
    const mote_chat *tpl;
    uint8_t started;    /* the begin and system segments are laid out in tokens[0, pinned) */
    uint8_t system_turn; /* ... and the system segment with them (a system prompt) */
    uint8_t first_user; /* the next user turn is the first after the system turn */
    uint8_t replied;    /* a reply is open: assistant_end comes before the next turn */
    int32_t unfed;      /* the reply's last token, streamed but not run, or -1 */
    uint32_t pinned;    /* positions of begin + system: never dropped */
    uint32_t pos;       /* positions of the conversation: state tokens[0, pos) */
    uint32_t run;       /* positions whose keys and values are computed (<= pos) */
    uint32_t n_turns;
    uint32_t turn_start[MOTE_CHAT_TURNS_MAX]; /* first position of each exchange */
} mote_conversation;

/* What the last turn did to the history, for the console's stats line. */
typedef struct {
    uint32_t dropped;  /* exchanges dropped to make room */
    uint32_t rerun;    /* positions run again after dropping */
} mote_turn_info;

void mote_conv_init(mote_conversation *cv, const mote_chat *tpl);

/* Work buffers in the state's scratch, which the sampler needs only while generating
 * (text for a line of up to `content` bytes at its end, ids before it), so a console
 * needs no RAM of its own for a turn; `msg` is the caller's. */
mote_chat_work mote_chat_scratch_work(const mote_state *s, uint32_t content, char *msg, uint32_t msg_cap);

/* Start a conversation with this system prompt (len 0: none): begin and system laid
 * out at position 0, run with the first turn. NULL, or an error message in w->msg (the
 * prompt leaves no room in the context; then nothing changes). */
const char *mote_conv_start(mote_conversation *cv, mote_state *s, const char *system,
                            uint32_t len, const mote_chat_work *w);

/* A new conversation with the same system prompt (its positions stay computed). */
void mote_conv_reset(mote_conversation *cv);

/* One user line: close the previous reply (assistant_end), lay out the user turn and
 * the assistant's opening, drop the oldest exchanges if the context needs the room,
 * then generate the reply through mote_generate (with the template's stop ids).
 * Starts the conversation with `default_system` if not started. NULL, or an error
 * message in w->msg and nothing changed. */
const char *mote_conv_turn(mote_conversation *cv, mote_state *s, mote_sampler *smp,
                           const char *line, uint32_t len, const mote_gen_io *io,
                           const mote_chat_work *w, mote_gen_stats *stats, mote_turn_info *info);

/* The blob's default system prompt. */
const char *mote_chat_default_system(const mote_chat *tpl, uint32_t *len);

#endif /* MOTE_CHAT_H */
