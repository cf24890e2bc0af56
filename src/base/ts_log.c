/* ts_log.c - line formatting and the replaceable sink. */
#include "ts_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static ts_log_sink_fn sink_fn;
static void *sink_user;
static ts_log_level min_level = TS_LOG_INFO;
static _Thread_local char request_id[24];

static void default_sink(void *user, ts_log_level level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", line);
}

void ts_log_set_sink(ts_log_sink_fn sink, void *user)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = sink;
    sink_user = user;
    pthread_mutex_unlock(&sink_lock);
}

void ts_log_set_level(ts_log_level level)
{
    min_level = level;
}

ts_log_level ts_log_get_level(void)
{
    return min_level;
}

int ts_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

void ts_log_set_request_id(const char *id)
{
    if (!id) {
        request_id[0] = '\0';
        return;
    }
    snprintf(request_id, sizeof request_id, "%s", id);
}

void ts_log(ts_log_level level, const char *component, const char *fmt, ...)
{
    if (level < min_level)
        return;

    static const char marks[] = "DIWE";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    char line[1024];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c %-7s r=%s  ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, marks[level & 3], component ? component : "-",
                     request_id[0] ? request_id : "-");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }

    pthread_mutex_lock(&sink_lock);
    ts_log_sink_fn fn = sink_fn ? sink_fn : default_sink;
    fn(sink_user, level, line);
    pthread_mutex_unlock(&sink_lock);
}
