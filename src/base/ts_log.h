/*
 * ts_log.h - the one logger.
 *
 * Four levels, one fixed line prefix: time (UTC, ms), level mark, component,
 * request id (or "-"):
 *
 *     2026-12-04T16:20:01.123Z I http   r=8f3a  GET /v1/models 200 0.4ms
 *
 * POLICY.md P7: no log line may carry a client address, user agent, query
 * string, prompt, capability token or image content. Callers log routes and
 * numbers only; the access line is written once per request by the HTTP layer.
 *
 * The sink is replaceable (tests capture lines; the library itself never
 * writes to stderr unless the default sink is in use).
 */
#ifndef TS_LOG_H
#define TS_LOG_H

typedef enum ts_log_level {
    TS_LOG_DEBUG = 0,
    TS_LOG_INFO = 1,
    TS_LOG_WARN = 2,
    TS_LOG_ERROR = 3,
} ts_log_level;

/* Receives one finished line (no trailing newline). Must be thread-safe. */
typedef void (*ts_log_sink_fn)(void *user, ts_log_level level, const char *line);

/* Replaces the sink; NULL restores the default (stderr). */
void ts_log_set_sink(ts_log_sink_fn sink, void *user);

/* Lines below min_level are dropped. Default: TS_LOG_INFO. */
void ts_log_set_level(ts_log_level min_level);
ts_log_level ts_log_get_level(void);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int ts_log_level_parse(const char *name);

/* The request id shown in lines from this thread; NULL clears it. The id is a
 * short random tag made by the HTTP layer, never a capability token. */
void ts_log_set_request_id(const char *id);

void ts_log(ts_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ts_log_debug(comp, ...) ts_log(TS_LOG_DEBUG, comp, __VA_ARGS__)
#define ts_log_info(comp, ...)  ts_log(TS_LOG_INFO, comp, __VA_ARGS__)
#define ts_log_warn(comp, ...)  ts_log(TS_LOG_WARN, comp, __VA_ARGS__)
#define ts_log_error(comp, ...) ts_log(TS_LOG_ERROR, comp, __VA_ARGS__)

#endif
