/* ts_limits.c - request limits, checked in one place with one wording. */
#include "ts_limits.h"

#include <string.h>

void ts_limits_default(ts_limits *limits)
{
    limits->max_body_bytes = TS_LIMITS_DEFAULT_BODY_BYTES;
    limits->max_upload_bytes = TS_LIMITS_DEFAULT_UPLOAD_BYTES;
    limits->max_uploads = TS_LIMITS_DEFAULT_UPLOADS;
    limits->max_pixels = TS_LIMITS_DEFAULT_PIXELS;
    limits->max_prompt_bytes = TS_LIMITS_DEFAULT_PROMPT_BYTES;
    limits->max_n = TS_LIMITS_DEFAULT_N;
    limits->max_width = TS_LIMITS_DEFAULT_SIDE;
    limits->max_height = TS_LIMITS_DEFAULT_SIDE;
    limits->max_steps = TS_LIMITS_DEFAULT_STEPS;
}

ts_status ts_limits_validate(const ts_limits *l, ts_error *err)
{
    if (l->max_body_bytes == 0 || l->max_upload_bytes == 0 || l->max_prompt_bytes == 0)
        return ts_error_set(err, TS_ERR_ARG, "byte limits must be positive");
    if (l->max_upload_bytes > l->max_body_bytes)
        return ts_error_set(err, TS_ERR_ARG,
                            "the upload limit (%zu bytes) exceeds the body limit (%zu bytes)",
                            l->max_upload_bytes, l->max_body_bytes);
    if (l->max_uploads < 1 || l->max_uploads > TS_LIMITS_HARD_UPLOADS)
        return ts_error_set(err, TS_ERR_ARG, "uploads per request must be 1 to %d, not %d",
                            TS_LIMITS_HARD_UPLOADS, l->max_uploads);
    if (l->max_pixels < 64 * 64)
        return ts_error_set(err, TS_ERR_ARG, "the pixel limit %lld is too small (minimum 4096)",
                            (long long)l->max_pixels);
    if (l->max_n < 1 || l->max_n > 16)
        return ts_error_set(err, TS_ERR_ARG, "images per request must be 1 to 16, not %d",
                            l->max_n);
    if (l->max_width < 64 || l->max_height < 64 || l->max_width > 8192 || l->max_height > 8192)
        return ts_error_set(err, TS_ERR_ARG, "the size limit %dx%d must be within 64..8192",
                            l->max_width, l->max_height);
    if (l->max_steps < 1 || l->max_steps > 1000)
        return ts_error_set(err, TS_ERR_ARG, "the steps limit must be 1 to 1000, not %d",
                            l->max_steps);
    return TS_OK;
}

ts_status ts_limits_check_body(const ts_limits *l, size_t bytes, ts_error *err)
{
    if (bytes > l->max_body_bytes)
        return ts_error_set(err, TS_ERR_LIMIT, "request body is %zu bytes; the limit is %zu", bytes,
                            l->max_body_bytes);
    return TS_OK;
}

ts_status ts_limits_check_upload_bytes(const ts_limits *l, size_t bytes, ts_error *err)
{
    if (bytes > l->max_upload_bytes)
        return ts_error_set(err, TS_ERR_LIMIT, "uploaded file is %zu bytes; the limit is %zu",
                            bytes, l->max_upload_bytes);
    return TS_OK;
}

ts_status ts_limits_check_upload_count(const ts_limits *l, int count, ts_error *err)
{
    if (count < 0)
        return ts_error_set(err, TS_ERR_ARG, "negative upload count %d", count);
    if (count > l->max_uploads)
        return ts_error_set(err, TS_ERR_LIMIT, "request has %d images; the limit is %d", count,
                            l->max_uploads);
    return TS_OK;
}

ts_status ts_limits_check_pixels(const ts_limits *l, int width, int height, ts_error *err)
{
    if (width <= 0 || height <= 0)
        return ts_error_set(err, TS_ERR_ARG, "image size %dx%d is not a size", width, height);
    long long pixels = (long long)width * height;
    if (pixels > l->max_pixels)
        return ts_error_set(err, TS_ERR_LIMIT,
                            "image is %dx%d (%lld pixels); the limit is %lld pixels", width, height,
                            pixels, (long long)l->max_pixels);
    return TS_OK;
}

ts_status ts_limits_check_prompt(const ts_limits *l, const char *what, size_t bytes, ts_error *err)
{
    if (bytes > l->max_prompt_bytes)
        return ts_error_set(err, TS_ERR_LIMIT, "%s is %zu bytes; the limit is %zu",
                            what ? what : "prompt", bytes, l->max_prompt_bytes);
    return TS_OK;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

ts_status ts_limits_check_prompt_text(const ts_limits *l, const char *what, const char *text,
                                      int required, ts_error *err)
{
    what = what ? what : "prompt";
    size_t n = text ? strlen(text) : 0;
    ts_status st = ts_limits_check_prompt(l, what, n, err);
    if (st != TS_OK)
        return st;
    if (n && !utf8_valid((const unsigned char *)text, n))
        return ts_error_set(err, TS_ERR_FORMAT, "the %s is not valid UTF-8 text", what);
    size_t blank = 0;
    while (blank < n && strchr(" \t\r\n\v\f", text[blank]))
        blank++;
    if (required && blank == n)
        return ts_error_set(err, TS_ERR_ARG, "the %s is empty: describe the image to make", what);
    return TS_OK;
}

ts_status ts_limits_check_n(const ts_limits *l, int n, ts_error *err)
{
    if (n < 1)
        return ts_error_set(err, TS_ERR_ARG, "n is %d; ask for at least 1 image", n);
    if (n > l->max_n)
        return ts_error_set(err, TS_ERR_LIMIT, "n is %d; the limit is %d", n, l->max_n);
    return TS_OK;
}

ts_status ts_limits_check_size(const ts_limits *l, int width, int height, ts_error *err)
{
    if (width == 0 && height == 0)
        return TS_OK;
    if (width < 64 || height < 64)
        return ts_error_set(err, TS_ERR_ARG, "size %dx%d is too small; the minimum is 64x64", width,
                            height);
    if (width > l->max_width || height > l->max_height)
        return ts_error_set(err, TS_ERR_LIMIT, "size is %dx%d; the limit is %dx%d", width, height,
                            l->max_width, l->max_height);
    return TS_OK;
}

ts_status ts_limits_check_steps(const ts_limits *l, int steps, ts_error *err)
{
    if (steps == 0)
        return TS_OK;
    if (steps < 0)
        return ts_error_set(err, TS_ERR_ARG, "steps is %d; use a positive number", steps);
    if (steps > l->max_steps)
        return ts_error_set(err, TS_ERR_LIMIT, "steps is %d; the limit is %d", steps, l->max_steps);
    return TS_OK;
}
