/*
 * ts_tokenizer.c - CLIP byte-level BPE (see ts_tokenizer.h for the steps).
 *
 * Design note: the vocabulary and the merge ranks live in two open-addressing
 * hash tables keyed by strings (the vocabulary by symbol, the merges by
 * "first second"). During BPE a word is one byte-mapped buffer and its
 * symbols are contiguous ranges of it, because a merge only ever joins two
 * neighbours; so no symbol strings are allocated while encoding.
 */
#include "ts_tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include <jansson.h>

#define FILE_MAX (64u * 1024u * 1024u)

/* ------------------------------------------------------------ string table */

typedef struct str_table {
    char **keys; /* NULL where empty */
    int32_t *values;
    size_t cap; /* power of two */
    size_t count;
} str_table;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int table_init(str_table *t, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap <<= 1;
    t->keys = calloc(cap, sizeof(*t->keys));
    t->values = calloc(cap, sizeof(*t->values));
    t->cap = cap;
    t->count = 0;
    return t->keys && t->values ? 0 : -1;
}

static void table_free(str_table *t)
{
    if (t->keys)
        for (size_t i = 0; i < t->cap; i++)
            free(t->keys[i]);
    free(t->keys);
    free(t->values);
    memset(t, 0, sizeof(*t));
}

/* Finds key[0..n) ; returns its value or -1. */
static int32_t table_get(const str_table *t, const char *key, size_t n)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash_bytes(key, n) & mask;; i = (i + 1) & mask) {
        const char *k = t->keys[i];
        if (!k)
            return -1;
        if (strlen(k) == n && memcmp(k, key, n) == 0)
            return t->values[i];
    }
}

/* Inserts a copy of key; a repeated key keeps its first value (CLIP's files
 * never repeat one). Returns -1 on allocation failure or when full. */
static int table_put(str_table *t, const char *key, size_t n, int32_t value)
{
    size_t mask = t->cap - 1;
    size_t i = hash_bytes(key, n) & mask;
    while (t->keys[i]) {
        if (strlen(t->keys[i]) == n && memcmp(t->keys[i], key, n) == 0)
            return 0;
        i = (i + 1) & mask;
    }
    if ((t->count + 1) * 2 > t->cap)
        return -1; /* sized at init from the entry count; never grows */
    char *copy = malloc(n + 1);
    if (!copy)
        return -1;
    memcpy(copy, key, n);
    copy[n] = '\0';
    t->keys[i] = copy;
    t->values[i] = value;
    t->count++;
    return 0;
}

/* ------------------------------------------------------------ the tokenizer */

struct ts_tokenizer {
    str_table vocab;
    str_table merges;
    int32_t bos, eos, pad;
    int vocab_size;
    char byte_sym[256][3]; /* UTF-8 of GPT-2's printable stand-in for each byte */
};

static void bytes_to_unicode(ts_tokenizer *tok)
{
    /* Printable Latin-1 bytes stand for themselves; the others (controls,
     * space, soft hyphen, ...) map to 256, 257, ... in byte order. */
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int cp = printable ? b : 256 + extra++;
        char *o = tok->byte_sym[b];
        if (cp < 0x80) {
            o[0] = (char)cp;
            o[1] = '\0';
        } else {
            o[0] = (char)(0xC0 | (cp >> 6));
            o[1] = (char)(0x80 | (cp & 0x3F));
            o[2] = '\0';
        }
    }
}

static ts_status read_file(const char *path, char **out, size_t *size, ts_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_error_set(err, errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                            "cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            if (cap >= FILE_MAX) {
                free(buf);
                fclose(f);
                return ts_error_set(err, TS_ERR_LIMIT, "%s is larger than %u MiB", path,
                                    FILE_MAX >> 20);
            }
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return ts_error_set(err, TS_ERR_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return ts_error_set(err, TS_ERR_IO, "cannot read %s", path);
    }
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return TS_OK;
}

static ts_status load_vocab(ts_tokenizer *tok, const char *path, ts_error *err)
{
    char *text = NULL;
    size_t size = 0;
    ts_status st = read_file(path, &text, &size, err);
    if (st != TS_OK)
        return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, size, 0, &jerr);
    free(text);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_FORMAT, "%s is not a JSON object of token ids (line %d)",
                            path, jerr.line);
    }
    size_t count = json_object_size(root);
    if (count == 0 || count > TS_TOKENIZER_VOCAB_MAX) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_FORMAT, "%s holds %zu entries; expected 1..%d", path, count,
                            TS_TOKENIZER_VOCAB_MAX);
    }
    if (table_init(&tok->vocab, count) != 0) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the vocabulary");
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        json_int_t id = json_is_integer(value) ? json_integer_value(value) : -1;
        if (id < 0 || id >= (json_int_t)TS_TOKENIZER_VOCAB_MAX) {
            json_decref(root);
            return ts_error_set(err, TS_ERR_FORMAT, "%s: a token id is not an integer in 0..%d",
                                path, TS_TOKENIZER_VOCAB_MAX - 1);
        }
        if (table_put(&tok->vocab, key, strlen(key), (int32_t)id) != 0) {
            json_decref(root);
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the vocabulary");
        }
        if ((int)id + 1 > tok->vocab_size)
            tok->vocab_size = (int)id + 1;
    }
    json_decref(root);
    return TS_OK;
}

static ts_status load_merges(ts_tokenizer *tok, const char *path, ts_error *err)
{
    char *text = NULL;
    size_t size = 0;
    ts_status st = read_file(path, &text, &size, err);
    if (st != TS_OK)
        return st;
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    if (lines > TS_TOKENIZER_MERGES_MAX) {
        free(text);
        return ts_error_set(err, TS_ERR_LIMIT, "%s has more than %d lines", path,
                            TS_TOKENIZER_MERGES_MAX);
    }
    if (table_init(&tok->merges, lines) != 0) {
        free(text);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the merges");
    }
    int32_t rank = 0;
    char *line = text;
    int line_no = 0;
    while (line < text + size) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (!end)
            end = text + size;
        size_t n = (size_t)(end - line);
        if (n && line[n - 1] == '\r')
            n--;
        line_no++;
        /* The first line is a "#version" comment in CLIP's file. */
        if (n > 0 && !(line_no == 1 && line[0] == '#')) {
            char *space = memchr(line, ' ', n);
            if (!space || space == line || space == line + n - 1 ||
                memchr(space + 1, ' ', (size_t)(line + n - space - 1))) {
                free(text);
                return ts_error_set(err, TS_ERR_FORMAT,
                                    "%s line %d is not two symbols separated by one space", path,
                                    line_no);
            }
            if (table_put(&tok->merges, line, n, rank++) != 0) {
                free(text);
                return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the merges");
            }
        }
        line = end + 1;
    }
    free(text);
    return TS_OK;
}

ts_status ts_tokenizer_load(const char *vocab_path, const char *merges_path, ts_tokenizer **out,
                            ts_error *err)
{
    *out = NULL;
    ts_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the tokenizer");
    bytes_to_unicode(tok);
    ts_status st = load_vocab(tok, vocab_path, err);
    if (st == TS_OK)
        st = load_merges(tok, merges_path, err);
    if (st != TS_OK)
        goto fail;

    tok->bos = table_get(&tok->vocab, "<|startoftext|>", 15);
    tok->eos = table_get(&tok->vocab, "<|endoftext|>", 13);
    if (tok->bos < 0 || tok->eos < 0) {
        st = ts_error_set(err, TS_ERR_FORMAT,
                          "%s lacks <|startoftext|> or <|endoftext|>; not a CLIP vocabulary",
                          vocab_path);
        goto fail;
    }
    tok->pad = tok->eos;
    *out = tok;
    return TS_OK;

fail:
    ts_tokenizer_destroy(tok);
    return st;
}

ts_status ts_tokenizer_load_dir(const char *dir, ts_tokenizer **out, ts_error *err)
{
    char vocab[4096], merges[4096], special[4096];
    if (snprintf(vocab, sizeof vocab, "%s/vocab.json", dir) >= (int)sizeof vocab ||
        snprintf(merges, sizeof merges, "%s/merges.txt", dir) >= (int)sizeof merges ||
        snprintf(special, sizeof special, "%s/special_tokens_map.json", dir) >= (int)sizeof special)
        return ts_error_set(err, TS_ERR_ARG, "tokenizer path is too long");
    ts_status st = ts_tokenizer_load(vocab, merges, out, err);
    if (st != TS_OK)
        return st;

    /* The padding token: a string or {"content": ...}. A missing or odd file
     * keeps EOS, which is what SD 1.x uses. */
    json_t *root = json_load_file(special, 0, NULL);
    json_t *pad = root ? json_object_get(root, "pad_token") : NULL;
    if (pad && json_is_object(pad))
        pad = json_object_get(pad, "content");
    if (pad && json_is_string(pad)) {
        const char *s = json_string_value(pad);
        int32_t id = table_get(&(*out)->vocab, s, strlen(s));
        if (id >= 0)
            (*out)->pad = id;
    }
    json_decref(root);
    return TS_OK;
}

void ts_tokenizer_destroy(ts_tokenizer *tok)
{
    if (!tok)
        return;
    table_free(&tok->vocab);
    table_free(&tok->merges);
    free(tok);
}

int32_t ts_tokenizer_bos(const ts_tokenizer *tok)
{
    return tok->bos;
}

int32_t ts_tokenizer_eos(const ts_tokenizer *tok)
{
    return tok->eos;
}

int32_t ts_tokenizer_pad(const ts_tokenizer *tok)
{
    return tok->pad;
}

int ts_tokenizer_vocab_size(const ts_tokenizer *tok)
{
    return tok->vocab_size;
}

int32_t ts_tokenizer_lookup(const ts_tokenizer *tok, const char *symbol)
{
    return table_get(&tok->vocab, symbol, strlen(symbol));
}

/* ------------------------------------------------------------ characters */

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Python's str.isspace() set, which is what \s means in CLIP's pattern. */
static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_letter(uint32_t c)
{
    if (c < 0x80)
        return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    if (utf8_locale)
        return iswalpha_l((wint_t)c, utf8_locale) && !iswdigit_l((wint_t)c, utf8_locale);
    /* No C.UTF-8 locale: a coarse fallback naming the big letter blocks. */
    return (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x370 && c <= 0x52F) ||
           (c >= 0x3040 && c <= 0x30FF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xAC00 && c <= 0xD7A3);
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static uint32_t to_lower(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (utf8_locale)
        return (uint32_t)towlower_l((wint_t)c, utf8_locale);
    return c;
}

/* Decodes one code point at s[*i] and advances *i. Malformed input yields
 * U+FFFD for each maximal ill-formed subpart (Unicode's recommended practice,
 * which is also what Python's decode(errors="replace") does), so decoding
 * always advances and never reads past len. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char b = s[*i];
    int need;
    uint32_t c;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b < 0x80) {
        (*i)++;
        return b;
    } else if (b >= 0xC2 && b <= 0xDF) {
        need = 1, c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2, c = b & 0x0F;
        if (b == 0xE0)
            lo = 0xA0; /* no overlong forms */
        if (b == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3, c = b & 0x07;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        (*i)++;
        return 0xFFFD;
    }
    size_t p = *i + 1;
    for (int k = 0; k < need; k++, p++) {
        unsigned char lo_k = k == 0 ? lo : 0x80, hi_k = k == 0 ? hi : 0xBF;
        if (p >= len || s[p] < lo_k || s[p] > hi_k) {
            *i = p; /* the lead and the valid continuation bytes so far */
            return 0xFFFD;
        }
        c = (c << 6) | (s[p] & 0x3F);
    }
    *i = p;
    return c;
}

static size_t utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ------------------------------------------------------------ BPE */

typedef struct symbol {
    int off, len; /* a range of the mapped word */
} symbol;

static ts_status push_id(int32_t id, int32_t *ids, int cap, int *n, ts_error *err)
{
    if (*n >= cap)
        return ts_error_set(err, TS_ERR_LIMIT, "the prompt needs more than %d tokens", cap);
    ids[(*n)++] = id;
    return TS_OK;
}

/* Runs BPE over the UTF-8 bytes word[0..n) (n <= TS_TOKENIZER_WORD_MAX) and
 * appends the ids. */
static ts_status bpe_word(const ts_tokenizer *tok, const unsigned char *word, int n, int32_t *ids,
                          int cap, int *n_ids, ts_error *err)
{
    /* Each byte maps to at most 2 UTF-8 bytes; "</w>" adds 4. */
    char mapped[TS_TOKENIZER_WORD_MAX * 2 + 8];
    symbol sym[TS_TOKENIZER_WORD_MAX];
    int nsym = 0, len = 0;
    for (int i = 0; i < n; i++) {
        const char *m = tok->byte_sym[word[i]];
        int ml = (int)strlen(m);
        sym[nsym].off = len;
        sym[nsym].len = ml;
        nsym++;
        memcpy(mapped + len, m, (size_t)ml);
        len += ml;
    }
    memcpy(mapped + len, "</w>", 4);
    len += 4;
    sym[nsym - 1].len += 4;

    char key[sizeof mapped + 2];
    while (nsym > 1) {
        int32_t best = INT32_MAX;
        int best_i = -1;
        for (int i = 0; i + 1 < nsym; i++) {
            memcpy(key, mapped + sym[i].off, (size_t)sym[i].len);
            key[sym[i].len] = ' ';
            memcpy(key + sym[i].len + 1, mapped + sym[i + 1].off, (size_t)sym[i + 1].len);
            int32_t r = table_get(&tok->merges, key, (size_t)(sym[i].len + 1 + sym[i + 1].len));
            if (r >= 0 && r < best) {
                best = r;
                best_i = i;
            }
        }
        if (best_i < 0)
            break;

        /* Merge every occurrence of the pair, left to right, as CLIP does. */
        symbol a = sym[best_i], b = sym[best_i + 1];
        int out = 0;
        for (int i = 0; i < nsym;) {
            if (i + 1 < nsym && sym[i].len == a.len && sym[i + 1].len == b.len &&
                memcmp(mapped + sym[i].off, mapped + a.off, (size_t)a.len) == 0 &&
                memcmp(mapped + sym[i + 1].off, mapped + b.off, (size_t)b.len) == 0) {
                sym[out].off = sym[i].off;
                sym[out].len = sym[i].len + sym[i + 1].len;
                out++;
                i += 2;
            } else {
                sym[out++] = sym[i++];
            }
        }
        nsym = out;
    }

    for (int i = 0; i < nsym; i++) {
        int32_t id = table_get(&tok->vocab, mapped + sym[i].off, (size_t)sym[i].len);
        ts_status st = push_id(id >= 0 ? id : tok->eos, ids, cap, n_ids, err);
        if (st != TS_OK)
            return st;
    }
    return TS_OK;
}

/* Encodes one pre-token (UTF-8 bytes) in pieces of at most WORD_MAX bytes. */
static ts_status bpe_piece(const ts_tokenizer *tok, const char *s, size_t n, int32_t *ids, int cap,
                           int *n_ids, ts_error *err)
{
    for (size_t done = 0; done < n;) {
        size_t k = n - done < TS_TOKENIZER_WORD_MAX ? n - done : TS_TOKENIZER_WORD_MAX;
        ts_status st = bpe_word(tok, (const unsigned char *)s + done, (int)k, ids, cap, n_ids, err);
        if (st != TS_OK)
            return st;
        done += k;
    }
    return TS_OK;
}

/* ------------------------------------------------------------ encode */

static int starts_with(const uint32_t *cp, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || cp[i + k] != (uint32_t)(unsigned char)lit[k])
            return 0;
    return (int)k;
}

ts_status ts_tokenizer_encode(const ts_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                              int cap, int *n, ts_error *err)
{
    if (len > TS_TOKENIZER_TEXT_MAX)
        return ts_error_set(err, TS_ERR_LIMIT, "the prompt is %zu bytes; the limit is %d", len,
                            TS_TOKENIZER_TEXT_MAX);
    pthread_once(&utf8_once, utf8_locale_init);

    /* 1-3: decode, collapse white space, trim, lower-case. */
    uint32_t *cp = malloc((len + 1) * sizeof(*cp));
    char *buf = malloc(len * 4 + 8);
    if (!cp || !buf) {
        free(cp);
        free(buf);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory tokenizing the prompt");
    }
    size_t ncp = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = utf8_next((const unsigned char *)text, len, &i);
        if (is_space(c)) {
            if (ncp > 0 && cp[ncp - 1] != ' ')
                cp[ncp++] = ' ';
            continue;
        }
        cp[ncp++] = to_lower(c);
    }
    if (ncp > 0 && cp[ncp - 1] == ' ')
        ncp--;

    /* 4: pre-tokenise; 5-6: BPE each piece. */
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    ts_status st = TS_OK;
    size_t i = 0;
    while (i < ncp && st == TS_OK) {
        uint32_t c = cp[i];
        size_t start = i, k;
        if (c == ' ') {
            i++;
            continue;
        }
        if ((k = (size_t)starts_with(cp, ncp, i, "<|startoftext|>")) ||
            (k = (size_t)starts_with(cp, ncp, i, "<|endoftext|>"))) {
            st = push_id(k == 15 ? tok->bos : tok->eos, ids, cap, n, err);
            i += k;
            continue;
        }
        k = 0;
        for (size_t m = 0; m < sizeof contractions / sizeof *contractions && !k; m++)
            k = (size_t)starts_with(cp, ncp, i, contractions[m]);
        if (k) {
            i += k;
        } else if (is_letter(c)) {
            while (i < ncp && is_letter(cp[i]))
                i++;
        } else if (is_digit(c)) {
            i++;
        } else {
            while (i < ncp && cp[i] != ' ' && !is_letter(cp[i]) && !is_digit(cp[i]))
                i++;
        }
        size_t blen = 0;
        for (size_t m = start; m < i; m++)
            blen += utf8_put(cp[m], buf + blen);
        st = bpe_piece(tok, buf, blen, ids, cap, n, err);
    }

    free(cp);
    free(buf);
    return st;
}
