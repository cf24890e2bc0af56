/*
 * ts_limits.h - the one place where request limits are checked (POLICY.md
 * P11).
 *
 * Every route calls these checks before doing work, so a rejection always
 * names the limit and its value in the same words:
 *
 *     "prompt is 5000 bytes; the limit is 4000"
 *
 *     ts_error err;
 *     if (ts_limits_check_prompt(&cfg->limits, "prompt", strlen(prompt), &err) != TS_OK)
 *         return respond_error(conn, 400, &err);   // TS_ERR_LIMIT
 *
 * The functions return TS_OK or TS_ERR_LIMIT (TS_ERR_ARG for values that are
 * not limits but nonsense, such as a width of -3). Messages never contain the
 * rejected content itself, only sizes and counts (P1, P7).
 *
 * Thread safety: pure functions over a read-only ts_limits.
 */
#ifndef TS_LIMITS_H
#define TS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

/* Defaults (also the values `serve --help` shows). */
#define TS_LIMITS_DEFAULT_BODY_BYTES   (64u * 1024 * 1024)
#define TS_LIMITS_DEFAULT_UPLOAD_BYTES (20u * 1024 * 1024)
#define TS_LIMITS_DEFAULT_UPLOADS      4
#define TS_LIMITS_DEFAULT_PIXELS       (40LL * 1000 * 1000)
#define TS_LIMITS_DEFAULT_PROMPT_BYTES 4000
#define TS_LIMITS_DEFAULT_N            4
#define TS_LIMITS_DEFAULT_SIDE         2048
#define TS_LIMITS_DEFAULT_STEPS        100
#define TS_LIMITS_HARD_UPLOADS         4 /* the together shot takes at most four people */
#define TS_LIMITS_HARD_JSON_BYTES      (1u * 1024 * 1024)

/* Seeds, the same in the CLI and both APIs: 0 .. 2^63-1, taken exactly (a
 * JSON integer holds them), or -1 for "pick one at random". Random seeds are
 * drawn below 2^53, so a client that reads JSON numbers as doubles
 * (JavaScript) gets the reported seed back exactly. */
/* Classifier-free guidance, the same in the CLI and both APIs: 0 .. 50 (at
 * or below 1 it is off). */
#define TS_LIMITS_GUIDANCE_MAX 50.0

#define TS_LIMITS_SEED_MAX        INT64_MAX
#define TS_LIMITS_SEED_RANDOM     (-1)
#define TS_LIMITS_SEED_RANDOM_MAX ((UINT64_C(1) << 53) - 1)
#define TS_LIMITS_SEED_RULE       "a whole number from 0 to 9223372036854775807, or -1 for a random seed"

typedef struct ts_limits {
    size_t max_body_bytes;   /* a whole request body (multipart included) */
    size_t max_upload_bytes; /* one uploaded file, encoded */
    int max_uploads;         /* files per request, 1..4 */
    int64_t max_pixels;      /* decoded width * height of one upload, checked from its header */
    size_t max_prompt_bytes; /* prompt and negative prompt, each, in bytes of UTF-8 */
    int max_n;               /* images per request */
    int max_width;           /* requested output size, pixels */
    int max_height;
    int max_steps; /* sampler steps */
} ts_limits;

/* Fills the defaults above. */
void ts_limits_default(ts_limits *limits);

/* Checks that the limits themselves are sane (positive, uploads <= 4). */
ts_status ts_limits_validate(const ts_limits *limits, ts_error *err);

ts_status ts_limits_check_body(const ts_limits *limits, size_t bytes, ts_error *err);
ts_status ts_limits_check_upload_bytes(const ts_limits *limits, size_t bytes, ts_error *err);
ts_status ts_limits_check_upload_count(const ts_limits *limits, int count, ts_error *err);
/* width x height as declared by an image header, before decoding. */
ts_status ts_limits_check_pixels(const ts_limits *limits, int width, int height, ts_error *err);
/* what names the field in the message: "prompt" or "negative prompt". */
ts_status ts_limits_check_prompt(const ts_limits *limits, const char *what, size_t bytes,
                                 ts_error *err);
/* A prompt's text as the CLI and both APIs take it: valid UTF-8, at most
 * max_prompt_bytes, and, when required, not empty or only white space
 * ("the prompt is empty: describe the image to make"). what names it as
 * above. TS_ERR_ARG, TS_ERR_FORMAT (not UTF-8) or TS_ERR_LIMIT. */
ts_status ts_limits_check_prompt_text(const ts_limits *limits, const char *what, const char *text,
                                      int required, ts_error *err);
ts_status ts_limits_check_n(const ts_limits *limits, int n, ts_error *err);
/* Requested output size; 0 means "the model's native size" and passes. */
ts_status ts_limits_check_size(const ts_limits *limits, int width, int height, ts_error *err);
/* 0 means "the model's default" and passes. */
ts_status ts_limits_check_steps(const ts_limits *limits, int steps, ts_error *err);

#endif
