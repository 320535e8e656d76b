/* fuzz_blob.c - libFuzzer harness over mote_model_open (make -C firmware fuzz).
 * Each input is opened twice: with the CRC check (the path a board takes) and
 * without it, so mutations get past the CRC into the header, table and tokenizer
 * checks. A blob that opens with a small arena also runs one forward pass and a
 * sampling step: whatever validation lets through must be safe to run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mote.h"

#define MAX_FUZZ_ARENA (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mote_model model; /* large (the layer table): not on the stack */
    mote_state state;
    uint8_t *blob = malloc(size ? size : 1u); /* exact size: ASan sees any overread */
    int check_crc;
    if (!blob)
        return 0;
    memcpy(blob, data, size);
    for (check_crc = 1; check_crc >= 0; check_crc--) {
        uint32_t need;
        void *arena;
        if (mote_model_open(&model, blob, size, check_crc) != MOTE_OK)
            continue;
        need = mote_arena_bytes(&model.config, model.config.ctx_len);
        if (need > MAX_FUZZ_ARENA || (arena = malloc(need)) == NULL)
            continue;
        if (mote_state_init(&state, &model, arena, need, 0) == MOTE_OK) {
            mote_sampler smp;
            float *logits = mote_forward(&state, 1 % (int32_t)model.config.vocab_size, 0);
            if (logits) {
                mote_sampler_init(&smp, 0.9f, 0.9f, 5, 1);
                (void)mote_sample(&smp, logits, model.config.vocab_size, state.scratch);
            }
        }
        free(arena);
    }
    free(blob);
    return 0;
}
