/*
 * ts_metrics.c - counters, gauges and histograms as relaxed atomics, rendered
 * in the Prometheus text exposition format (version 0.0.4).
 *
 * Histograms keep one counter per bucket (non-cumulative, summed at render)
 * and the sum in microseconds, so an update is a handful of atomic adds and
 * never takes a lock.
 */
#include "ts_metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_CLASSES 5 /* 1xx..5xx */
#define REQ_BUCKETS    10
#define GEN_BUCKETS    10

static const double req_bounds[REQ_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,  1,     2.5,  10};
static const double gen_bounds[GEN_BUCKETS] = {1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};

typedef struct histogram {
    _Atomic uint64_t buckets[16]; /* last used one is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
} histogram;

struct ts_metrics {
    _Atomic uint64_t requests[TS_ROUTE_COUNT][STATUS_CLASSES];
    histogram request_seconds[TS_ROUTE_COUNT];
    _Atomic uint64_t jobs[TS_JOB_OUTCOME_COUNT];
    histogram generation_seconds;
    _Atomic uint64_t refusals[TS_REFUSAL_COUNT];
    _Atomic int64_t queue_length;
    _Atomic int64_t running;
    _Atomic int64_t stored_items;
};

static const char *const route_names[TS_ROUTE_COUNT] = {
    [TS_ROUTE_PAGE] = "page",
    [TS_ROUTE_PRIVACY] = "privacy",
    [TS_ROUTE_HEALTHZ] = "healthz",
    [TS_ROUTE_METRICS] = "metrics",
    [TS_ROUTE_MODELS] = "models",
    [TS_ROUTE_GENERATIONS] = "generations",
    [TS_ROUTE_EDITS] = "edits",
    [TS_ROUTE_JOB_CREATE] = "job_create",
    [TS_ROUTE_JOB_STATUS] = "job_status",
    [TS_ROUTE_JOB_EVENTS] = "job_events",
    [TS_ROUTE_JOB_DOWNLOAD] = "job_download",
    [TS_ROUTE_JOB_DELETE] = "job_delete",
    [TS_ROUTE_TEST] = "test",
    [TS_ROUTE_OTHER] = "other",
};

static const char *const outcome_names[TS_JOB_OUTCOME_COUNT] = {"done", "failed", "refused",
                                                                "cancelled"};

static const char *const refusal_names[TS_REFUSAL_COUNT] = {
    [TS_REFUSAL_PORTRAIT_PROMPT] = "portrait_prompt",
    [TS_REFUSAL_PORTRAIT_UPLOAD] = "portrait_upload",
    [TS_REFUSAL_PORTRAIT_RESULT] = "portrait_result",
    [TS_REFUSAL_RATE_LIMIT] = "rate_limit",
    [TS_REFUSAL_QUEUE_FULL] = "queue_full",
    [TS_REFUSAL_LIMIT] = "limit",
    [TS_REFUSAL_CONNECTIONS] = "connections",
};

const char *ts_route_name(ts_route route)
{
    return (unsigned)route < TS_ROUTE_COUNT ? route_names[route] : "other";
}

int ts_route_is_expensive(ts_route route)
{
    return route == TS_ROUTE_GENERATIONS || route == TS_ROUTE_EDITS || route == TS_ROUTE_JOB_CREATE;
}

ts_status ts_metrics_create(ts_metrics **out, ts_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating metrics");
    return TS_OK;
}

void ts_metrics_destroy(ts_metrics *m)
{
    free(m);
}

static void observe(histogram *h, const double *bounds, int n, double seconds)
{
    if (!(seconds >= 0))
        seconds = 0;
    int b = 0;
    while (b < n && seconds > bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double us = seconds * 1e6;
    atomic_fetch_add_explicit(&h->sum_us, us > 1e15 ? (uint64_t)1e15 : (uint64_t)us,
                              memory_order_relaxed);
}

void ts_metrics_request(ts_metrics *m, ts_route route, int http_status, double seconds)
{
    if (!m)
        return;
    if ((unsigned)route >= TS_ROUTE_COUNT)
        route = TS_ROUTE_OTHER;
    int cls = http_status / 100 - 1;
    if (cls < 0 || cls >= STATUS_CLASSES)
        cls = STATUS_CLASSES - 1;
    atomic_fetch_add_explicit(&m->requests[route][cls], 1, memory_order_relaxed);
    observe(&m->request_seconds[route], req_bounds, REQ_BUCKETS, seconds);
}

void ts_metrics_job(ts_metrics *m, ts_job_outcome outcome, double seconds)
{
    if (!m || (unsigned)outcome >= TS_JOB_OUTCOME_COUNT)
        return;
    atomic_fetch_add_explicit(&m->jobs[outcome], 1, memory_order_relaxed);
    if (outcome == TS_JOB_OUTCOME_DONE)
        observe(&m->generation_seconds, gen_bounds, GEN_BUCKETS, seconds);
}

void ts_metrics_refusal(ts_metrics *m, ts_refusal reason)
{
    if (!m || (unsigned)reason >= TS_REFUSAL_COUNT)
        return;
    atomic_fetch_add_explicit(&m->refusals[reason], 1, memory_order_relaxed);
}

void ts_metrics_set_queue_length(ts_metrics *m, int queued)
{
    if (m)
        atomic_store_explicit(&m->queue_length, queued, memory_order_relaxed);
}

void ts_metrics_set_running(ts_metrics *m, int running)
{
    if (m)
        atomic_store_explicit(&m->running, running, memory_order_relaxed);
}

void ts_metrics_set_stored_items(ts_metrics *m, int items)
{
    if (m)
        atomic_store_explicit(&m->stored_items, items, memory_order_relaxed);
}

/* ------------------------------------------------------------- render */

typedef struct text {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

static uint64_t load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void put_histogram(text *t, const char *name, const char *label, histogram *h,
                          const double *bounds, int n)
{
    uint64_t cum = 0;
    const char *sep = label[0] ? "," : "";
    for (int b = 0; b < n; b++) {
        cum += load(&h->buckets[b]);
        put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, bounds[b],
            (unsigned long long)cum);
    }
    cum += load(&h->buckets[n]);
    put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep, (unsigned long long)cum);
    const char *open = label[0] ? "{" : "", *close = label[0] ? "}" : "";
    put(t, "%s_sum%s%s%s %.6f\n", name, open, label, close, (double)load(&h->sum_us) / 1e6);
    put(t, "%s_count%s%s%s %llu\n", name, open, label, close, (unsigned long long)cum);
}

ts_status ts_metrics_render(ts_metrics *m, char **out, size_t *len, ts_error *err)
{
    *out = NULL;
    *len = 0;
    text t = {.cap = 16384};
    t.buf = malloc(t.cap);
    if (!t.buf)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory rendering metrics");
    t.buf[0] = '\0';

    put(&t, "# HELP togethershot_requests_total HTTP requests by route and status class.\n"
            "# TYPE togethershot_requests_total counter\n");
    for (int r = 0; r < TS_ROUTE_COUNT; r++)
        for (int c = 0; c < STATUS_CLASSES; c++)
            put(&t, "togethershot_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
                route_names[r], c + 1, (unsigned long long)load(&m->requests[r][c]));

    put(&t, "# HELP togethershot_request_duration_seconds Time to answer a request.\n"
            "# TYPE togethershot_request_duration_seconds histogram\n");
    for (int r = 0; r < TS_ROUTE_COUNT; r++) {
        char label[64];
        snprintf(label, sizeof label, "route=\"%s\"", route_names[r]);
        put_histogram(&t, "togethershot_request_duration_seconds", label, &m->request_seconds[r],
                      req_bounds, REQ_BUCKETS);
    }

    put(&t, "# HELP togethershot_jobs_total Finished jobs by outcome.\n"
            "# TYPE togethershot_jobs_total counter\n");
    for (int o = 0; o < TS_JOB_OUTCOME_COUNT; o++)
        put(&t, "togethershot_jobs_total{outcome=\"%s\"} %llu\n", outcome_names[o],
            (unsigned long long)load(&m->jobs[o]));

    put(&t, "# HELP togethershot_generation_seconds Run time of successful jobs.\n"
            "# TYPE togethershot_generation_seconds histogram\n");
    put_histogram(&t, "togethershot_generation_seconds", "", &m->generation_seconds, gen_bounds,
                  GEN_BUCKETS);

    put(&t, "# HELP togethershot_refusals_total Refused requests and jobs by reason.\n"
            "# TYPE togethershot_refusals_total counter\n");
    for (int r = 0; r < TS_REFUSAL_COUNT; r++)
        put(&t, "togethershot_refusals_total{reason=\"%s\"} %llu\n", refusal_names[r],
            (unsigned long long)load(&m->refusals[r]));

    put(&t,
        "# HELP togethershot_queue_length Jobs waiting for a worker.\n"
        "# TYPE togethershot_queue_length gauge\n"
        "togethershot_queue_length %lld\n"
        "# HELP togethershot_jobs_running Jobs being generated now.\n"
        "# TYPE togethershot_jobs_running gauge\n"
        "togethershot_jobs_running %lld\n"
        "# HELP togethershot_stored_items Encrypted items held now (uploads and results).\n"
        "# TYPE togethershot_stored_items gauge\n"
        "togethershot_stored_items %lld\n",
        (long long)atomic_load(&m->queue_length), (long long)atomic_load(&m->running),
        (long long)atomic_load(&m->stored_items));

    if (t.failed) {
        free(t.buf);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory rendering metrics");
    }
    *out = t.buf;
    *len = t.len;
    return TS_OK;
}
