/*
 * ts_prompt.c - emphasis parsing, chunking and weighting (see ts_prompt.h).
 *
 * The parser is a hand-written scanner over the same token kinds the front
 * ends' pattern recognises, tried in the same order at each position:
 * escapes, "(", "[", ":<number>)", ")", "]", plain text (no \ ( ) [ ] :), ":".
 */
#include "ts_prompt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define ROUND_MULT  1.1f
#define SQUARE_MULT (1.0f / 1.1f)

static ts_status append_piece(ts_emphasis *e, size_t *used, const char *s, size_t n, ts_error *err)
{
    if (e->n >= TS_PROMPT_MAX_PIECES)
        return ts_error_set(err, TS_ERR_LIMIT,
                            "the prompt has more than %d emphasis pieces; simplify the brackets",
                            TS_PROMPT_MAX_PIECES);
    e->offset[e->n] = (int)*used;
    e->weight[e->n] = 1.0f;
    memcpy(e->text + *used, s, n);
    e->text[*used + n] = '\0';
    *used += n + 1;
    e->n++;
    return TS_OK;
}

static void multiply_range(ts_emphasis *e, int from, float m)
{
    for (int i = from; i < e->n; i++)
        e->weight[i] *= m;
}

/* Matches ":\s*([+-]?[.\d]+)\s*\)" at s; returns its length (0: no match)
 * and the number. A run like "1.2.3" matches the pattern but is no number:
 * then the ':' is plain text. */
static size_t match_weight(const char *s, float *w)
{
    const char *p = s + 1;
    while (isspace((unsigned char)*p))
        p++;
    const char *num = p;
    if (*p == '+' || *p == '-')
        p++;
    const char *digits = p;
    while (isdigit((unsigned char)*p) || *p == '.')
        p++;
    if (p == digits)
        return 0;
    const char *num_end = p;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != ')')
        return 0;
    char tmp[64];
    size_t n = (size_t)(num_end - num);
    if (n >= sizeof tmp)
        return 0;
    memcpy(tmp, num, n);
    tmp[n] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (*end != '\0')
        return 0;
    *w = (float)v;
    return (size_t)(p + 1 - s);
}

ts_status ts_emphasis_parse(const char *prompt, ts_emphasis *out, ts_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!prompt)
        prompt = "";
    size_t len = strlen(prompt);
    if (len > TS_TOKENIZER_TEXT_MAX)
        return ts_error_set(err, TS_ERR_LIMIT, "the prompt is %zu bytes; the limit is %d", len,
                            TS_TOKENIZER_TEXT_MAX);
    /* Pieces never hold more bytes than the prompt, plus one NUL each. */
    out->text = malloc(len + TS_PROMPT_MAX_PIECES + 2);
    if (!out->text)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory parsing the prompt");

    int round[TS_PROMPT_MAX_PIECES], square[TS_PROMPT_MAX_PIECES];
    int n_round = 0, n_square = 0;
    size_t used = 0;
    ts_status st = TS_OK;
    const char *s = prompt;
    while (*s && st == TS_OK) {
        float w;
        size_t k;
        if (s[0] == '\\') {
            /* "\(" "\)" "\[" "\]" "\\" give the second character; a lone
             * backslash gives nothing, as in the front ends. */
            if (s[1] && strchr("()[]\\", s[1])) {
                st = append_piece(out, &used, s + 1, 1, err);
                s += 2;
            } else {
                st = append_piece(out, &used, "", 0, err);
                s += 1;
            }
        } else if (s[0] == '(') {
            if (n_round < TS_PROMPT_MAX_PIECES)
                round[n_round++] = out->n;
            s++;
        } else if (s[0] == '[') {
            if (n_square < TS_PROMPT_MAX_PIECES)
                square[n_square++] = out->n;
            s++;
        } else if (s[0] == ':' && n_round > 0 && (k = match_weight(s, &w)) > 0) {
            multiply_range(out, round[--n_round], w);
            s += k;
        } else if (s[0] == ')' && n_round > 0) {
            multiply_range(out, round[--n_round], ROUND_MULT);
            s++;
        } else if (s[0] == ']' && n_square > 0) {
            multiply_range(out, square[--n_square], SQUARE_MULT);
            s++;
        } else if (s[0] == ':' || s[0] == ')' || s[0] == ']') {
            /* ":" with no weight after it, or a bracket closing nothing:
             * kept as text. A ":1.2)" without an open "(" is text too, and
             * scanning goes on from the character after the ':'. */
            st = append_piece(out, &used, s, 1, err);
            s++;
        } else {
            size_t n = strcspn(s, "\\()[]:");
            st = append_piece(out, &used, s, n, err);
            s += n;
        }
    }
    for (int i = 0; i < n_round && st == TS_OK; i++)
        multiply_range(out, round[i], ROUND_MULT);
    for (int i = 0; i < n_square && st == TS_OK; i++)
        multiply_range(out, square[i], SQUARE_MULT);
    if (st != TS_OK) {
        ts_emphasis_free(out);
        return st;
    }

    /* Merge neighbours of equal weight into a fresh buffer. */
    size_t cap = len + TS_PROMPT_MAX_PIECES + 2;
    char *merged = malloc(cap);
    if (!merged) {
        ts_emphasis_free(out);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory parsing the prompt");
    }
    int m = 0;
    size_t at = 0;
    for (int i = 0; i < out->n; i++) {
        const char *src = out->text + out->offset[i];
        size_t n = strlen(src);
        if (m > 0 && out->weight[m - 1] == out->weight[i]) {
            at--; /* overwrite the previous NUL */
        } else {
            out->offset[m] = (int)at;
            out->weight[m] = out->weight[i];
            m++;
        }
        memcpy(merged + at, src, n + 1);
        at += n + 1;
    }
    if (m == 0) {
        merged[0] = '\0';
        out->offset[0] = 0;
        out->weight[0] = 1.0f;
        m = 1;
    }
    sodium_memzero(out->text, used);
    free(out->text);
    out->text = merged;
    out->n = m;
    return TS_OK;
}

void ts_emphasis_free(ts_emphasis *e)
{
    if (e->text) {
        size_t used = 0;
        if (e->n > 0) {
            const char *last = e->text + e->offset[e->n - 1];
            used = (size_t)(last - e->text) + strlen(last) + 1;
        }
        sodium_memzero(e->text, used);
        free(e->text);
    }
    e->text = NULL;
    e->n = 0;
}

static void frame_chunk(const ts_tokenizer *tok, ts_prompt_tokens *pt, int c, const int32_t *ids,
                        const float *w, int n)
{
    int window = pt->window;
    pt->ids[c][0] = ts_tokenizer_bos(tok);
    pt->weights[c][0] = 1.0f;
    for (int i = 0; i < n; i++) {
        pt->ids[c][1 + i] = ids[i];
        pt->weights[c][1 + i] = w[i];
    }
    pt->ids[c][1 + n] = ts_tokenizer_eos(tok);
    pt->weights[c][1 + n] = 1.0f;
    for (int i = n + 2; i < window; i++) {
        pt->ids[c][i] = ts_tokenizer_pad(tok);
        pt->weights[c][i] = 1.0f;
    }
}

ts_status ts_prompt_tokenize(const ts_tokenizer *tok, const char *prompt, int window,
                             ts_prompt_tokens *out, ts_error *err)
{
    memset(out, 0, sizeof(*out));
    if (window < 3 || window > TS_PROMPT_WINDOW_MAX)
        return ts_error_set(err, TS_ERR_ARG, "token window %d is outside 3..%d", window,
                            TS_PROMPT_WINDOW_MAX);
    out->window = window;
    int per_chunk = window - 2;
    int cap = per_chunk * TS_PROMPT_MAX_CHUNKS;

    ts_emphasis e;
    ts_status st = ts_emphasis_parse(prompt, &e, err);
    if (st != TS_OK)
        return st;
    int32_t *ids = malloc((size_t)(cap + 1) * sizeof(*ids));
    float *w = malloc((size_t)(cap + 1) * sizeof(*w));
    if (!ids || !w) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory tokenizing the prompt");
        goto done;
    }
    int n = 0;
    for (int i = 0; i < e.n; i++) {
        const char *piece = e.text + e.offset[i];
        int before = n;
        /* One spare slot so that "too long" is told apart from "just fits". */
        st = ts_tokenizer_encode(tok, piece, strlen(piece), ids, cap + 1, &n, err);
        if (st == TS_OK && n > cap)
            st = TS_ERR_LIMIT;
        if (st == TS_ERR_LIMIT) {
            st = ts_error_set(err, TS_ERR_LIMIT,
                              "the prompt is longer than %d tokens (%d chunks of %d); shorten it",
                              cap, TS_PROMPT_MAX_CHUNKS, per_chunk);
            goto done;
        }
        if (st != TS_OK)
            goto done;
        for (int k = before; k < n; k++) {
            w[k] = e.weight[i];
            if (e.weight[i] != 1.0f)
                out->any_weight = 1;
        }
    }

    out->n_tokens = n;
    out->n_chunks = n == 0 ? 1 : (n + per_chunk - 1) / per_chunk;
    for (int c = 0; c < out->n_chunks; c++) {
        int from = c * per_chunk;
        int k = n - from < per_chunk ? n - from : per_chunk;
        frame_chunk(tok, out, c, ids + from, w + from, k < 0 ? 0 : k);
    }

done:
    if (ids)
        sodium_memzero(ids, (size_t)(cap + 1) * sizeof(*ids));
    free(ids);
    free(w);
    ts_emphasis_free(&e);
    if (st != TS_OK)
        ts_prompt_tokens_wipe(out);
    return st;
}

void ts_prompt_tokens_pad_to(const ts_tokenizer *tok, ts_prompt_tokens *pt, int n_chunks)
{
    while (pt->n_chunks < n_chunks && pt->n_chunks < TS_PROMPT_MAX_CHUNKS) {
        frame_chunk(tok, pt, pt->n_chunks, NULL, NULL, 0);
        pt->n_chunks++;
    }
}

void ts_prompt_tokens_wipe(ts_prompt_tokens *pt)
{
    sodium_memzero(pt, sizeof(*pt));
}

void ts_prompt_apply_weights(float *z, int window, int dim, const float *weights)
{
    /* z: (window, dim). Sums in double: 77 x 1024 floats. */
    size_t n = (size_t)window * (size_t)dim;
    double before = 0.0, after = 0.0;
    for (size_t i = 0; i < n; i++)
        before += z[i];
    for (int t = 0; t < window; t++)
        for (int d = 0; d < dim; d++)
            z[(size_t)t * dim + d] *= weights[t];
    for (size_t i = 0; i < n; i++)
        after += z[i];
    if (after == 0.0)
        return;
    float ratio = (float)(before / after);
    for (size_t i = 0; i < n; i++)
        z[i] *= ratio;
}
