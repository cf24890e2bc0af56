/*
 * ts_api_jobs.h - the native asynchronous job API, and what every API route
 * shares (the service context, request parsing, the job-token rules).
 *
 * Routes (registered by ts_api_jobs_register):
 *
 *   POST   /v1/jobs                      JSON or multipart; 202 {id, token, status_url, ...}
 *   GET    /v1/jobs/:id                  status, queue position, progress, results, expiry
 *   GET    /v1/jobs/:id/events           server-sent events: queued, running, progress
 *                                        (step k/n + PNG preview as a data URI), done,
 *                                        failed, refused, cancelled; comment heartbeats
 *   GET    /v1/jobs/:id/images/:file     "0.png", "1.jpg", "0.webp": that image, encoded
 *   DELETE /v1/jobs/:id                  destroys the job and its images now
 *   GET    /healthz, GET /metrics, GET /privacy
 *   POST   /v1/test/clock                test mode only: {"advance_ms": N} moves program time
 *
 * The capability token travels in "Authorization: Bearer T", "X-Job-Token: T"
 * or a "token" query parameter (for <img> and EventSource, which cannot set
 * headers); never in a cookie. A missing or wrong token answers byte for byte
 * like a job that never existed (404, POLICY.md P10).
 *
 * Ownership: the context's members are borrowed; they must outlive the
 * server. ts_api_jobs_register starts a heartbeat thread that
 * ts_api_jobs_shutdown stops (call it after ts_http_server_destroy).
 */
#ifndef TS_API_JOBS_H
#define TS_API_JOBS_H

#include "ts_config.h"
#include "ts_error.h"
#include "ts_http.h"
#include "ts_image.h"
#include "ts_jobs.h"

typedef struct ts_ratelimit ts_ratelimit;
typedef struct ts_metrics ts_metrics;
typedef struct ts_portrait ts_portrait;

typedef struct ts_api {
    const ts_config *cfg;
    ts_jobs *jobs;
    ts_ratelimit *ratelimit; /* NULL: no per-client rate limit */
    ts_metrics *metrics;     /* NULL: /metrics answers 404 */
    ts_portrait *portrait;   /* NULL: portrait checks off (for /privacy) */
    int tls_active;
    int sync_timeout_s;     /* the synchronous OpenAI routes wait at most this long */
    int heartbeat_ms;       /* SSE keep-alive comment period; 0: 10 s */
    struct ts_api_sse *sse; /* heartbeat state; set by ts_api_jobs_register */
} ts_api;

/* Registers the routes above on srv and starts the heartbeat thread. */
ts_status ts_api_jobs_register(ts_api *api, ts_http_server *srv, ts_error *err);

/* Stops the heartbeat thread (after the server is destroyed). */
void ts_api_jobs_shutdown(ts_api *api);

/* ----------------------------------------------- shared by the API routes */

/* A parsed generation request: the ts_job_request plus the decoded images it
 * points at. Release with ts_api_input_free (wipes the images). */
typedef struct ts_api_input {
    ts_job_request rq;
    ts_image images[TS_JOB_MAX_INPUTS];
    ts_image mask;
    int has_mask;
    int n_set;    /* 1 when the client gave n */
    void *fields; /* the parsed fields (json_t) the prompts point into */
} ts_api_input;

/* Parses a JSON or multipart body into in (fields: prompt, negative_prompt,
 * n, size "WxH" or "auto", width, height, steps, guidance / guidance_scale,
 * seed, sampler, strength, response_format, output_format, model; files
 * image, image[] (up to four) and mask). Every limit is checked here. In
 * JSON, numbers must be JSON numbers ("n": 2, not "n": "2"); a form's text
 * fields are read as numbers. "model", when given, must be the id of
 * ts_api_model_id (checked only when api->jobs is set). On error, *param
 * names the field at fault (or NULL) and err says what was wrong. */
ts_status ts_api_parse_input(ts_api *api, ts_http_request *req, int allow_images, int need_images,
                             ts_api_input *in, const char **param, ts_error *err);
void ts_api_input_free(ts_api_input *in);

/* The same parsing over a body and its Content-Type header value (NULL when
 * absent) held by the caller: what ts_api_parse_input does once it has read
 * them from the request. Needs only api->cfg; callable without a server
 * (the request fuzzer uses it). */
ts_status ts_api_parse_body(ts_api *api, const char *content_type, const uint8_t *body, size_t len,
                            int allow_images, int need_images, ts_api_input *in, const char **param,
                            ts_error *err);

/* Makes jansson zero every block it frees (parsed prompts are user
 * content). Call once at start, before any JSON is parsed. */
void ts_api_json_wipe_on_free(void);

/* A parked request that the heartbeat thread wakes every heartbeat period
 * (keep-alive comments, deadlines, noticing clients that left). The owner
 * adds it while the request is alive and removes it before the request ends
 * (in its stream or state free function). */
typedef struct ts_api_waker {
    ts_http_request *req;
    struct ts_api_waker *prev, *next;
} ts_api_waker;
void ts_api_waker_add(ts_api *api, ts_api_waker *w, ts_http_request *req);
void ts_api_waker_remove(ts_api *api, ts_api_waker *w);

/* Takes one token from the client's bucket (expensive or cheap); answers 429
 * with Retry-After and returns 0 when the bucket is empty. */
int ts_api_rate_check(ts_api *api, ts_http_request *req, int expensive);

/* The one "no such job" answer (identical bytes for every cause). */
void ts_api_respond_no_job(ts_http_request *req);

/* Answers a ts_jobs_submit failure (busy with Retry-After, refused 422, ...). */
void ts_api_respond_submit_error(ts_http_request *req, ts_status st, const ts_job_ticket *t,
                                 const ts_error *err);

/* Answers a ts_api_parse_input failure: a limit on anything but an upload
 * (image, mask) is 400, on an upload 413, both with code "limit_exceeded";
 * everything else answers as st maps. */
void ts_api_respond_parse_error(ts_http_request *req, ts_status st, const ts_error *err,
                                const char *param);

/* Encodes result `index` of a finished job in format; *out is released with
 * ts_image_buffer_free. */
ts_status ts_api_encode_result(ts_api *api, const char *id, const char *token, int index,
                               ts_image_format format, uint8_t **out, size_t *len, ts_error *err);

/* The id of the model this server serves, as GET /v1/models lists it (the
 * model's family, "togethershot" when it has none). Requests may name it in
 * "model"; any other name is refused (400, code model_not_found). */
#define TS_API_MODEL_ID_MAX 32
void ts_api_model_id(ts_api *api, char out[TS_API_MODEL_ID_MAX]);

/* What every answer about a job's images says about their size (added to o):
 *   "size": "512x512"         the delivered size
 *   "native_size": "64x64"    the size the model generated
 *   "upscaled": true          native_size is smaller than size (the model's
 *                             native size is below what was asked; the images
 *                             were generated natively and resized up) */
void ts_api_size_fields(json_t *o, int width, int height, int native_width, int native_height);

/* The metrics route for a route template ("GET /v1/jobs/:id"). */
int ts_api_route_metric(const char *route_template);

#endif
