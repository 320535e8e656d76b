/* tok_driver.c - runs firmware/core/tokenizer.c for tests/test_tokenizer.py.
 *
 * usage: tok_driver SECTION_FILE < commands
 * Opens the tokenizer section (held in a buffer of exactly its size, so the sanitizers
 * catch any read outside it) and prints "open 0" or "open -1". Then one command per
 * input line, one output line each:
 *   E <bos 0|1> <text as hex>  ->  the ids, space separated, or "-1"
 *     (the id buffer is exactly len + 2 ids, the documented minimum)
 *   D <id> <id> ...            ->  the streaming decoder's output for each id, then its
 *                                  flush, as hex strings joined by ","
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define LINE_MAX_BYTES (1u << 20)

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void print_hex(const char *bytes, uint32_t n) {
    uint32_t i;
    for (i = 0; i < n; i++) printf("%02x", (unsigned)(unsigned char)bytes[i]);
}

static void run_encode(const mote_tokenizer *t, const char *args) {
    int bos = args[0] == '1';
    const char *hex = args + 2;
    uint32_t len = (uint32_t)strlen(hex) / 2u, i;
    char *text = malloc(len + 1u);
    int32_t *ids = malloc((len + 2u) * sizeof *ids), n;
    if (text == NULL || ids == NULL) abort();
    for (i = 0; i < len; i++) text[i] = (char)(hex_value(hex[2 * i]) * 16 + hex_value(hex[2 * i + 1]));
    n = mote_tok_encode(t, text, len, bos, ids, len + 2u);
    if (n < 0) printf("-1");
    for (i = 0; n > 0 && i < (uint32_t)n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    free(text);
    free(ids);
}

static void run_decode(const mote_tokenizer *t, char *args) {
    uint32_t cap = MOTE_TOK_DECODE_CAP(t->max_token_bytes), n;
    char *out = malloc(cap);
    char *word = strtok(args, " ");
    mote_tok_decoder d;
    if (out == NULL) abort();
    mote_tok_decoder_init(&d);
    for (; word != NULL; word = strtok(NULL, " ")) {
        n = mote_tok_decode(t, &d, (int32_t)strtol(word, NULL, 10), out, cap);
        print_hex(out, n);
        printf(",");
    }
    n = mote_tok_decode_flush(&d, out, 3);
    print_hex(out, n);
    printf("\n");
    free(out);
}

int main(int argc, char **argv) {
    FILE *f;
    long size;
    uint8_t *section;
    char *line;
    mote_tokenizer t;
    int status;
    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: tok_driver SECTION_FILE < commands\n");
        return 2;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    section = malloc(size > 0 ? (size_t)size : 1u);
    line = malloc(LINE_MAX_BYTES);
    if (section == NULL || line == NULL || fread(section, 1, (size_t)size, f) != (size_t)size) return 2;
    fclose(f);
    status = mote_tok_open(&t, section, (uint32_t)size);
    printf("open %d\n", status);
    while (status == 0 && fgets(line, (int)LINE_MAX_BYTES, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == 'E') run_encode(&t, line + 2);
        else if (line[0] == 'D') run_decode(&t, line + 1);
        fflush(stdout);
    }
    free(section);
    free(line);
    return 0;
}
