/*
 * ts_names.h - finding protected persons' names in prompts (POLICY.md P13).
 *
 * Both the prompt and each name go through the same normalisation:
 *
 *   1. UTF-8 is decoded; Latin letters with diacritics fold to their base
 *      letters (é -> e, Ł -> l, ß -> ss, æ -> ae, ...), and Cyrillic and
 *      Greek letters that look like Latin ones fold to those (Cyrillic а е
 *      о р с х у і к м т, Greek ο α ε ι κ ν ρ τ υ χ, ...).
 *   2. ASCII letters are lower-cased; digits and symbols that stand in for
 *      letters are read as those letters: 0 -> o, 3 -> e, 4 -> a, 5 -> s,
 *      7 -> t, and @ -> a, $ -> s when they touch a letter or digit (so
 *      "costs $5" and "me@home" still split where a reader splits them).
 *   3. A digit 1 or a capital I may be either i or l (fonts draw I like l),
 *      so "B1ll", "BiII" and "Bill" meet; a lower-case i and l stay
 *      different letters, so "all" does not meet "Ali".
 *   4. Everything else (spaces, punctuation, dashes, apostrophes, zero-width
 *      and invalid bytes) separates words.
 *
 * A name matches when its letters, with its own word breaks removed, occur
 * in the prompt's letter stream starting at the start of a prompt word and
 * ending at the end of one. So "T0m  HANKS", "tom-hanks", "t.o.m h.a.n.k.s",
 * "TomHanks" and "Tom Hanks's" match "Tom Hanks", while "Tom Hanksford",
 * "Atom Hanks" and "hanks" alone do not: only the full name and the aliases
 * the operator lists are protected (add "Hanks" as an alias to protect the
 * surname on its own).
 *
 * Known limits (also in docs/LIMITS.md): repeated or inserted letters
 * ("Tomm Hanks", "Tom Hxanks"), phonetic spellings, names in other scripts
 * (Han, Arabic, ...) beyond the look-alike folding, and descriptions that
 * avoid the name are not caught.
 *
 * Buffers that hold prompt text are wiped before they are freed.
 */
#ifndef TS_NAMES_H
#define TS_NAMES_H

#include <stddef.h>

#include "ts_error.h"

/* Longest name or alias, in bytes of UTF-8. */
#define TS_NAMES_NAME_MAX 128

/* A name in normalised form: letters only ('*' for "i or l"), word breaks
 * removed. */
typedef struct ts_names_key {
    char *letters;
    size_t len;
} ts_names_key;

/* Normalises a name or alias. TS_ERR_ARG if it holds no letters or is
 * longer than TS_NAMES_NAME_MAX bytes. Free with ts_names_key_free. */
ts_status ts_names_key_make(const char *name, ts_names_key *key, ts_error *err);
void ts_names_key_free(ts_names_key *key);

/* A prompt in normalised form, with the word starts/ends marked. */
typedef struct ts_names_text {
    char *letters;           /* len normalised letters */
    unsigned char *boundary; /* len + 1 flags: 1 where a word starts or ends */
    size_t len;
} ts_names_text;

ts_status ts_names_text_make(const char *prompt, ts_names_text *text, ts_error *err);
/* Wipes and frees. */
void ts_names_text_free(ts_names_text *text);

/* 1 when key occurs in text aligned to word boundaries at both ends. */
int ts_names_text_contains(const ts_names_text *text, const ts_names_key *key);

/* 1 when the two names normalise to the same letters (for "gallery remove"
 * and for merging repeated "gallery add"s of one person). */
int ts_names_same(const char *a, const char *b);

#endif
