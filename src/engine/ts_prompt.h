/*
 * ts_prompt.h - prompt emphasis syntax and chunking into CLIP windows.
 *
 * Emphasis, as the popular front ends write it:
 *   (text)        weight x 1.1        ((text)) x 1.21, and so on
 *   [text]        weight / 1.1
 *   (text:1.5)    weight x 1.5 (any decimal number, also 0 or negative)
 *   \( \) \[ \]   literal brackets; \\ a literal backslash
 * An unclosed bracket applies to the rest of the prompt; a stray closing
 * bracket is plain text. Neighbouring pieces of equal weight are merged and
 * each piece is tokenized on its own, so weights follow token boundaries.
 *
 * Chunking: a prompt longer than one window (77 positions for CLIP: BOS, 75
 * tokens, EOS) is cut into chunks of 75 tokens, each framed as
 * [BOS] tokens [EOS] [PAD...]; the pipeline encodes each chunk and
 * concatenates the hidden states along the token axis. At most
 * TS_PROMPT_MAX_CHUNKS chunks (600 tokens) are accepted; a longer prompt is
 * refused with TS_ERR_LIMIT, never silently cut.
 *
 *     ts_prompt_tokens pt;
 *     if (ts_prompt_tokenize(tok, "a (red:1.3) heart", 77, &pt, &err) != TS_OK) ...
 *     ...pt.n_chunks windows of pt.window ids and weights...
 *
 * Ownership: plain values; ts_prompt_tokens_wipe zeroes one (prompts are
 * user content).
 */
#ifndef TS_PROMPT_H
#define TS_PROMPT_H

#include <stdint.h>

#include "ts_error.h"
#include "ts_tokenizer.h"

#define TS_PROMPT_MAX_CHUNKS 8
#define TS_PROMPT_WINDOW_MAX 77
#define TS_PROMPT_MAX_PIECES 512

typedef struct ts_emphasis {
    int n;                            /* pieces */
    char *text;                       /* heap; piece i starts at text + offset[i] */
    int offset[TS_PROMPT_MAX_PIECES]; /* each piece is NUL-terminated */
    float weight[TS_PROMPT_MAX_PIECES];
} ts_emphasis;

/* Splits prompt into weighted pieces. Always yields at least one piece (""
 * with weight 1 for an empty prompt). TS_ERR_LIMIT past TS_PROMPT_MAX_PIECES.
 * Release with ts_emphasis_free. */
ts_status ts_emphasis_parse(const char *prompt, ts_emphasis *out, ts_error *err);
void ts_emphasis_free(ts_emphasis *e);

typedef struct ts_prompt_tokens {
    int n_chunks;
    int window;     /* positions per chunk (77) */
    int n_tokens;   /* prompt tokens over all chunks, without BOS/EOS/PAD */
    int any_weight; /* 1 when some weight differs from 1 */
    int32_t ids[TS_PROMPT_MAX_CHUNKS][TS_PROMPT_WINDOW_MAX];
    float weights[TS_PROMPT_MAX_CHUNKS][TS_PROMPT_WINDOW_MAX];
} ts_prompt_tokens;

/* Parses emphasis, tokenizes and chunks. prompt may be NULL (empty). */
ts_status ts_prompt_tokenize(const ts_tokenizer *tok, const char *prompt, int window,
                             ts_prompt_tokens *out, ts_error *err);

/* Appends empty chunks ([BOS][EOS][PAD...]) until pt has n_chunks, so that
 * the prompt and the negative prompt share one token count for batching. */
void ts_prompt_tokens_pad_to(const ts_tokenizer *tok, ts_prompt_tokens *pt, int n_chunks);

void ts_prompt_tokens_wipe(ts_prompt_tokens *pt);

/* Applies the chunk's weights to its hidden states z (window, dim) and
 * restores the mean over all elements, as the popular front ends do:
 * z[t] *= w[t]; z *= mean_before / mean_after. */
void ts_prompt_apply_weights(float *z, int window, int dim, const float *weights);

#endif
