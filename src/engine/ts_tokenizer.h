/*
 * ts_tokenizer.h - CLIP's byte-level BPE tokenizer, from vocab.json and
 * merges.txt (the files of a diffusers `tokenizer/` folder).
 *
 *     ts_tokenizer *tok;
 *     if (ts_tokenizer_load_dir("m/tokenizer", &tok, &err) != TS_OK)
 *         ...err names the file at fault...
 *     int32_t ids[256];
 *     int n = 0;
 *     ts_tokenizer_encode(tok, "a red heart", 11, ids, 256, &n, &err);
 *     ...ids[0..n) hold the ids, without BOS/EOS...
 *     ts_tokenizer_destroy(tok);
 *
 * Behaviour, step by step, as OpenAI CLIP's simple tokenizer:
 *   1. the bytes are decoded as UTF-8; invalid sequences become U+FFFD;
 *   2. runs of white space collapse to one space, ends are trimmed;
 *   3. the text is lower-cased;
 *   4. pre-tokenisation by CLIP's pattern, implemented by hand: the special
 *      tokens <|startoftext|> and <|endoftext|>, the contractions 's 't 're
 *      've 'm 'll 'd, runs of letters, single digits, runs of anything else
 *      that is neither space, letter nor digit;
 *   5. each piece's UTF-8 bytes are mapped to printable characters (GPT-2's
 *      bytes-to-unicode table), "</w>" marks the word end, and pairs merge by
 *      rank from merges.txt until none applies;
 *   6. each resulting symbol is looked up in vocab.json.
 *
 * Limits (written down, not hidden):
 *   - ftfy's mojibake repair and html.unescape are not applied.
 *   - "letter" and "digit" outside ASCII come from the C library's Unicode
 *     classes (C.UTF-8 locale): iswalpha / iswdigit, which differ from
 *     Python's \p{L} / \p{N} on rare characters (digits of other scripts and
 *     combining marks count as letters; non-ASCII numerals are not digits).
 *     Lower-casing uses towlower, one code point to one.
 *   - A single piece longer than TS_TOKENIZER_WORD_MAX bytes is cut into
 *     pieces of that size before BPE, which keeps the merge loop bounded on
 *     hostile input; CLIP itself has no such cut.
 *   - A symbol missing from the vocabulary (impossible with CLIP's own files,
 *     which hold every byte symbol) becomes the unknown token (EOS).
 *
 * Ownership: the tokenizer owns its tables; it is read-only after loading and
 * may be shared between threads.
 */
#ifndef TS_TOKENIZER_H
#define TS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#define TS_TOKENIZER_TEXT_MAX   (64 * 1024) /* bytes of prompt text accepted */
#define TS_TOKENIZER_WORD_MAX   128         /* bytes of one pre-token before BPE */
#define TS_TOKENIZER_VOCAB_MAX  (1 << 20)   /* entries in vocab.json */
#define TS_TOKENIZER_MERGES_MAX (1 << 20)   /* lines in merges.txt */

typedef struct ts_tokenizer ts_tokenizer;

/* Loads vocab.json and merges.txt. BOS and EOS are "<|startoftext|>" and
 * "<|endoftext|>"; padding is EOS unless set otherwise. */
ts_status ts_tokenizer_load(const char *vocab_path, const char *merges_path, ts_tokenizer **out,
                            ts_error *err);

/* Loads dir/vocab.json and dir/merges.txt, and takes the padding token from
 * dir/special_tokens_map.json when present (SD 2.x pads with "!"). */
ts_status ts_tokenizer_load_dir(const char *dir, ts_tokenizer **out, ts_error *err);

void ts_tokenizer_destroy(ts_tokenizer *tok);

int32_t ts_tokenizer_bos(const ts_tokenizer *tok);
int32_t ts_tokenizer_eos(const ts_tokenizer *tok);
int32_t ts_tokenizer_pad(const ts_tokenizer *tok);
int ts_tokenizer_vocab_size(const ts_tokenizer *tok);

/* Id of an exact vocabulary entry (already byte-mapped, e.g. "red</w>"), or -1. */
int32_t ts_tokenizer_lookup(const ts_tokenizer *tok, const char *symbol);

/* Appends the ids of text[0..len) to ids[*n..cap) and advances *n. No BOS or
 * EOS is added. TS_ERR_LIMIT when the text is longer than
 * TS_TOKENIZER_TEXT_MAX bytes or the ids do not fit in cap. */
ts_status ts_tokenizer_encode(const ts_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                              int cap, int *n, ts_error *err);

#endif
