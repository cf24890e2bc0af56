/*
 * ts_error.h - one status type and one error record for the whole library.
 *
 * Every function that can fail returns a ts_status and, when the caller passes
 * a ts_error, fills it with a sentence a person can act on ("PNG declares
 * 65535x65535 pixels; the limit is 40 megapixels"). Library code never prints
 * and never exits; the CLI and the HTTP layer turn these into exit codes and
 * responses.
 *
 *     ts_error err;
 *     ts_error_clear(&err);
 *     if (ts_thing_load(path, &thing, &err) != TS_OK)
 *         fprintf(stderr, "error: %s\n", err.message);
 *
 * Ownership: a ts_error is a plain value (no heap), safe to keep on the stack.
 */
#ifndef TS_ERROR_H
#define TS_ERROR_H

#include <stddef.h>

typedef enum ts_status {
    TS_OK = 0,
    TS_ERR_ARG,         /* the caller passed a bad value (flag, field, size)      */
    TS_ERR_FORMAT,      /* hostile or corrupt input: file, body, header, model     */
    TS_ERR_UNSUPPORTED, /* well-formed but of a kind we do not handle              */
    TS_ERR_LIMIT,       /* input exceeds a configured limit (bytes, pixels, count) */
    TS_ERR_NOT_FOUND,   /* a file, tensor, job or entry does not exist             */
    TS_ERR_IO,          /* the operating system refused (open, read, write)        */
    TS_ERR_NOMEM,       /* allocation failed                                       */
    TS_ERR_BUSY,        /* a queue or pool is full; try again later                */
    TS_ERR_CANCELLED,   /* the caller asked to stop                                */
    TS_ERR_REFUSED,     /* a policy check refused the content (portrait rights)    */
    TS_ERR_INTERNAL,    /* a bug of ours: an invariant did not hold                */
    TS_STATUS_COUNT
} ts_status;

#define TS_ERROR_MESSAGE_MAX 320

typedef struct ts_error {
    ts_status status;
    char message[TS_ERROR_MESSAGE_MAX];
} ts_error;

/* A short stable name for the status ("format", "limit", ...), for codes in
 * API error bodies and metric labels. */
const char *ts_status_name(ts_status status);

/* Resets err to TS_OK with an empty message. err may be NULL. */
void ts_error_clear(ts_error *err);

/* Records status and a printf-style message in err (if err is not NULL) and
 * returns status, so a failing path reads `return ts_error_set(err, ...);`.
 * The message is truncated to fit; it must never contain user content such as
 * a prompt (POLICY.md P1, P7). */
ts_status ts_error_set(ts_error *err, ts_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context: "loading unet: <old>". */
ts_status ts_error_wrap(ts_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
