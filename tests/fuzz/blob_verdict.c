/* blob_verdict.c - the firmware's verdict on blob files: for each path, one line
 * "<mote_status number> <mote_status_str>" from mote_model_open with the CRC check, as
 * a board opens it. tests/test_blob_verdicts.py compares these with host/mote/format/
 * blob.py's `load` (make -C firmware tools). One process for a whole corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mote.h"

static mote_model model; /* large (the layer table): not on the stack */

/* The whole file in a buffer of exactly its size (+1 so that malloc(0) is avoided),
 * 4-byte aligned as mote_model_open requires (malloc aligns more). */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1u)) != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        size_t len = 0;
        uint8_t *blob = read_file(argv[i], &len);
        mote_status st;
        if (blob == NULL) {
            fprintf(stderr, "blob_verdict: cannot read %s\n", argv[i]);
            return 2;
        }
        st = mote_model_open(&model, blob, len, 1);
        printf("%d %s\n", (int)st, mote_status_str(st));
        free(blob);
    }
    return 0;
}
