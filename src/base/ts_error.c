/* ts_error.c - status names and the error record. */
#include "ts_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[TS_STATUS_COUNT] = {
    [TS_OK] = "ok",
    [TS_ERR_ARG] = "invalid_argument",
    [TS_ERR_FORMAT] = "invalid_format",
    [TS_ERR_UNSUPPORTED] = "unsupported",
    [TS_ERR_LIMIT] = "limit_exceeded",
    [TS_ERR_NOT_FOUND] = "not_found",
    [TS_ERR_IO] = "io_error",
    [TS_ERR_NOMEM] = "out_of_memory",
    [TS_ERR_BUSY] = "busy",
    [TS_ERR_CANCELLED] = "cancelled",
    [TS_ERR_REFUSED] = "refused",
    [TS_ERR_INTERNAL] = "internal_error",
};

const char *ts_status_name(ts_status status)
{
    if ((unsigned)status >= TS_STATUS_COUNT)
        return "unknown";
    return status_names[status];
}

void ts_error_clear(ts_error *err)
{
    if (!err)
        return;
    err->status = TS_OK;
    err->message[0] = '\0';
}

ts_status ts_error_set(ts_error *err, ts_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

ts_status ts_error_wrap(ts_error *err, const char *fmt, ...)
{
    if (!err)
        return TS_ERR_INTERNAL;
    char prefix[TS_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);

    /* Build "prefix: old" in a buffer large enough for both, then cut. */
    char joined[2 * TS_ERROR_MESSAGE_MAX + 2];
    size_t n = strlen(prefix);
    memcpy(joined, prefix, n);
    memcpy(joined + n, ": ", 2);
    memcpy(joined + n + 2, err->message, strlen(err->message) + 1);
    memcpy(err->message, joined, TS_ERROR_MESSAGE_MAX - 1);
    err->message[TS_ERROR_MESSAGE_MAX - 1] = '\0';
    return err->status;
}
