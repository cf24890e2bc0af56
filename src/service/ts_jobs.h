/*
 * ts_jobs.h - the job queue and its worker threads: what turns a request
 * into images.
 *
 * Design note - the invariants this module keeps:
 *  - A job is reachable only with its id AND its capability token (P10). The
 *    token is 256 random bits in base64url, shown to the client once in the
 *    ticket; ts_jobs keeps only a keyed BLAKE2b hash of it and compares
 *    hashes with sodium_memcmp. A wrong token answers exactly like a job that
 *    does not exist: TS_ERR_NOT_FOUND with the same message.
 *  - The prompt is copied at submit and wiped (zeroed) as soon as the job
 *    ends, however it ends (P1); it is never logged or stored on disk.
 *  - Uploads are decoded images, kept encrypted in the ts_store while queued
 *    and destroyed the moment the job ends: done, failed, refused, cancelled
 *    or deleted (P2).
 *  - Results go to the ts_store as RESULT items and die at retention or on
 *    ts_jobs_delete (P3). The job record itself disappears with them.
 *  - Retention counts from creation for what the client sent and from the
 *    job's end for what it produced. A job still queued when its retention
 *    ends fails there ("expired before it could run", status.expired = 1):
 *    its prompt and uploads are destroyed at that moment, so nothing the
 *    client sent outlives the retention while waiting. A job that is already
 *    running finishes (its inputs live in memory only while it runs, P1, P2)
 *    and its results then get a full retention. A finished record holds no
 *    user content and lives one retention past the job's end, so its owner
 *    can read how it ended.
 *  - The queue is bounded: a full queue answers TS_ERR_BUSY with a
 *    Retry-After estimate from the queue length and recent job durations.
 *  - With a ts_portrait, the prompt and every upload are checked before the
 *    job is queued (TS_ERR_REFUSED, uploads destroyed at once) and every
 *    generated image before it is released (job REFUSED, result destroyed).
 *
 * The HTTP layer's use:
 *
 *     ts_job_request rq;
 *     ts_job_request_default(&rq);
 *     rq.prompt = prompt;  rq.n = 1;  rq.inputs[0] = &img;  rq.n_inputs = 1;
 *     ts_job_ticket t;
 *     switch (ts_jobs_submit(jobs, &rq, &t, &err)) {
 *     case TS_OK:          reply 202 {id: t.id, token: t.token, position: t.position}
 *     case TS_ERR_BUSY:    reply 429/503 with "Retry-After: t.retry_after_s"
 *     case TS_ERR_REFUSED: reply 422 err.message
 *     case TS_ERR_LIMIT:   reply 400/413 err.message
 *     }
 *     ts_jobs_status(jobs, id, token, &st, &err);        // poll
 *     ts_jobs_wait(jobs, id, token, 600000, &st, &err);  // the synchronous OpenAI route
 *     ts_jobs_result(jobs, id, token, 0, &image, &err);  // then encode PNG/JPEG/WebP
 *     ts_jobs_delete(jobs, id, token, &err);             // DELETE: gone at once
 *
 * Server-sent events: ts_jobs_subscribe gives a subscription whose first
 * event is always the current state (late joiners catch up), then every
 * change; several subscribers per job are fine. Pull events with
 * ts_job_sub_next (blocking with a timeout, or polling with 0); the optional
 * notify callback tells an event-driven server (MHD suspend/resume) when to
 * pull. After a terminal event (done, failed, refused, cancelled) the stream
 * ends with TS_ERR_NOT_FOUND.
 *
 * Sizes: width/height are rounded down to a multiple of 8 (at least 64); a
 * size larger than the model's native size is generated natively and
 * upscaled; ts_job_ticket and ts_job_status report the delivered size and the
 * native one.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef TS_JOBS_H
#define TS_JOBS_H

#include <stdint.h>

#include "ts_engine.h"
#include "ts_error.h"
#include "ts_image.h"
#include "ts_limits.h"
#include "ts_store.h"

typedef struct ts_portrait ts_portrait; /* ts_portrait.h */
typedef struct ts_metrics ts_metrics;   /* ts_metrics.h */

#define TS_JOB_ID_SIZE     24 /* 22 base64url characters (128 bits) + NUL */
#define TS_JOB_TOKEN_SIZE  48 /* 43 base64url characters (256 bits) + NUL */
#define TS_JOB_MAX_INPUTS  4
#define TS_JOB_MAX_N       16 /* hard cap, whatever limits.max_n says */
#define TS_JOB_MESSAGE_MAX TS_ERROR_MESSAGE_MAX
#define TS_JOB_FORMAT_MAX  16

typedef enum ts_job_state {
    TS_JOB_QUEUED = 0,
    TS_JOB_RUNNING,
    TS_JOB_DONE,
    TS_JOB_FAILED,
    TS_JOB_REFUSED,
    TS_JOB_CANCELLED,
    TS_JOB_STATE_COUNT
} ts_job_state;

/* "queued", "running", "done", "failed", "refused", "cancelled". */
const char *ts_job_state_name(ts_job_state state);

/* 1 for done, failed, refused and cancelled. */
int ts_job_state_is_final(ts_job_state state);

/* ------------------------------------------------------------ requests */

typedef struct ts_job_request {
    const char *prompt;          /* required; copied (and wiped at job end) */
    const char *negative_prompt; /* NULL or "" for none; copied likewise */
    int width, height;           /* 0: the model's native size */
    int n;                       /* images to make; 0 means 1 */
    int steps;                   /* 0: model default */
    float guidance;              /* < 0: model default */
    uint64_t seed;
    int seed_random; /* 1 (default): pick a random seed; reported in the status */
    ts_sampler sampler;
    float strength; /* img2img/inpaint: 0..1; < 0: 0.75 */
    /* Decoded, oriented inputs (0-4): one makes img2img (inpaint with mask),
     * two to four make the together shot. Copied into the store at submit;
     * the caller still owns and frees its images. */
    const ts_image *inputs[TS_JOB_MAX_INPUTS];
    int n_inputs;
    const ts_image *mask; /* NULL, or white = repaint; needs exactly one input */
    /* Remembered for the HTTP layer (downloads, OpenAI response shape);
     * ts_jobs does not interpret them. */
    char output_format[TS_JOB_FORMAT_MAX];   /* "png", "jpeg", "webp" */
    char response_format[TS_JOB_FORMAT_MAX]; /* "url", "b64_json" */
} ts_job_request;

/* Defaults: n 1, native size, model steps and guidance, random seed, strength
 * 0.75, output "png", response "b64_json". */
void ts_job_request_default(ts_job_request *rq);

typedef struct ts_job_ticket {
    char id[TS_JOB_ID_SIZE];
    char token[TS_JOB_TOKEN_SIZE]; /* give to the client once; never log it */
    int position;                  /* 1 = next to run */
    int width, height;             /* the size that will be delivered */
    int retry_after_s;             /* set with TS_ERR_BUSY */
    int native_width;              /* the size generated; below width x height when upscaled */
    int native_height;
} ts_job_ticket;

typedef struct ts_job_status {
    ts_job_state state;
    int position;          /* queued: 1-based place in the queue; else 0 */
    int image_index;       /* running: which of the n images (0-based) */
    int step, total_steps; /* running: sampler progress of that image */
    int n;                 /* images requested */
    int n_results;         /* images ready to download */
    int width, height;     /* delivered size */
    int native_width;      /* generated size when upscaled; else == width */
    int native_height;
    uint64_t seed;      /* the seed of image 0; image i used seed + i */
    int64_t created_ms; /* program time (ts_clock_now_ms) */
    int64_t expires_ms; /* queued: when it fails if it has not started by then;
                         * running: the earliest its results can go (now +
                         * retention); final: when results and record go */
    char output_format[TS_JOB_FORMAT_MAX];
    char response_format[TS_JOB_FORMAT_MAX];
    char message[TS_JOB_MESSAGE_MAX]; /* failed/refused/cancelled: why, safe to show */
    int expired;           /* failed because its retention ended while it was still queued */
    ts_status fail_status; /* failed: the kind of failure the runner reported (TS_ERR_LIMIT
                            * for a prompt over the model's token limit, TS_ERR_ARG, ...),
                            * so a caller can tell the request's fault from the server's;
                            * TS_OK in every other state */
} ts_job_status;

/* ---------------------------------------------------------- the runner */

/* One image to make, as handed to a runner. */
typedef struct ts_job_work {
    const char *prompt;
    const char *negative_prompt;
    int width, height; /* native, multiple of 8 */
    int steps;
    float guidance;
    uint64_t seed;
    ts_sampler sampler;
    float strength;
    const ts_image *inputs[TS_JOB_MAX_INPUTS];
    int n_inputs;
    const ts_image *mask;
    int index, n; /* which image of how many */
} ts_job_work;

/* Makes one image. Must call progress after each step (it returns nonzero
 * when the job was cancelled: stop and return TS_ERR_CANCELLED). worker is
 * 0..workers-1, so a runner can keep one model per worker. The default runner
 * is the engine (ts_generate / the together shot); tests of the queue
 * mechanics inject their own. */
typedef ts_status (*ts_job_runner_fn)(void *user, int worker, const ts_job_work *work,
                                      ts_progress_fn progress, void *progress_user, ts_image *out,
                                      ts_error *err);

typedef struct ts_jobs_options {
    ts_store *store;         /* required; not owned */
    const ts_limits *limits; /* required; copied */
    int workers;             /* >= 1 */
    int queue_size;          /* jobs waiting (not counting running ones), >= 1 */
    int64_t retention_ms;    /* 0: the store's retention */

    /* The engine runner (used when runner is NULL): each worker loads its own
     * model from model_path at ts_jobs_create. */
    const char *model_path;
    int threads_per_worker;

    /* An injected runner (tests of queue mechanics). native_* give the size
     * it makes natively (0: 512). */
    ts_job_runner_fn runner;
    void *runner_user;
    int native_width, native_height;

    ts_portrait *portrait; /* NULL: no portrait-rights checks; not owned */
    ts_metrics *metrics;   /* NULL: none; not owned */

    /* Injected portrait checks (tests of the refusal paths); used instead of
     * ts_portrait when set. Return 1 to refuse. */
    int (*check_prompt)(void *user, const char *prompt);
    int (*check_image)(void *user, const ts_image *img);
    void *check_user;
    int max_jobs; /* job records alive at once (any state); 0: 4096 */
} ts_jobs_options;

typedef struct ts_jobs ts_jobs;

/* Starts the workers (loading the model in each when the engine runner is
 * used). TS_ERR_UNSUPPORTED when no runner is given and the engine is not
 * built in. */
ts_status ts_jobs_create(const ts_jobs_options *opts, ts_jobs **out, ts_error *err);

/* Cancels running jobs between steps, joins the workers, destroys every job
 * and its items, closes subscriptions (their next call answers NOT_FOUND). */
void ts_jobs_destroy(ts_jobs *jobs);

/* Checks rq against the limits, runs the portrait checks, stores the inputs
 * encrypted and queues the job. Errors: TS_ERR_ARG (nonsense values),
 * TS_ERR_LIMIT (a limit, named in the message), TS_ERR_REFUSED (portrait
 * rights; nothing is kept), TS_ERR_BUSY (queue full; ticket->retry_after_s
 * set). */
ts_status ts_jobs_submit(ts_jobs *jobs, const ts_job_request *rq, ts_job_ticket *ticket,
                         ts_error *err);

/* TS_ERR_NOT_FOUND, message "no such job", for an unknown id, a wrong token
 * or an expired job alike. */
ts_status ts_jobs_status(ts_jobs *jobs, const char *id, const char *token, ts_job_status *st,
                         ts_error *err);

/* Blocks until the job is final or timeout_ms passed (measured on the
 * monotonic clock), then fills st. TS_OK in both cases: look at st->state. */
ts_status ts_jobs_wait(ts_jobs *jobs, const char *id, const char *token, int64_t timeout_ms,
                       ts_job_status *st, ts_error *err);

/* Decrypts result `index` (0..n_results-1) into *out (the caller frees it
 * with ts_image_free, which wipes it). TS_ERR_NOT_FOUND for a bad index,
 * token or id. */
ts_status ts_jobs_result(ts_jobs *jobs, const char *id, const char *token, int index, ts_image *out,
                         ts_error *err);

/* Destroys the job and all its items now; a running job stops between steps
 * and is never resumed. Subscribers get a final CANCELLED event. */
ts_status ts_jobs_delete(ts_jobs *jobs, const char *id, const char *token, ts_error *err);

/* Destroys finished jobs whose retention passed, and fails queued jobs older
 * than the retention (see the design note; running jobs are left to end).
 * Called by the store's sweeper cadence inside ts_jobs; tests call it with an
 * advanced clock. Returns how many jobs were removed. */
int ts_jobs_sweep(ts_jobs *jobs, int64_t now_ms);

typedef struct ts_jobs_stats {
    int queued;
    int running;
    int jobs; /* records alive (any state) */
    int workers;
    int queue_size;
    double mean_job_s; /* recent jobs, 0 when none yet */
} ts_jobs_stats;

void ts_jobs_get_stats(ts_jobs *jobs, ts_jobs_stats *stats);

/* The model's family and native size (for /v1/models and the page). */
void ts_jobs_model(ts_jobs *jobs, char family[32], int *native_width, int *native_height);

/* -------------------------------------------------------- live events */

typedef enum ts_job_event_type {
    TS_JOB_EVENT_QUEUED = 0, /* position */
    TS_JOB_EVENT_RUNNING,    /* the job left the queue */
    TS_JOB_EVENT_PROGRESS,   /* image_index, step, total, preview */
    TS_JOB_EVENT_DONE,       /* n_results (and the sizes every event carries) */
    TS_JOB_EVENT_FAILED,     /* message */
    TS_JOB_EVENT_REFUSED,    /* message */
    TS_JOB_EVENT_CANCELLED,  /* message */
} ts_job_event_type;

/* "queued", "running", "progress", "done", "failed", "refused", "cancelled". */
const char *ts_job_event_name(ts_job_event_type type);

typedef struct ts_job_event {
    ts_job_event_type type;
    uint64_t seq; /* increases by at least one per event of this job */
    int position;
    int image_index, n;
    int step, total;
    ts_image preview; /* PROGRESS: small RGB preview, or empty; owned by the event */
    int n_results;
    char message[TS_JOB_MESSAGE_MAX];
    /* Every event: the delivered size and the size generated (smaller when
     * the model's native size is below the delivered one: upscaled). */
    int width, height;
    int native_width, native_height;
    int expired;           /* FAILED: the retention ended while the job was still queued */
    ts_status fail_status; /* FAILED: as ts_job_status.fail_status */
} ts_job_event;

/* Frees (wipes) the preview; leaves the event empty. */
void ts_job_event_clear(ts_job_event *ev);

typedef struct ts_job_sub ts_job_sub;

/* Called (from a worker thread, with an internal lock held) when a new event
 * is ready. Keep it short and never call ts_jobs from it. */
typedef void (*ts_job_notify_fn)(void *user);

/* TS_ERR_NOT_FOUND like ts_jobs_status. notify may be NULL. */
ts_status ts_jobs_subscribe(ts_jobs *jobs, const char *id, const char *token,
                            ts_job_notify_fn notify, void *notify_user, ts_job_sub **out,
                            ts_error *err);

/* TS_OK: *ev holds the next event (release with ts_job_event_clear).
 * TS_ERR_BUSY: none within timeout_ms (0 = poll); send a keep-alive.
 * TS_ERR_NOT_FOUND: the stream is over (a final event was delivered, or the
 * job is gone). Intermediate progress events may be coalesced for a slow
 * reader; queued/running/final events never are. */
ts_status ts_job_sub_next(ts_job_sub *sub, int timeout_ms, ts_job_event *ev);

/* Ends a subscription; safe at any time, also after the job is gone. */
void ts_job_sub_close(ts_job_sub *sub);

#endif
