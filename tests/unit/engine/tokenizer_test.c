/*
 * tokenizer_test.c - CLIP BPE and the prompt front end (emphasis, chunks).
 *
 * The tokenizer runs on a tiny vocabulary this test writes: the 512 byte
 * symbols (with and without "</w>"), a handful of merges and the two special
 * tokens. Expected ids are worked out by hand from those merges and looked
 * up in the test's own list, so nothing here trusts the code under test.
 * When the golden ids of the independent Python tokenizer exist
 * ($TS_FIXTURES/engine/tokenizer_golden.json with a CLIP vocabulary), they
 * are checked too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ts_prompt.h"
#include "ts_test.h"
#include "ts_tokenizer.h"

/* ------------------------------------------------------------ the vocabulary */

#define MAX_ENTRIES 1024
static char entries[MAX_ENTRIES][32];
static int n_entries;
static char dir[256];
static ts_tokenizer *tok;

static void utf8(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp, o[1] = 0;
    } else {
        o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), o[2] = 0;
    }
}

/* GPT-2's table, written out from its definition: printable Latin-1 bytes
 * keep their code point, the rest take 256, 257, ... in byte order. */
static void byte_symbol(int b, char *o)
{
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
            n++;
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    utf8(printable ? (unsigned)b : 256u + (unsigned)n, o);
}

static int id_of(const char *sym)
{
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i], sym) == 0)
            return i;
    fprintf(stderr, "test vocabulary lacks %s\n", sym);
    return -100;
}

static int id_byte(int b, int word_end)
{
    char s[32];
    byte_symbol(b, s);
    if (word_end)
        strcat(s, "</w>");
    return id_of(s);
}

static const char *merges[] = {"h e", "r e", "re d</w>", "a r", "he ar", "hear t</w>"};

static void write_vocab(void)
{
    for (int b = 0; b < 256; b++)
        byte_symbol(b, entries[n_entries++]);
    for (int b = 0; b < 256; b++) {
        byte_symbol(b, entries[n_entries]);
        strcat(entries[n_entries++], "</w>");
    }
    const char *merged[] = {"he", "re", "red</w>", "ar", "hear", "heart</w>"};
    for (size_t i = 0; i < 6; i++)
        strcpy(entries[n_entries++], merged[i]);
    strcpy(entries[n_entries++], "<|startoftext|>");
    strcpy(entries[n_entries++], "<|endoftext|>");

    strcpy(dir, "/tmp/ts_tok_XXXXXX");
    TS_CHECK(mkdtemp(dir) != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    json_t *o = json_object();
    for (int i = 0; i < n_entries; i++)
        json_object_set_new(o, entries[i], json_integer(i));
    TS_CHECK(json_dump_file(o, path, 0) == 0);
    json_decref(o);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "#version: 0.2\n");
    for (size_t i = 0; i < sizeof merges / sizeof *merges; i++)
        fprintf(f, "%s\n", merges[i]);
    fclose(f);
}

static void remove_vocab(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    unlink(path);
    rmdir(dir);
}

/* Encodes text and compares with want[0..n). */
static void expect(const char *text, const int *want, int n)
{
    int32_t ids[256];
    int got = 0;
    ts_error err;
    ts_status st = ts_tokenizer_encode(tok, text, strlen(text), ids, 256, &got, &err);
    TS_CHECK_INT_EQ(st, TS_OK);
    TS_CHECK_INT_EQ(got, n);
    for (int i = 0; i < n && i < got; i++)
        if (ids[i] != want[i]) {
            fprintf(stderr, "  text \"%s\" position %d: got %d want %d\n", text, i, ids[i],
                    want[i]);
            TS_CHECK(ids[i] == want[i]);
        }
}

/* ------------------------------------------------------------ BPE cases */

static void test_words_and_merges(void)
{
    int want[] = {id_byte('a', 1), id_of("red</w>"), id_of("heart</w>")};
    expect("a red heart", want, 3);
    /* White space collapses, case folds. */
    expect("  A\tRED\n\n Heart  ", want, 3);
    /* "rere": only the first (r, e) merges, the second e is "e</w>". */
    int rere[] = {id_of("re"), id_byte('r', 0), id_byte('e', 1)};
    expect("rere", rere, 3);
    /* "hear" ends in r</w>, so "he ar" applies but "hear t</w>" cannot. */
    int hear[] = {id_of("he"), id_byte('a', 0), id_byte('r', 1)};
    expect("hear", hear, 3);
}

static void test_pretokenize(void)
{
    /* Contractions split off; digits one at a time; punctuation runs. */
    int its[] = {id_byte('i', 0), id_byte('t', 1), id_byte('\'', 0), id_byte('s', 1)};
    expect("it's", its, 4);
    int r2d2[] = {id_byte('r', 1), id_byte('2', 1), id_byte('d', 1), id_byte('2', 1)};
    expect("r2d2", r2d2, 4);
    int bang[] = {id_of("red</w>"), id_byte('!', 0), id_byte('!', 0), id_byte('?', 1)};
    expect("red!!?", bang, 4);
    int special[] = {id_of("red</w>"), id_of("<|endoftext|>")};
    expect("red <|endoftext|>", special, 2);
    expect("", NULL, 0);
    expect(" \t\n ", NULL, 0);
}

static void test_non_ascii(void)
{
    /* "É" lower-cases to "é" (C3 A9), a letter: one piece with "café". */
    int cafe[] = {id_byte('c', 0), id_byte('a', 0), id_byte('f', 0), id_byte(0xC3, 0),
                  id_byte(0xA9, 1)};
    expect("CAFÉ", cafe, 5);
    /* CJK letters: 猫 = E7 8C AB. */
    int cat[] = {id_byte(0xE7, 0), id_byte(0x8C, 0), id_byte(0xAB, 1)};
    expect("猫", cat, 3);
    /* An emoji is neither letter nor digit: U+1F642 = F0 9F 99 82, and it
     * joins the "!" that follows it in one run. */
    int emoji[] = {id_of("red</w>"), id_byte(0xF0, 0), id_byte(0x9F, 0),
                   id_byte(0x99, 0), id_byte(0x82, 0), id_byte('!', 1)};
    expect("red \xF0\x9F\x99\x82!", emoji, 6);
    /* Invalid UTF-8 becomes U+FFFD (EF BF BD); a truncated sequence too. */
    int bad[] = {id_byte(0xEF, 0), id_byte(0xBF, 0), id_byte(0xBD, 1), id_of("red</w>")};
    expect("\xFF red", bad, 4);
    int cut[] = {id_of("red</w>"), id_byte(0xEF, 0), id_byte(0xBF, 0), id_byte(0xBD, 1)};
    expect("red \xE7\x8C", cut, 4);
    /* Two bad bytes, two replacement characters, one run. */
    int two[] = {id_byte(0xEF, 0), id_byte(0xBF, 0), id_byte(0xBD, 0),
                 id_byte(0xEF, 0), id_byte(0xBF, 0), id_byte(0xBD, 1)};
    expect("\xC0\xAF", two, 6);
}

static void test_hostile_lengths(void)
{
    /* A single 10000-letter word is cut into pieces and never crashes. */
    size_t n = 10000;
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = 0;
    int32_t *ids = malloc(20000 * sizeof(*ids));
    int got = 0;
    ts_error err;
    TS_CHECK_INT_EQ(ts_tokenizer_encode(tok, s, n, ids, 20000, &got, &err), TS_OK);
    TS_CHECK_INT_EQ(got, (int)n);
    got = 0;
    TS_CHECK_INT_EQ(ts_tokenizer_encode(tok, s, n, ids, 100, &got, &err), TS_ERR_LIMIT);
    free(ids);
    free(s);
}

/* ------------------------------------------------------------ emphasis */

static void expect_pieces(const char *prompt, int n, const char *const *texts, const float *weights)
{
    ts_emphasis e;
    ts_error err;
    TS_CHECK_INT_EQ(ts_emphasis_parse(prompt, &e, &err), TS_OK);
    TS_CHECK_INT_EQ(e.n, n);
    for (int i = 0; i < n && i < e.n; i++) {
        TS_CHECK_STR_EQ(e.text + e.offset[i], texts[i]);
        TS_CHECK_NEAR(e.weight[i], weights[i], 1e-5);
    }
    ts_emphasis_free(&e);
}

static void test_emphasis(void)
{
    expect_pieces("a (red:1.5) heart", 3, (const char *[]){"a ", "red", " heart"},
                  (float[]){1.0f, 1.5f, 1.0f});
    expect_pieces("(red)", 1, (const char *[]){"red"}, (float[]){1.1f});
    expect_pieces("((red))", 1, (const char *[]){"red"}, (float[]){1.21f});
    expect_pieces("[red]", 1, (const char *[]){"red"}, (float[]){1.0f / 1.1f});
    expect_pieces("[[red]] x", 2, (const char *[]){"red", " x"}, (float[]){1.0f / 1.21f, 1.0f});
    expect_pieces("\\(red\\)", 1, (const char *[]){"(red)"}, (float[]){1.0f});
    expect_pieces("(red", 1, (const char *[]){"red"}, (float[]){1.1f});
    expect_pieces("red)", 1, (const char *[]){"red)"}, (float[]){1.0f});
    expect_pieces("a:b", 1, (const char *[]){"a:b"}, (float[]){1.0f});
    expect_pieces("(a:x)", 1, (const char *[]){"a:x"}, (float[]){1.1f});
    expect_pieces("(a (b:2) c)", 3, (const char *[]){"a ", "b", " c"}, (float[]){1.1f, 2.2f, 1.1f});
    expect_pieces("(red: 0.5 )", 1, (const char *[]){"red"}, (float[]){0.5f});
    expect_pieces("", 1, (const char *[]){""}, (float[]){1.0f});
    expect_pieces("x:1.2)", 1, (const char *[]){"x:1.2)"}, (float[]){1.0f});
}

/* ------------------------------------------------------------ chunks */

static void test_chunks(void)
{
    ts_prompt_tokens pt;
    ts_error err;
    int bos = id_of("<|startoftext|>"), eos = id_of("<|endoftext|>");
    int red = id_of("red</w>");

    TS_CHECK_INT_EQ(ts_prompt_tokenize(tok, "", 77, &pt, &err), TS_OK);
    TS_CHECK_INT_EQ(pt.n_chunks, 1);
    TS_CHECK_INT_EQ(pt.ids[0][0], bos);
    TS_CHECK_INT_EQ(pt.ids[0][1], eos);
    TS_CHECK_INT_EQ(pt.ids[0][76], eos); /* padding is EOS without a special map */

    /* 200 tokens: chunks of 75, 75 and 50, each framed by BOS and EOS. */
    char *s = malloc(200 * 4 + 1);
    s[0] = 0;
    for (int i = 0; i < 200; i++)
        strcat(s, "red ");
    TS_CHECK_INT_EQ(ts_prompt_tokenize(tok, s, 77, &pt, &err), TS_OK);
    TS_CHECK_INT_EQ(pt.n_chunks, 3);
    TS_CHECK_INT_EQ(pt.n_tokens, 200);
    for (int c = 0; c < 3; c++) {
        int k = c < 2 ? 75 : 50;
        TS_CHECK_INT_EQ(pt.ids[c][0], bos);
        TS_CHECK_INT_EQ(pt.ids[c][1], red);
        TS_CHECK_INT_EQ(pt.ids[c][k], red);
        TS_CHECK_INT_EQ(pt.ids[c][k + 1], eos);
    }
    /* Exactly 75 tokens fit one chunk. */
    s[75 * 4] = 0;
    TS_CHECK_INT_EQ(ts_prompt_tokenize(tok, s, 77, &pt, &err), TS_OK);
    TS_CHECK_INT_EQ(pt.n_chunks, 1);
    TS_CHECK_INT_EQ(pt.ids[0][76], eos);
    free(s);

    /* 601 tokens are refused, never cut. */
    s = malloc(601 * 4 + 1);
    s[0] = 0;
    for (int i = 0; i < 601; i++)
        strcat(s, "red ");
    TS_CHECK_INT_EQ(ts_prompt_tokenize(tok, s, 77, &pt, &err), TS_ERR_LIMIT);
    s[600 * 4] = 0;
    TS_CHECK_INT_EQ(ts_prompt_tokenize(tok, s, 77, &pt, &err), TS_OK);
    TS_CHECK_INT_EQ(pt.n_chunks, 8);
    free(s);

    /* Weights follow their tokens; the negative is padded to the same count. */
    TS_CHECK_INT_EQ(ts_prompt_tokenize(tok, "a (red:1.5) heart", 77, &pt, &err), TS_OK);
    TS_CHECK(pt.any_weight);
    TS_CHECK_NEAR(pt.weights[0][1], 1.0, 0);
    TS_CHECK_NEAR(pt.weights[0][2], 1.5, 1e-6);
    TS_CHECK_NEAR(pt.weights[0][3], 1.0, 0);
    TS_CHECK_INT_EQ(pt.ids[0][2], red);
    ts_prompt_tokens_pad_to(tok, &pt, 3);
    TS_CHECK_INT_EQ(pt.n_chunks, 3);
    TS_CHECK_INT_EQ(pt.ids[2][0], bos);
    TS_CHECK_INT_EQ(pt.ids[2][1], eos);
}

static void test_apply_weights(void)
{
    /* z (3, 2); weights (1, 2, 1): the mean over all six values is kept. */
    float z[6] = {1, 2, 3, 4, 5, 6};
    float w[3] = {1, 2, 1};
    ts_prompt_apply_weights(z, 3, 2, w);
    /* before: mean 3.5; weighted: 1 2 6 8 5 6 (sum 28, mean 14/3);
     * scale 3.5 / (28/6) = 0.75. */
    float want[6] = {0.75f, 1.5f, 4.5f, 6.0f, 3.75f, 4.5f};
    for (int i = 0; i < 6; i++)
        TS_CHECK_NEAR(z[i], want[i], 1e-6);
}

/* ------------------------------------------------------------ goldens */

/* Token ids from the independent Python tokenizer (tools/sdref) on its own
 * tiny CLIP-layout vocabularies, SD 1.x (pads with EOS) and SD 2.x (pads
 * with "!"). The emphasis syntax is not part of the reference, so raw text
 * goes through ts_tokenizer_encode; ts_prompt_tokenize is checked on the
 * framing (BOS, EOS, padding) where the text has no brackets. */
static void golden_family(json_t *root, const char *dir_key, const char *ids_key)
{
    const char *fx = getenv("TS_FIXTURES");
    char dir2[1024];
    snprintf(dir2, sizeof dir2, "%s/engine/%s", fx ? fx : "tests/fixtures",
             json_string_value(json_object_get(root, dir_key)));
    ts_tokenizer *t = NULL;
    ts_error err;
    TS_CHECK_INT_EQ(ts_tokenizer_load_dir(dir2, &t, &err), TS_OK);
    if (!t)
        return;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), i, c)
    {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *tokens = json_object_get(c, "tokens"), *ids = json_object_get(c, ids_key);
        int32_t got[512];
        int n = 0;
        TS_CHECK_INT_EQ(ts_tokenizer_encode(t, text, strlen(text), got, 512, &n, &err), TS_OK);
        TS_CHECK_INT_EQ(n, (int)json_array_size(tokens));
        int bad = 0;
        for (int k = 0; k < n && k < (int)json_array_size(tokens); k++) {
            int32_t want = ts_tokenizer_lookup(t, json_string_value(json_array_get(tokens, k)));
            if (got[k] != want && !bad++)
                fprintf(stderr, "  golden case %zu position %d: got %d want %d\n", i, k, got[k],
                        want);
        }
        TS_CHECK_INT_EQ(bad, 0);
        /* The first window, as diffusers frames (and truncates) it. */
        for (int k = 0; k < 75 && k < n; k++)
            if (got[k] != json_integer_value(json_array_get(ids, (size_t)k + 1)))
                bad++;
        TS_CHECK_INT_EQ(bad, 0);
        if (!strpbrk(text, "()[]:\\")) {
            ts_prompt_tokens pt;
            TS_CHECK_INT_EQ(ts_prompt_tokenize(t, text, 77, &pt, &err), TS_OK);
            for (int k = 0; k < 77; k++)
                if (pt.ids[0][k] != json_integer_value(json_array_get(ids, (size_t)k)))
                    bad++;
            TS_CHECK_INT_EQ(bad, 0);
            TS_CHECK_INT_EQ(pt.n_chunks, n == 0 ? 1 : (n + 74) / 75);
        }
    }
    ts_tokenizer_destroy(t);
}

static void test_golden_ids(void)
{
    const char *fx = getenv("TS_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/engine/golden/tokenizer.json", fx ? fx : "tests/fixtures");
    json_t *root = json_load_file(path, 0, NULL);
    TS_CHECK(root != NULL); /* written by tools/fixtures/make_engine_fixtures.py */
    if (!root)
        return;
    TS_CHECK(json_array_size(json_object_get(root, "cases")) >= 10);
    golden_family(root, "vocab_dir", "ids_sd1");
    golden_family(root, "sd2_vocab_dir", "ids_sd2");
    json_decref(root);
}

int main(void)
{
    write_vocab();
    ts_error err;
    TS_CHECK_INT_EQ(ts_tokenizer_load_dir(dir, &tok, &err), TS_OK);
    if (!tok) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    TS_RUN(test_words_and_merges);
    TS_RUN(test_pretokenize);
    TS_RUN(test_non_ascii);
    TS_RUN(test_hostile_lengths);
    TS_RUN(test_emphasis);
    TS_RUN(test_chunks);
    TS_RUN(test_apply_weights);
    TS_RUN(test_golden_ids);
    ts_tokenizer_destroy(tok);

    /* Broken files are refused with a message, not a crash. */
    ts_tokenizer *t2 = NULL;
    TS_CHECK_INT_EQ(ts_tokenizer_load_dir("/nonexistent-dir", &t2, &err), TS_ERR_NOT_FOUND);
    char path[512];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "#version: 0.2\nthree part line\n");
    fclose(f);
    TS_CHECK_INT_EQ(ts_tokenizer_load_dir(dir, &t2, &err), TS_ERR_FORMAT);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    f = fopen(path, "w");
    fprintf(f, "[1, 2");
    fclose(f);
    TS_CHECK_INT_EQ(ts_tokenizer_load_dir(dir, &t2, &err), TS_ERR_FORMAT);
    TS_CHECK(t2 == NULL);
    remove_vocab();
    return ts_test_finish();
}
