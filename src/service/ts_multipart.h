/*
 * ts_multipart.h - a strict multipart/form-data parser over a body already
 * held in memory (RFC 7578).
 *
 * The HTTP layer reads a body into a buffer bounded by the route's limit;
 * this parser then finds the parts without copying them: each part points
 * into the body, which the caller keeps alive (and wipes) for as long as the
 * parts are used.
 *
 *     char boundary[TS_MULTIPART_BOUNDARY_MAX + 1];
 *     ts_multipart_boundary(content_type_header, boundary, &err);
 *     ts_multipart_part parts[TS_MULTIPART_MAX_PARTS];
 *     int n;
 *     ts_multipart_parse(body, len, boundary, parts, TS_MULTIPART_MAX_PARTS, &n, &err);
 *     for (int i = 0; i < n; i++) ... parts[i].name, parts[i].data, parts[i].len ...
 *
 * Hostile input (POLICY.md P11): every length is bounded (part headers 8 KiB
 * in all, names 64 bytes, at most max_parts parts), a missing closing
 * boundary is an error, and every rejection is TS_ERR_FORMAT (or
 * TS_ERR_LIMIT for counts) with a sentence naming what was wrong. Messages
 * never quote the body.
 *
 * Limits: Content-Transfer-Encoding is ignored (browsers and clients send
 * binary); the obsolete multipart/mixed nesting is not supported; RFC 2231
 * encoded file names (filename*=) are skipped (file names are not used).
 */
#ifndef TS_MULTIPART_H
#define TS_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#define TS_MULTIPART_BOUNDARY_MAX 70 /* RFC 2046 */
#define TS_MULTIPART_NAME_MAX     64
#define TS_MULTIPART_TYPE_MAX     96
#define TS_MULTIPART_MAX_PARTS    32

typedef struct ts_multipart_part {
    char name[TS_MULTIPART_NAME_MAX];         /* form field name */
    char content_type[TS_MULTIPART_TYPE_MAX]; /* as declared, or "" */
    int is_file;                              /* a filename parameter was present */
    const uint8_t *data;                      /* points into the body */
    size_t len;
} ts_multipart_part;

/* Extracts the boundary from a Content-Type header value. TS_ERR_UNSUPPORTED
 * when the type is not multipart/form-data, TS_ERR_FORMAT when the boundary
 * is missing or malformed. */
ts_status ts_multipart_boundary(const char *content_type, char out[TS_MULTIPART_BOUNDARY_MAX + 1],
                                ts_error *err);

/* Splits body into parts. *n_parts receives the count. */
ts_status ts_multipart_parse(const uint8_t *body, size_t len, const char *boundary,
                             ts_multipart_part *parts, int max_parts, int *n_parts, ts_error *err);

#endif
