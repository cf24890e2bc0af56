/* ts_names.c - normalising names and prompts, and finding the one in the other. */
#include "ts_names.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One decoded character, reduced to what matching needs. */
typedef enum unit_kind {
    UNIT_LETTERS, /* one or two normalised letters in text[] */
    UNIT_SEP,     /* a word break */
    UNIT_SKIP,    /* a combining mark: belongs to the letter before it */
    UNIT_SYMBOL,  /* @ or $: a letter inside a word, a break elsewhere */
} unit_kind;

typedef struct unit {
    unit_kind kind;
    char text[2];
    int n;
} unit;

/* U+00C0..U+00FF; "" = word break, two letters where one glyph is two. */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

/* U+0100..U+017F, one base letter each; '*' marks the ligatures ij / oe. */
static const char latin_ext_a[129] = "aaaaaaccccccccdd"
                                     "ddeeeeeeeeeegggg"
                                     "gggghhhhiiiiiiii"
                                     "ii**jjkkklllllll"
                                     "lllnnnnnnnnnoooo"
                                     "oo**rrrrrrssssss"
                                     "ssttttttuuuuuuuu"
                                     "uuuuwwyyyzzzzzzs";

/* Cyrillic and Greek letters drawn like Latin ones. */
static const struct {
    uint32_t cp;
    char latin;
} lookalikes[] = {
    {0x0410, 'a'}, {0x0430, 'a'}, {0x0412, 'b'}, {0x0432, 'b'}, {0x0415, 'e'}, {0x0435, 'e'},
    {0x0401, 'e'}, {0x0451, 'e'}, {0x041A, 'k'}, {0x043A, 'k'}, {0x041C, 'm'}, {0x043C, 'm'},
    {0x041D, 'h'}, {0x043D, 'h'}, {0x041E, 'o'}, {0x043E, 'o'}, {0x0420, 'p'}, {0x0440, 'p'},
    {0x0421, 'c'}, {0x0441, 'c'}, {0x0422, 't'}, {0x0442, 't'}, {0x0423, 'y'}, {0x0443, 'y'},
    {0x0425, 'x'}, {0x0445, 'x'}, {0x0406, 'i'}, {0x0456, 'i'}, {0x0408, 'j'}, {0x0458, 'j'},
    {0x0405, 's'}, {0x0455, 's'}, {0x0391, 'a'}, {0x03B1, 'a'}, {0x0392, 'b'}, {0x0395, 'e'},
    {0x03B5, 'e'}, {0x0396, 'z'}, {0x0397, 'h'}, {0x0399, 'i'}, {0x03B9, 'i'}, {0x039A, 'k'},
    {0x03BA, 'k'}, {0x039C, 'm'}, {0x039D, 'n'}, {0x03BD, 'v'}, {0x039F, 'o'}, {0x03BF, 'o'},
    {0x03A1, 'p'}, {0x03C1, 'p'}, {0x03A4, 't'}, {0x03C4, 't'}, {0x03A5, 'y'}, {0x03C5, 'u'},
    {0x03A7, 'x'}, {0x03C7, 'x'},
};

/* Decodes one UTF-8 sequence at s[0..len); returns its length (1 for an
 * invalid byte, with *cp = 0xFFFD). */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* The one letter that may be i or l: a digit 1 or a capital I, which many
 * fonts draw like a lower-case l. */
#define EITHER_I_L '*'

/* ASCII letter or digit to its normalised letter (0 = break). */
static char ascii_letter(char c)
{
    if (c == 'I' || c == '1')
        return EITHER_I_L;
    if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    if (c >= 'a' && c <= 'z')
        return c;
    switch (c) {
    case '0':
        return 'o';
    case '3':
        return 'e';
    case '4':
        return 'a';
    case '5':
        return 's';
    case '7':
        return 't';
    default:
        return c >= '0' && c <= '9' ? c : 0;
    }
}

/* Two normalised letters agree when equal, or when one may be i or l and
 * the other is i, l or the same ambiguity. */
static int letters_agree(char a, char b)
{
    if (a == b)
        return 1;
    if (a == EITHER_I_L)
        return b == 'i' || b == 'l';
    if (b == EITHER_I_L)
        return a == 'i' || a == 'l';
    return 0;
}

static int letters_match(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!letters_agree(a[i], b[i]))
            return 0;
    return 1;
}

static void set_letters(unit *u, const char *s)
{
    u->kind = UNIT_LETTERS;
    u->n = 0;
    for (; *s && u->n < 2; s++)
        u->text[u->n++] = ascii_letter(*s);
}

static unit classify(uint32_t cp)
{
    unit u = {UNIT_SEP, {0, 0}, 0};
    if (cp >= 0xFF01 && cp <= 0xFF5E) /* full-width ASCII */
        cp -= 0xFEE0;
    if (cp < 0x80) {
        char c = ascii_letter((char)cp);
        if (c) {
            u.kind = UNIT_LETTERS;
            u.text[0] = c;
            u.n = 1;
        } else if (cp == '@' || cp == '$') {
            u.kind = UNIT_SYMBOL;
            u.text[0] = cp == '@' ? 'a' : 's';
            u.n = 1;
        }
        return u;
    }
    if (cp >= 0x0300 && cp <= 0x036F) {
        u.kind = UNIT_SKIP;
        return u;
    }
    if (cp >= 0xC0 && cp <= 0xFF) {
        if (latin1[cp - 0xC0][0])
            set_letters(&u, latin1[cp - 0xC0]);
        return u;
    }
    if (cp >= 0x100 && cp <= 0x17F) {
        char c = latin_ext_a[cp - 0x100];
        if (c == '*')
            set_letters(&u, cp < 0x140 ? "ij" : "oe");
        else
            set_letters(&u, (char[]){c, 0});
        return u;
    }
    for (size_t i = 0; i < sizeof lookalikes / sizeof lookalikes[0]; i++)
        if (lookalikes[i].cp == cp) {
            set_letters(&u, (char[]){lookalikes[i].latin, 0});
            break;
        }
    return u;
}

/* Normalises s into letters (at most 2 per input byte) and, if boundary is
 * not NULL, the word-boundary flags (len + 1 of them). */
static size_t normalise(const char *s, size_t slen, char *letters, unsigned char *boundary)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = 0, i = 0;
    int pending_break = 1; /* the start of the text is a boundary */
    unit prev = {UNIT_SEP, {0, 0}, 0};
    while (i < slen) {
        uint32_t cp;
        i += utf8_next(p + i, slen - i, &cp);
        unit u = classify(cp);
        if (u.kind == UNIT_SKIP)
            continue;
        if (u.kind == UNIT_SYMBOL) {
            /* A letter when it touches a letter or digit on either side. */
            uint32_t next_cp = 0;
            if (i < slen)
                utf8_next(p + i, slen - i, &next_cp);
            unit next = classify(next_cp);
            u.kind =
                (prev.kind == UNIT_LETTERS || next.kind == UNIT_LETTERS) ? UNIT_LETTERS : UNIT_SEP;
        }
        prev = u;
        if (u.kind == UNIT_SEP) {
            pending_break = 1;
            continue;
        }
        for (int k = 0; k < u.n; k++) {
            if (boundary)
                boundary[len] = (unsigned char)pending_break;
            pending_break = 0;
            letters[len++] = u.text[k];
        }
    }
    if (boundary)
        boundary[len] = 1;
    return len;
}

ts_status ts_names_key_make(const char *name, ts_names_key *key, ts_error *err)
{
    memset(key, 0, sizeof *key);
    size_t n = strlen(name);
    if (n > TS_NAMES_NAME_MAX)
        return ts_error_set(err, TS_ERR_ARG, "a name is longer than %d bytes", TS_NAMES_NAME_MAX);
    key->letters = malloc(2 * n + 1);
    if (!key->letters)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory normalising a name");
    key->len = normalise(name, n, key->letters, NULL);
    key->letters[key->len] = 0;
    if (key->len == 0) {
        ts_names_key_free(key);
        return ts_error_set(err, TS_ERR_ARG, "a name must contain letters");
    }
    return TS_OK;
}

void ts_names_key_free(ts_names_key *key)
{
    free(key->letters);
    memset(key, 0, sizeof *key);
}

ts_status ts_names_text_make(const char *prompt, ts_names_text *text, ts_error *err)
{
    memset(text, 0, sizeof *text);
    size_t n = strlen(prompt);
    text->letters = malloc(2 * n + 1);
    text->boundary = malloc(2 * n + 2);
    if (!text->letters || !text->boundary) {
        free(text->letters);
        free(text->boundary);
        memset(text, 0, sizeof *text);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory screening a prompt");
    }
    text->len = normalise(prompt, n, text->letters, text->boundary);
    return TS_OK;
}

void ts_names_text_free(ts_names_text *text)
{
    if (text->letters) {
        sodium_memzero(text->letters, text->len);
        sodium_memzero(text->boundary, text->len + 1);
    }
    free(text->letters);
    free(text->boundary);
    memset(text, 0, sizeof *text);
}

int ts_names_text_contains(const ts_names_text *text, const ts_names_key *key)
{
    if (key->len == 0 || key->len > text->len)
        return 0;
    for (size_t i = 0; i + key->len <= text->len; i++)
        if (text->boundary[i] && text->boundary[i + key->len] &&
            letters_match(text->letters + i, key->letters, key->len))
            return 1;
    return 0;
}

int ts_names_same(const char *a, const char *b)
{
    ts_names_key ka, kb;
    if (ts_names_key_make(a, &ka, NULL) != TS_OK)
        return 0;
    if (ts_names_key_make(b, &kb, NULL) != TS_OK) {
        ts_names_key_free(&ka);
        return 0;
    }
    int same = ka.len == kb.len && letters_match(ka.letters, kb.letters, ka.len);
    ts_names_key_free(&ka);
    ts_names_key_free(&kb);
    return same;
}
