/*
 * fuzz_prompt.c - a prompt as the pipeline meets it: the emphasis parser
 * ("(word:1.3)", "[word]", escapes), the CLIP tokenizer over raw bytes
 * (invalid UTF-8 included), and the chunking into 77-token windows. The
 * tokenizer is the tiny test model's (same algorithm as CLIP's, small
 * vocabulary), loaded once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_prompt.h"
#include "ts_tokenizer.h"

#ifndef TS_FUZZ_TOKENIZER_DIR
#error "TS_FUZZ_TOKENIZER_DIR must name a tokenizer folder"
#endif

static ts_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ts_error err;
    if (ts_tokenizer_load_dir(TS_FUZZ_TOKENIZER_DIR, &tok, &err) != TS_OK)
        abort(); /* the fixture is part of the tree: a broken one is our bug */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > TS_TOKENIZER_TEXT_MAX + 16)
        return 0;
    ts_error err;

    int32_t ids[512];
    int n = 0;
    ts_tokenizer_encode(tok, (const char *)data, size, ids, 512, &n, &err);

    /* The prompt APIs take C strings: stop at the first NUL as they would. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    ts_emphasis e;
    if (ts_emphasis_parse(text, &e, &err) == TS_OK)
        ts_emphasis_free(&e);

    ts_prompt_tokens *pt = malloc(sizeof *pt);
    if (pt) {
        if (ts_prompt_tokenize(tok, text, TS_PROMPT_WINDOW_MAX, pt, &err) == TS_OK) {
            ts_prompt_tokens_pad_to(tok, pt, TS_PROMPT_MAX_CHUNKS);
            ts_prompt_tokens_wipe(pt);
        }
        free(pt);
    }
    free(text);
    return 0;
}
