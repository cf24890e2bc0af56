/*
 * ts_metrics.h - aggregate counters and timings, exposed in the Prometheus
 * text format at /metrics (POLICY.md P5, P7).
 *
 * Every label value comes from a closed enum defined here (route, status
 * class, job outcome, refusal reason), so no label can ever carry a client
 * address, user agent, query string, prompt, token or image content. There
 * are no per-client or per-job series.
 *
 *     ts_metrics *m;
 *     ts_metrics_create(&m, &err);
 *     ts_metrics_request(m, TS_ROUTE_GENERATIONS, 200, 1.25);   // once per request
 *     ts_metrics_job(m, TS_JOB_OUTCOME_DONE, 9.5);
 *     ts_metrics_refusal(m, TS_REFUSAL_RATE_LIMIT);
 *     char *text; size_t len;
 *     ts_metrics_render(m, &text, &len, &err);   // serve as
 *     free(text);                                // text/plain; version=0.0.4
 *     ts_metrics_destroy(m);
 *
 * Thread safety: updates are lock-free atomics; render takes a consistent
 * enough snapshot (each number is read atomically).
 */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stddef.h>

#include "ts_error.h"

/* The routes, as metric labels and rate-limit classes. */
typedef enum ts_route {
    TS_ROUTE_PAGE = 0,     /* GET / and static page assets */
    TS_ROUTE_PRIVACY,      /* GET /privacy */
    TS_ROUTE_HEALTHZ,      /* GET /healthz */
    TS_ROUTE_METRICS,      /* GET /metrics */
    TS_ROUTE_MODELS,       /* GET /v1/models */
    TS_ROUTE_GENERATIONS,  /* POST /v1/images/generations */
    TS_ROUTE_EDITS,        /* POST /v1/images/edits */
    TS_ROUTE_JOB_CREATE,   /* POST /api/jobs */
    TS_ROUTE_JOB_STATUS,   /* GET /api/jobs/{id} */
    TS_ROUTE_JOB_EVENTS,   /* GET /api/jobs/{id}/events */
    TS_ROUTE_JOB_DOWNLOAD, /* GET /api/jobs/{id}/images/{i} */
    TS_ROUTE_JOB_DELETE,   /* DELETE /api/jobs/{id} */
    TS_ROUTE_TEST,         /* test-mode only routes */
    TS_ROUTE_OTHER,        /* anything else (404s) */
    TS_ROUTE_COUNT
} ts_route;

/* Stable label value: "page", "privacy", ..., "other". */
const char *ts_route_name(ts_route route);

/* 1 for the routes that start generation work (generations, edits, job
 * create): they draw on the "expensive" rate-limit bucket. */
int ts_route_is_expensive(ts_route route);

typedef enum ts_job_outcome {
    TS_JOB_OUTCOME_DONE = 0,
    TS_JOB_OUTCOME_FAILED,
    TS_JOB_OUTCOME_REFUSED,
    TS_JOB_OUTCOME_CANCELLED,
    TS_JOB_OUTCOME_COUNT
} ts_job_outcome;

typedef enum ts_refusal {
    TS_REFUSAL_PORTRAIT_PROMPT = 0, /* a protected person's name in the prompt */
    TS_REFUSAL_PORTRAIT_UPLOAD,     /* a protected face in an upload */
    TS_REFUSAL_PORTRAIT_RESULT,     /* a protected face in a generated image */
    TS_REFUSAL_RATE_LIMIT,          /* a client's bucket was empty */
    TS_REFUSAL_QUEUE_FULL,          /* the job queue was full */
    TS_REFUSAL_LIMIT,               /* a request limit (size, pixels, count) */
    TS_REFUSAL_CONNECTIONS,         /* too many connections from one client */
    TS_REFUSAL_COUNT
} ts_refusal;

typedef struct ts_metrics ts_metrics;

ts_status ts_metrics_create(ts_metrics **out, ts_error *err);
void ts_metrics_destroy(ts_metrics *m);

/* One finished request: route, HTTP status (counted by class 2xx..5xx) and
 * duration in seconds (histogram). m may be NULL (no-op) in every update. */
void ts_metrics_request(ts_metrics *m, ts_route route, int http_status, double seconds);

/* One finished job and its run time (the generation-time histogram counts
 * only done jobs). */
void ts_metrics_job(ts_metrics *m, ts_job_outcome outcome, double seconds);

void ts_metrics_refusal(ts_metrics *m, ts_refusal reason);

/* Gauges. */
void ts_metrics_set_queue_length(ts_metrics *m, int queued);
void ts_metrics_set_running(ts_metrics *m, int running);
void ts_metrics_set_stored_items(ts_metrics *m, int items);

/* Renders the exposition text into a malloc'd NUL-terminated buffer (*text,
 * *len without the NUL); the caller frees it with free(). */
ts_status ts_metrics_render(ts_metrics *m, char **text, size_t *len, ts_error *err);

#endif
