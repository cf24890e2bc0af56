/*
 * ts_jobs.c - the bounded job queue, its workers and the live event streams
 * (see ts_jobs.h for the invariants).
 *
 * Locking: one mutex (jobs->lock) guards every job record, the queue and
 * every subscription; one condition variable (jobs->changed) is broadcast on
 * any change, and waiters re-check their own condition. The runner itself
 * (the engine) runs without the lock. Lock order: jobs->lock, then the
 * store's lock (the store never calls back).
 *
 * Lifetime: a job record is referenced by the table (while reachable), by the
 * worker running it and by each subscription; it is freed when the last
 * reference goes. Deleting a job takes it out of the table at once and
 * destroys its items; a worker still running it notices the cancel flag at
 * the next step and throws its work away.
 */
#include "ts_jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ts_clock.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_secure.h"
#ifdef TS_SERVICE_HAVE_VISION
#include "ts_portrait.h"
#endif
#ifdef TS_SERVICE_HAVE_TOGETHER
#include "ts_together.h"
#endif

#define SUB_RING        16
#define DEFAULT_NATIVE  512
#define DEFAULT_JOB_S   20.0
#define NOT_FOUND_TEXT  "no such job"
#define STORE_IMAGE_HDR 8 /* width, height as little-endian uint32 */

typedef struct job job;

struct ts_job_sub {
    ts_jobs *jobs;
    job *j;
    ts_job_event ring[SUB_RING];
    int head, count;
    int final_queued; /* a final event is in the ring (or was delivered) */
    int ended;        /* nothing more will come */
    ts_job_notify_fn notify;
    void *notify_user;
    ts_job_sub *next;     /* the job's subscribers */
    ts_job_sub *all_next; /* every subscription of this ts_jobs */
};

struct job {
    char id[TS_JOB_ID_SIZE];
    uint8_t token_hash[crypto_generichash_BYTES];
    int refs;
    int in_table;
    _Atomic int cancel; /* set under the lock; the worker also peeks without it */
    ts_job_state state;

    char *prompt; /* ts_secure copies, wiped at job end (P1) */
    char *negative;
    int width, height;               /* delivered */
    int native_width, native_height; /* generated */
    int n, steps;
    float guidance, strength;
    uint64_t seed;
    ts_sampler sampler;
    char output_format[TS_JOB_FORMAT_MAX];
    char response_format[TS_JOB_FORMAT_MAX];

    char input_ids[TS_JOB_MAX_INPUTS][TS_STORE_ID_SIZE];
    int n_inputs;
    char mask_id[TS_STORE_ID_SIZE];
    int has_mask;
    char result_ids[TS_JOB_MAX_N][TS_STORE_ID_SIZE];
    int n_results;

    int image_index, step, total;
    int64_t created_ms, expires_ms;
    int expired;           /* failed because its retention ended while queued */
    ts_status fail_status; /* failed: what the runner or input loading reported */
    char message[TS_JOB_MESSAGE_MAX];
    uint64_t seq;
    ts_job_sub *subs;
    job *queue_next;
};

typedef struct engine_worker engine_worker;

struct ts_jobs {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    ts_jobs_options opts;
    ts_limits limits;
    int64_t retention_ms;
    uint8_t token_key[crypto_generichash_KEYBYTES]; /* hashes tokens; memory only */

    job **table;
    int max_jobs;
    job *queue_head, *queue_tail;
    int queued, running;

    pthread_t *threads;
    int n_threads;
    pthread_t maintenance;
    int maintenance_running;
    int stopping;
    double mean_job_s;
    int jobs_finished;

    char family[32];
    int native_width, native_height;
    engine_worker *engine; /* per-worker models, engine runner only */
    ts_job_sub *all_subs;
};

typedef struct worker_arg {
    ts_jobs *jobs;
    int index;
} worker_arg;

/* --------------------------------------------------------------- names */

const char *ts_job_state_name(ts_job_state state)
{
    static const char *const names[] = {"queued", "running", "done",
                                        "failed", "refused", "cancelled"};
    return (unsigned)state < TS_JOB_STATE_COUNT ? names[state] : "unknown";
}

int ts_job_state_is_final(ts_job_state state)
{
    return state == TS_JOB_DONE || state == TS_JOB_FAILED || state == TS_JOB_REFUSED ||
           state == TS_JOB_CANCELLED;
}

const char *ts_job_event_name(ts_job_event_type type)
{
    static const char *const names[] = {"queued", "running", "progress", "done",
                                        "failed", "refused", "cancelled"};
    return (unsigned)type <= TS_JOB_EVENT_CANCELLED ? names[type] : "unknown";
}

void ts_job_request_default(ts_job_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->n = 1;
    rq->guidance = -1.0f;
    rq->seed_random = 1;
    rq->strength = -1.0f;
    snprintf(rq->output_format, sizeof rq->output_format, "png");
    snprintf(rq->response_format, sizeof rq->response_format, "b64_json");
}

void ts_job_event_clear(ts_job_event *ev)
{
    if (!ev)
        return;
    if (ev->preview.pixels)
        ts_secure_free(ev->preview.pixels,
                       (size_t)ev->preview.width * (size_t)ev->preview.height * 3);
    memset(ev, 0, sizeof *ev);
}

/* ------------------------------------------------------ small helpers */

static void image_release(ts_image *img)
{
    if (img->pixels)
        ts_secure_free(img->pixels, (size_t)img->width * (size_t)img->height * 3);
    memset(img, 0, sizeof *img);
}

static int image_copy(const ts_image *src, ts_image *dst)
{
    memset(dst, 0, sizeof *dst);
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0)
        return 0;
    size_t n = (size_t)src->width * (size_t)src->height * 3;
    dst->pixels = malloc(n);
    if (!dst->pixels)
        return -1;
    memcpy(dst->pixels, src->pixels, n);
    dst->width = src->width;
    dst->height = src->height;
    return 0;
}

static ts_status store_image(ts_jobs *jobs, ts_item_kind kind, const char *owner,
                             const ts_image *img, int64_t expires_ms, char id_out[TS_STORE_ID_SIZE],
                             ts_error *err)
{
    size_t px = (size_t)img->width * (size_t)img->height * 3;
    size_t len = STORE_IMAGE_HDR + px;
    uint8_t *buf = malloc(len);
    if (!buf)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory storing an image");
    uint32_t w = (uint32_t)img->width, h = (uint32_t)img->height;
    for (int i = 0; i < 4; i++) {
        buf[i] = (uint8_t)(w >> (8 * i));
        buf[4 + i] = (uint8_t)(h >> (8 * i));
    }
    memcpy(buf + STORE_IMAGE_HDR, img->pixels, px);
    ts_status st = ts_store_put(jobs->opts.store, kind, owner, buf, len, expires_ms, id_out, err);
    ts_secure_free(buf, len);
    return st;
}

static ts_status load_image(ts_jobs *jobs, const char *id, ts_image *out, ts_error *err)
{
    memset(out, 0, sizeof *out);
    void *data;
    size_t len;
    ts_status st = ts_store_get(jobs->opts.store, id, &data, &len, NULL, err);
    if (st != TS_OK)
        return st;
    const uint8_t *b = data;
    uint32_t w = 0, h = 0;
    if (len >= STORE_IMAGE_HDR)
        for (int i = 0; i < 4; i++) {
            w |= (uint32_t)b[i] << (8 * i);
            h |= (uint32_t)b[4 + i] << (8 * i);
        }
    if (len < STORE_IMAGE_HDR || w == 0 || h == 0 || w > 65536 || h > 65536 ||
        (size_t)w * h * 3 != len - STORE_IMAGE_HDR) {
        ts_store_data_free(data, len);
        return ts_error_set(err, TS_ERR_INTERNAL, "a stored image has a bad header");
    }
    out->pixels = malloc(len - STORE_IMAGE_HDR);
    if (!out->pixels) {
        ts_store_data_free(data, len);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory loading an image");
    }
    memcpy(out->pixels, b + STORE_IMAGE_HDR, len - STORE_IMAGE_HDR);
    out->width = (int)w;
    out->height = (int)h;
    ts_store_data_free(data, len);
    return TS_OK;
}

static void random_b64(char *out, size_t out_size, size_t bytes)
{
    uint8_t raw[32];
    randombytes_buf(raw, bytes);
    sodium_bin2base64(out, out_size, raw, bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

static void token_hash(const ts_jobs *jobs, const char *token, uint8_t out[32])
{
    size_t n = token ? strnlen(token, TS_JOB_TOKEN_SIZE) : 0;
    crypto_generichash(out, crypto_generichash_BYTES, (const uint8_t *)(token ? token : ""), n,
                       jobs->token_key, sizeof jobs->token_key);
}

static void expire_queued(ts_jobs *jobs, job *j);

/* Finds a job by id and token. The token is hashed before the lookup and the
 * hashes are compared in constant time, so a wrong token and an unknown id
 * take the same path and answer the same (P10). Caller holds the lock. */
static job *find_job(ts_jobs *jobs, const char *id, const char *token)
{
    uint8_t h[crypto_generichash_BYTES];
    token_hash(jobs, token, h);
    job *found = NULL;
    if (id && strnlen(id, TS_JOB_ID_SIZE) < TS_JOB_ID_SIZE)
        for (int i = 0; i < jobs->max_jobs; i++) {
            job *j = jobs->table[i];
            if (j && strcmp(j->id, id) == 0) {
                if (sodium_memcmp(j->token_hash, h, sizeof h) == 0)
                    found = j;
                break;
            }
        }
    sodium_memzero(h, sizeof h);
    if (!found || found->expires_ms > ts_clock_now_ms())
        return found;
    /* Past its retention: a queued job fails now and says why; a running one
     * goes on to its end; a finished one is gone. */
    if (found->state == TS_JOB_QUEUED)
        expire_queued(jobs, found);
    return ts_job_state_is_final(found->state) && found->expires_ms <= ts_clock_now_ms() ? NULL
                                                                                         : found;
}

static void job_free(job *j)
{
    ts_secure_free_string(j->prompt);
    ts_secure_free_string(j->negative);
    sodium_memzero(j, sizeof *j);
    free(j);
}

static void job_unref(job *j)
{
    if (--j->refs == 0)
        job_free(j);
}

static void table_remove(ts_jobs *jobs, job *j)
{
    for (int i = 0; i < jobs->max_jobs; i++)
        if (jobs->table[i] == j) {
            jobs->table[i] = NULL;
            j->in_table = 0;
            job_unref(j);
            return;
        }
}

static void wipe_prompt(job *j)
{
    ts_secure_free_string(j->prompt);
    ts_secure_free_string(j->negative);
    j->prompt = NULL;
    j->negative = NULL;
}

static int queue_position(const ts_jobs *jobs, const job *j)
{
    int pos = 1;
    for (const job *q = jobs->queue_head; q; q = q->queue_next, pos++)
        if (q == j)
            return pos;
    return 0;
}

static void queue_remove(ts_jobs *jobs, job *j)
{
    job **pp = &jobs->queue_head;
    job *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->queue_next;
    }
    if (!*pp)
        return;
    *pp = j->queue_next;
    if (jobs->queue_tail == j)
        jobs->queue_tail = prev;
    j->queue_next = NULL;
    jobs->queued--;
}

static void update_gauges(ts_jobs *jobs)
{
    if (!jobs->opts.metrics)
        return;
    ts_metrics_set_queue_length(jobs->opts.metrics, jobs->queued);
    ts_metrics_set_running(jobs->opts.metrics, jobs->running);
    ts_store_stats ss;
    ts_store_get_stats(jobs->opts.store, &ss);
    int items = 0;
    for (int k = 0; k < TS_ITEM_KIND_COUNT; k++)
        items += ss.items[k];
    ts_metrics_set_stored_items(jobs->opts.metrics, items);
}

/* ------------------------------------------------------------- events */

static ts_job_event_type final_event_type(ts_job_state state)
{
    switch (state) {
    case TS_JOB_DONE:
        return TS_JOB_EVENT_DONE;
    case TS_JOB_FAILED:
        return TS_JOB_EVENT_FAILED;
    case TS_JOB_REFUSED:
        return TS_JOB_EVENT_REFUSED;
    default:
        return TS_JOB_EVENT_CANCELLED;
    }
}

static int is_final_event(ts_job_event_type t)
{
    return t >= TS_JOB_EVENT_DONE;
}

/* Builds the event that describes j's current state (for late joiners and
 * for every change). Caller holds the lock. */
static void event_from_state(const ts_jobs *jobs, const job *j, ts_job_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->seq = j->seq;
    ev->n = j->n;
    ev->width = j->width;
    ev->height = j->height;
    ev->native_width = j->native_width;
    ev->native_height = j->native_height;
    ev->expired = j->expired;
    ev->fail_status = j->state == TS_JOB_FAILED ? j->fail_status : TS_OK;
    switch (j->state) {
    case TS_JOB_QUEUED:
        ev->type = TS_JOB_EVENT_QUEUED;
        ev->position = queue_position(jobs, j);
        break;
    case TS_JOB_RUNNING:
        ev->type = j->total > 0 ? TS_JOB_EVENT_PROGRESS : TS_JOB_EVENT_RUNNING;
        ev->image_index = j->image_index;
        ev->step = j->step;
        ev->total = j->total;
        break;
    default:
        ev->type = final_event_type(j->state);
        ev->n_results = j->n_results;
        snprintf(ev->message, sizeof ev->message, "%s", j->message);
        break;
    }
}

/* Appends ev to one subscription, taking ownership of its preview. Pending
 * queued/progress events of the same type are replaced, so a slow reader
 * holds at most one of each; final events are never dropped. */
static void sub_push(ts_job_sub *s, ts_job_event *ev)
{
    if (s->final_queued || s->ended) {
        ts_job_event_clear(ev);
        return;
    }
    if (s->count > 0 && !is_final_event(ev->type)) {
        ts_job_event *last = &s->ring[(s->head + s->count - 1) % SUB_RING];
        if (last->type == ev->type &&
            (ev->type == TS_JOB_EVENT_PROGRESS || ev->type == TS_JOB_EVENT_QUEUED)) {
            ts_job_event_clear(last);
            *last = *ev;
            memset(ev, 0, sizeof *ev);
            goto notify;
        }
    }
    if (s->count == SUB_RING) {
        /* Full of distinct events: drop the oldest (never a final one: a
         * final event is always the last thing pushed). */
        ts_job_event_clear(&s->ring[s->head]);
        s->head = (s->head + 1) % SUB_RING;
        s->count--;
    }
    s->ring[(s->head + s->count) % SUB_RING] = *ev;
    s->count++;
    if (is_final_event(ev->type))
        s->final_queued = 1;
    memset(ev, 0, sizeof *ev);
notify:
    if (s->notify)
        s->notify(s->notify_user);
}

/* Sends j's current state to every subscriber; preview (may be NULL) is
 * copied into each progress event. Caller holds the lock. */
static void emit(ts_jobs *jobs, job *j, const ts_image *preview)
{
    j->seq++;
    for (ts_job_sub *s = j->subs; s; s = s->next) {
        ts_job_event ev;
        event_from_state(jobs, j, &ev);
        if (preview && ev.type == TS_JOB_EVENT_PROGRESS && image_copy(preview, &ev.preview) != 0)
            memset(&ev.preview, 0, sizeof ev.preview);
        sub_push(s, &ev);
    }
    pthread_cond_broadcast(&jobs->changed);
}

/* Everyone still queued moved up one place. */
static void emit_positions(ts_jobs *jobs)
{
    for (job *q = jobs->queue_head; q; q = q->queue_next)
        if (q->subs)
            emit(jobs, q, NULL);
}

/* ------------------------------------------------------------ endings */

static ts_job_outcome outcome_of(ts_job_state s)
{
    switch (s) {
    case TS_JOB_DONE:
        return TS_JOB_OUTCOME_DONE;
    case TS_JOB_REFUSED:
        return TS_JOB_OUTCOME_REFUSED;
    case TS_JOB_CANCELLED:
        return TS_JOB_OUTCOME_CANCELLED;
    default:
        return TS_JOB_OUTCOME_FAILED;
    }
}

/* Ends a job in a final state: the uploads and previews die now (P2), the
 * prompt is wiped (P1), results survive only for DONE, and the record lives
 * until retention. Caller holds the lock. */
static void finish_job(ts_jobs *jobs, job *j, ts_job_state state, const char *message,
                       double seconds)
{
    ts_store *st = jobs->opts.store;
    ts_store_destroy_owner(st, j->id, TS_ITEM_UPLOAD);
    ts_store_destroy_owner(st, j->id, TS_ITEM_PREVIEW);
    j->n_inputs = 0;
    j->has_mask = 0;
    memset(j->input_ids, 0, sizeof j->input_ids);
    memset(j->mask_id, 0, sizeof j->mask_id);
    if (state != TS_JOB_DONE) {
        ts_store_destroy_owner(st, j->id, -1);
        j->n_results = 0;
        memset(j->result_ids, 0, sizeof j->result_ids);
    }
    wipe_prompt(j);
    j->state = state;
    snprintf(j->message, sizeof j->message, "%s", message ? message : "");
    j->expires_ms = ts_clock_now_ms() + jobs->retention_ms;
    /* The record goes with its first result, so the status never lists an
     * image the store has already destroyed. */
    ts_store_item_info info;
    if (j->n_results > 0 && ts_store_info(st, j->result_ids[0], &info) == TS_OK &&
        info.expires_ms < j->expires_ms)
        j->expires_ms = info.expires_ms;
    ts_metrics_job(jobs->opts.metrics, outcome_of(state), seconds);
    emit(jobs, j, NULL);
}

/* "90 seconds", "2 minutes", "1 hour 30 minutes": a retention for people. */
static void format_duration(int64_t ms, char *out, size_t cap)
{
    int64_t s = (ms + 999) / 1000;
    if (s < 120) {
        snprintf(out, cap, "%lld second%s", (long long)s, s == 1 ? "" : "s");
        return;
    }
    int64_t h = s / 3600, m = (s % 3600) / 60;
    if (h == 0)
        snprintf(out, cap, "%lld minutes", (long long)m);
    else if (m == 0)
        snprintf(out, cap, "%lld hour%s", (long long)h, h == 1 ? "" : "s");
    else
        snprintf(out, cap, "%lld hour%s %lld minute%s", (long long)h, h == 1 ? "" : "s",
                 (long long)m, m == 1 ? "" : "s");
}

/* A queued job whose retention ended before a worker took it fails with a
 * message naming the retention; finish_job destroys its prompt and uploads
 * now, so nothing the client sent outlives the retention. Caller holds the
 * lock. */
static void expire_queued(ts_jobs *jobs, job *j)
{
    char retention[64], message[TS_JOB_MESSAGE_MAX];
    format_duration(jobs->retention_ms, retention, sizeof retention);
    snprintf(message, sizeof message,
             "the job expired before it could run: it waited in the queue longer than this "
             "server's retention of %s, so its prompt and photos were deleted; send it again "
             "when the queue is shorter",
             retention);
    queue_remove(jobs, j);
    j->expired = 1;
    finish_job(jobs, j, TS_JOB_FAILED, message, 0);
    emit_positions(jobs);
    update_gauges(jobs);
}

/* ------------------------------------------------------ portrait hooks */

static int refuse_prompt(ts_jobs *jobs, const char *prompt)
{
    if (jobs->opts.check_prompt)
        return jobs->opts.check_prompt(jobs->opts.check_user, prompt);
#ifdef TS_SERVICE_HAVE_VISION
    if (jobs->opts.portrait) {
        ts_portrait_verdict v = {0};
        ts_portrait_check_prompt(jobs->opts.portrait, prompt, &v);
        return v.refused;
    }
#endif
    return 0;
}

/* 1 refuse, 0 pass, -1 the check itself failed (treated as a refusal: a
 * check that cannot run must not let an image through). */
static int refuse_image(ts_jobs *jobs, const ts_image *img)
{
    if (jobs->opts.check_image)
        return jobs->opts.check_image(jobs->opts.check_user, img);
#ifdef TS_SERVICE_HAVE_VISION
    if (jobs->opts.portrait) {
        ts_portrait_verdict v = {0};
        ts_error e;
        if (ts_portrait_check_image(jobs->opts.portrait, img, &v, &e) != TS_OK)
            return -1;
        return v.refused;
    }
#endif
    return 0;
}

/* ------------------------------------------------------ engine runner */

#ifdef TS_SERVICE_HAVE_GENERATE
struct engine_worker {
    ts_model *model;
};

/* One image from the engine: txt2img without inputs, img2img (or inpaint
 * with a mask) with one, the together shot with two to four: the photos are
 * laid out on one canvas and everything around the people is repainted. */
static ts_status engine_run(void *user, int worker, const ts_job_work *w, ts_progress_fn progress,
                            void *progress_user, ts_image *out, ts_error *err)
{
    ts_jobs *jobs = user;
    ts_image canvas = {0}, together_mask = {0};
    if (w->n_inputs > 1) {
#ifdef TS_SERVICE_HAVE_TOGETHER
        ts_image photos[TS_JOB_MAX_INPUTS];
        for (int i = 0; i < w->n_inputs; i++)
            photos[i] = *w->inputs[i]; /* shallow: the pixels stay the caller's */
        ts_status st = ts_together_compose(photos, w->n_inputs, w->width, w->height, &canvas,
                                           &together_mask, err);
        if (st != TS_OK)
            return st;
#else
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "the together shot (2-4 photos) is not available in this build");
#endif
    }
    ts_gen_params p;
    ts_gen_params_default(&p);
    p.prompt = w->prompt;
    p.negative_prompt = w->negative_prompt;
    p.width = w->width;
    p.height = w->height;
    p.steps = w->steps;
    p.guidance = w->guidance;
    p.seed = w->seed;
    p.sampler = w->sampler;
    p.init_image = w->n_inputs == 1 ? w->inputs[0] : NULL;
    p.strength = w->strength;
    p.mask = w->mask;
    if (canvas.pixels) {
        p.init_image = &canvas;
        p.mask = &together_mask;
        p.strength = 1.0f; /* the scene comes entirely from the prompt */
    }
    ts_status st = ts_generate(jobs->engine[worker].model, &p, progress, progress_user, out, err);
    image_release(&canvas);
    image_release(&together_mask);
    return st;
}

static void engine_round(ts_jobs *jobs, int *width, int *height)
{
    ts_engine_round_size(jobs->engine[0].model, width, height);
}

static ts_status engine_open(ts_jobs *jobs, ts_error *err)
{
    jobs->engine = calloc((size_t)jobs->opts.workers, sizeof *jobs->engine);
    if (!jobs->engine)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    /* Workers share the cores: by default each gets its share, not all. */
    int threads = jobs->opts.threads_per_worker;
    if (threads <= 0 && jobs->opts.workers > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > jobs->opts.workers ? (int)(cores / jobs->opts.workers) : 1;
    }
    ts_model_options mo = {.force_f32 = 0, .threads = threads};
    for (int i = 0; i < jobs->opts.workers; i++) {
        ts_status st = ts_model_load(jobs->opts.model_path, &mo, &jobs->engine[i].model, err);
        if (st != TS_OK)
            return st;
    }
    ts_model_info info;
    ts_model_get_info(jobs->engine[0].model, &info);
    snprintf(jobs->family, sizeof jobs->family, "%s", info.family);
    jobs->native_width = info.native_width;
    jobs->native_height = info.native_height;
    jobs->opts.runner = engine_run;
    jobs->opts.runner_user = jobs;
    return TS_OK;
}

static void engine_close(ts_jobs *jobs)
{
    if (!jobs->engine)
        return;
    for (int i = 0; i < jobs->opts.workers; i++)
        if (jobs->engine[i].model)
            ts_model_destroy(jobs->engine[i].model);
    free(jobs->engine);
    jobs->engine = NULL;
}
#else
struct engine_worker {
    int unused;
};

static ts_status engine_open(ts_jobs *jobs, ts_error *err)
{
    return ts_error_set(err, TS_ERR_UNSUPPORTED,
                        "this build has no image engine; the service cannot generate");
}

static void engine_close(ts_jobs *jobs)
{
}

static void engine_round(ts_jobs *jobs, int *width, int *height)
{
}
#endif

/* ------------------------------------------------------------ workers */

typedef struct progress_ctx {
    ts_jobs *jobs;
    job *j;
    int image_index;
} progress_ctx;

static int on_progress(void *user, int step, int total, const ts_image *preview)
{
    progress_ctx *pc = user;
    ts_jobs *jobs = pc->jobs;
    pthread_mutex_lock(&jobs->lock);
    job *j = pc->j;
    int stop = j->cancel || jobs->stopping;
    if (!stop) {
        j->image_index = pc->image_index;
        j->step = step;
        j->total = total;
        emit(jobs, j, preview);
    }
    pthread_mutex_unlock(&jobs->lock);
    return stop;
}

/* Upscales a natively generated image to the delivered size. */
static ts_status upscale(ts_image *img, int width, int height, ts_error *err)
{
    if (img->width == width && img->height == height)
        return TS_OK;
#ifdef TS_SERVICE_HAVE_IMAGE
    ts_image big = {0};
    ts_status st = ts_image_resize(img, width, height, &big, err);
    if (st != TS_OK)
        return st;
    ts_image_free(img);
    *img = big;
    return TS_OK;
#else
    return ts_error_set(err, TS_ERR_UNSUPPORTED, "this build cannot upscale images");
#endif
}

/* Runs one job outside the lock. Returns the final state and message. */
/* Runs job j on this worker. Returns its final state, with the message for a
 * state other than done, and in *why what kind of failure it was. */
static ts_job_state run_job(ts_jobs *jobs, int worker, job *j, char *message, size_t cap,
                            ts_status *why)
{
    ts_image inputs[TS_JOB_MAX_INPUTS] = {{0}};
    ts_image mask = {0};
    ts_job_state final = TS_JOB_DONE;
    ts_error err;
    ts_error_clear(&err);

    /* The job's fields below are fixed while it runs (only the worker and
     * delete write them, and delete only sets cancel and moves ownership of
     * the items, which we re-check under the lock when storing). */
    pthread_mutex_lock(&jobs->lock);
    int n_inputs = j->n_inputs;
    char ids[TS_JOB_MAX_INPUTS][TS_STORE_ID_SIZE];
    char mask_id[TS_STORE_ID_SIZE];
    memcpy(ids, j->input_ids, sizeof ids);
    memcpy(mask_id, j->mask_id, sizeof mask_id);
    int has_mask = j->has_mask;
    pthread_mutex_unlock(&jobs->lock);

    for (int i = 0; i < n_inputs; i++)
        if (load_image(jobs, ids[i], &inputs[i], &err) != TS_OK) {
            final = j->cancel ? TS_JOB_CANCELLED : TS_JOB_FAILED;
            *why = err.status;
            snprintf(message, cap, "%s", j->cancel ? "deleted by its owner" : err.message);
            goto out;
        }
    if (has_mask && load_image(jobs, mask_id, &mask, &err) != TS_OK) {
        final = j->cancel ? TS_JOB_CANCELLED : TS_JOB_FAILED;
        *why = err.status;
        snprintf(message, cap, "%s", j->cancel ? "deleted by its owner" : err.message);
        goto out;
    }

    for (int k = 0; k < j->n; k++) {
        ts_job_work w = {
            .prompt = j->prompt,
            .negative_prompt = j->negative,
            .width = j->native_width,
            .height = j->native_height,
            .steps = j->steps,
            .guidance = j->guidance,
            .seed = j->seed + (uint64_t)k,
            .sampler = j->sampler,
            .strength = j->strength,
            .n_inputs = n_inputs,
            .mask = has_mask ? &mask : NULL,
            .index = k,
            .n = j->n,
        };
        for (int i = 0; i < n_inputs; i++)
            w.inputs[i] = &inputs[i];
        progress_ctx pc = {jobs, j, k};
        ts_image out = {0};
        ts_status st =
            jobs->opts.runner(jobs->opts.runner_user, worker, &w, on_progress, &pc, &out, &err);
        if (st == TS_OK && (!out.pixels || out.width <= 0 || out.height <= 0))
            st = ts_error_set(&err, TS_ERR_INTERNAL, "the engine returned no image");
        if (st == TS_OK)
            st = upscale(&out, j->width, j->height, &err);
        if (st == TS_OK) {
            int verdict = refuse_image(jobs, &out);
            if (verdict != 0) {
                image_release(&out);
                ts_metrics_refusal(jobs->opts.metrics, TS_REFUSAL_PORTRAIT_RESULT);
                final = TS_JOB_REFUSED;
                snprintf(message, cap, "%s",
                         verdict > 0 ? "a generated image shows a protected person; it was "
                                       "destroyed"
                                     : "the portrait-rights check could not run; the image was "
                                       "destroyed");
                goto out;
            }
        }
        if (st == TS_OK) {
            pthread_mutex_lock(&jobs->lock);
            if (j->cancel) {
                st = TS_ERR_CANCELLED;
            } else {
                st = store_image(jobs, TS_ITEM_RESULT, j->id, &out, 0, j->result_ids[j->n_results],
                                 &err);
                if (st == TS_OK)
                    j->n_results++;
            }
            pthread_mutex_unlock(&jobs->lock);
        }
        image_release(&out);
        if (st == TS_ERR_CANCELLED || j->cancel) {
            final = TS_JOB_CANCELLED;
            snprintf(message, cap, "%s",
                     jobs->stopping && !j->cancel ? "the server is shutting down"
                                                  : "deleted by its owner");
            goto out;
        }
        if (st != TS_OK) {
            final = st == TS_ERR_REFUSED ? TS_JOB_REFUSED : TS_JOB_FAILED;
            *why = st;
            snprintf(message, cap, "%s", err.message[0] ? err.message : "generation failed");
            goto out;
        }
    }
    message[0] = '\0';

out:
    for (int i = 0; i < TS_JOB_MAX_INPUTS; i++)
        image_release(&inputs[i]);
    image_release(&mask);
    return final;
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    ts_jobs *jobs = wa->jobs;
    int index = wa->index;
    free(wa);

    pthread_mutex_lock(&jobs->lock);
    for (;;) {
        while (!jobs->stopping && !jobs->queue_head)
            pthread_cond_wait(&jobs->changed, &jobs->lock);
        if (jobs->stopping)
            break;
        job *j = jobs->queue_head;
        if (j->expires_ms <= ts_clock_now_ms()) {
            expire_queued(jobs, j); /* its uploads are due to go now: it cannot run */
            continue;
        }
        queue_remove(jobs, j);
        j->refs++;
        j->state = TS_JOB_RUNNING;
        j->total = 0;
        jobs->running++;
        update_gauges(jobs);
        emit(jobs, j, NULL);
        emit_positions(jobs);
        pthread_mutex_unlock(&jobs->lock);

        int64_t t0 = ts_clock_mono_ms();
        char message[TS_JOB_MESSAGE_MAX];
        ts_status why = TS_OK;
        ts_job_state final = run_job(jobs, index, j, message, sizeof message, &why);
        double seconds = (double)(ts_clock_mono_ms() - t0) / 1000.0;

        pthread_mutex_lock(&jobs->lock);
        jobs->running--;
        if (final == TS_JOB_DONE) {
            /* An exponential average of recent durations for Retry-After. */
            jobs->mean_job_s =
                jobs->jobs_finished == 0 ? seconds : 0.8 * jobs->mean_job_s + 0.2 * seconds;
            jobs->jobs_finished++;
        }
        if (j->cancel) {
            /* Deleted while running: ts_jobs_delete already destroyed the
             * items and told the subscribers; drop anything stored since. */
            ts_store_destroy_owner(jobs->opts.store, j->id, -1);
            wipe_prompt(j);
        } else {
            j->fail_status =
                final == TS_JOB_FAILED ? (why != TS_OK ? why : TS_ERR_INTERNAL) : TS_OK;
            finish_job(jobs, j, final, message, seconds);
        }
        update_gauges(jobs);
        job_unref(j);
    }
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}

/* Sweeps expired jobs twice a minute (items are swept by the store). */
static void *maintenance_main(void *arg)
{
    ts_jobs *jobs = arg;
    pthread_mutex_lock(&jobs->lock);
    while (!jobs->stopping) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += TS_STORE_SWEEP_MS / 1000;
        pthread_cond_timedwait(&jobs->changed, &jobs->lock, &deadline);
        if (jobs->stopping)
            break;
        pthread_mutex_unlock(&jobs->lock);
        ts_jobs_sweep(jobs, ts_clock_now_ms());
        pthread_mutex_lock(&jobs->lock);
    }
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}

/* ------------------------------------------------------------ public */

ts_status ts_jobs_create(const ts_jobs_options *opts, ts_jobs **out, ts_error *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return ts_error_set(err, TS_ERR_INTERNAL, "libsodium failed to initialise");
    if (!opts->store || !opts->limits)
        return ts_error_set(err, TS_ERR_ARG, "the job queue needs a store and limits");
    if (opts->workers < 1 || opts->workers > 64)
        return ts_error_set(err, TS_ERR_ARG, "workers must be 1 to 64, not %d", opts->workers);
    if (opts->queue_size < 1 || opts->queue_size > 100000)
        return ts_error_set(err, TS_ERR_ARG, "queue size must be 1 to 100000, not %d",
                            opts->queue_size);

    ts_jobs *jobs = calloc(1, sizeof *jobs);
    if (!jobs)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    ts_status st = TS_OK;
    jobs->opts = *opts;
    jobs->limits = *opts->limits;
    jobs->opts.limits = &jobs->limits;
    int64_t store_retention = ts_store_retention_ms(opts->store);
    jobs->retention_ms = opts->retention_ms > 0 && opts->retention_ms < store_retention
                             ? opts->retention_ms
                             : store_retention;
    jobs->max_jobs = opts->max_jobs > 0 ? opts->max_jobs : 4096;
    crypto_generichash_keygen(jobs->token_key);
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&jobs->changed, &ca);
    pthread_condattr_destroy(&ca);
    jobs->table = calloc((size_t)jobs->max_jobs, sizeof *jobs->table);
    jobs->threads = calloc((size_t)opts->workers, sizeof *jobs->threads);
    if (!jobs->table || !jobs->threads) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory");
        goto fail;
    }

    snprintf(jobs->family, sizeof jobs->family, "custom");
    jobs->native_width = opts->native_width > 0 ? opts->native_width : DEFAULT_NATIVE;
    jobs->native_height = opts->native_height > 0 ? opts->native_height : DEFAULT_NATIVE;
    if (!opts->runner) {
        st = engine_open(jobs, err);
        if (st != TS_OK)
            goto fail;
    }

    for (int i = 0; i < opts->workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            st = ts_error_set(err, TS_ERR_NOMEM, "out of memory");
            goto fail_threads;
        }
        wa->jobs = jobs;
        wa->index = i;
        if (pthread_create(&jobs->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            st = ts_error_set(err, TS_ERR_INTERNAL, "cannot start worker %d", i);
            goto fail_threads;
        }
        jobs->n_threads++;
    }
    if (pthread_create(&jobs->maintenance, NULL, maintenance_main, jobs) != 0) {
        st = ts_error_set(err, TS_ERR_INTERNAL, "cannot start the job sweeper");
        goto fail_threads;
    }
    jobs->maintenance_running = 1;
    *out = jobs;
    return TS_OK;

fail_threads:
    ts_jobs_destroy(jobs);
    return st;
fail:
    engine_close(jobs);
    free(jobs->threads);
    free(jobs->table);
    sodium_memzero(jobs->token_key, sizeof jobs->token_key);
    pthread_cond_destroy(&jobs->changed);
    pthread_mutex_destroy(&jobs->lock);
    free(jobs);
    return st;
}

void ts_jobs_destroy(ts_jobs *jobs)
{
    if (!jobs)
        return;
    pthread_mutex_lock(&jobs->lock);
    jobs->stopping = 1;
    pthread_cond_broadcast(&jobs->changed);
    pthread_mutex_unlock(&jobs->lock);
    for (int i = 0; i < jobs->n_threads; i++)
        pthread_join(jobs->threads[i], NULL);
    if (jobs->maintenance_running)
        pthread_join(jobs->maintenance, NULL);

    pthread_mutex_lock(&jobs->lock);
    while (jobs->queue_head) {
        job *j = jobs->queue_head;
        queue_remove(jobs, j);
        finish_job(jobs, j, TS_JOB_CANCELLED, "the server is shutting down", 0);
    }
    for (int i = 0; i < jobs->max_jobs; i++) {
        job *j = jobs->table[i];
        if (!j)
            continue;
        ts_store_destroy_owner(jobs->opts.store, j->id, -1);
        table_remove(jobs, j);
    }
    /* Subscriptions outlive the queue only as shells holding their pending
     * events: detach them from their jobs (which may free the jobs). */
    for (ts_job_sub *s = jobs->all_subs; s; s = s->all_next) {
        job *j = s->j;
        s->jobs = NULL;
        s->j = NULL;
        ts_job_sub **pp = &j->subs;
        while (*pp && *pp != s)
            pp = &(*pp)->next;
        if (*pp)
            *pp = s->next;
        job_unref(j);
    }
    jobs->all_subs = NULL;
    pthread_mutex_unlock(&jobs->lock);

    engine_close(jobs);
    free(jobs->threads);
    free(jobs->table);
    sodium_memzero(jobs->token_key, sizeof jobs->token_key);
    pthread_cond_destroy(&jobs->changed);
    pthread_mutex_destroy(&jobs->lock);
    free(jobs);
}

static int round_side(int v)
{
    v -= v % 8;
    return v < 64 ? 64 : v;
}

/* The size the runner will generate: the engine's own rounding when it is
 * the runner, else multiples of 8 (at least 64). */
static void round_generated(ts_jobs *jobs, int *width, int *height)
{
    if (jobs->engine) {
        engine_round(jobs, width, height);
        return;
    }
    *width = round_side(*width);
    *height = round_side(*height);
}

static ts_status check_request(ts_jobs *jobs, const ts_job_request *rq, ts_error *err)
{
    const ts_limits *l = &jobs->limits;
    if (!rq->prompt)
        return ts_error_set(err, TS_ERR_ARG, "a prompt is required");
    ts_status st = ts_limits_check_prompt(l, "prompt", strlen(rq->prompt), err);
    if (st == TS_OK && rq->negative_prompt)
        st = ts_limits_check_prompt(l, "negative prompt", strlen(rq->negative_prompt), err);
    if (st == TS_OK)
        st = ts_limits_check_n(l, rq->n == 0 ? 1 : rq->n, err);
    if (st == TS_OK && rq->n > TS_JOB_MAX_N)
        st = ts_error_set(err, TS_ERR_LIMIT, "n is %d; the limit is %d", rq->n, TS_JOB_MAX_N);
    if (st == TS_OK && (rq->width == 0) != (rq->height == 0))
        st = ts_error_set(err, TS_ERR_ARG, "give both width and height, or neither");
    if (st == TS_OK)
        st = ts_limits_check_size(l, rq->width, rq->height, err);
    if (st == TS_OK)
        st = ts_limits_check_steps(l, rq->steps, err);
    if (st == TS_OK)
        st = ts_limits_check_upload_count(l, rq->n_inputs, err);
    if (st == TS_OK && rq->n_inputs > TS_JOB_MAX_INPUTS)
        st = ts_error_set(err, TS_ERR_LIMIT, "request has %d images; the limit is %d", rq->n_inputs,
                          TS_JOB_MAX_INPUTS);
    for (int i = 0; st == TS_OK && i < rq->n_inputs; i++) {
        const ts_image *img = rq->inputs[i];
        if (!img || !img->pixels)
            return ts_error_set(err, TS_ERR_ARG, "image %d is missing", i + 1);
        st = ts_limits_check_pixels(l, img->width, img->height, err);
    }
    if (st == TS_OK && rq->mask) {
        if (rq->n_inputs != 1)
            return ts_error_set(err, TS_ERR_ARG, "a mask needs exactly one image, not %d",
                                rq->n_inputs);
        if (!rq->mask->pixels || rq->mask->width != rq->inputs[0]->width ||
            rq->mask->height != rq->inputs[0]->height)
            return ts_error_set(err, TS_ERR_ARG, "the mask must be the size of the image");
    }
    if (st == TS_OK && !(isfinite(rq->guidance) && rq->guidance <= TS_LIMITS_GUIDANCE_MAX))
        st = ts_error_set(err, TS_ERR_ARG, "guidance must be a number up to %g",
                          TS_LIMITS_GUIDANCE_MAX);
    if (st == TS_OK && !rq->seed_random && rq->seed > (uint64_t)TS_LIMITS_SEED_MAX)
        st = ts_error_set(err, TS_ERR_ARG, "seed must be " TS_LIMITS_SEED_RULE);
    if (st == TS_OK && !(isfinite(rq->strength) && rq->strength <= 1.0f))
        st = ts_error_set(err, TS_ERR_ARG, "strength must be between 0 and 1");
    return st;
}

/* Fills the Retry-After estimate of a full queue: the work ahead (waiting
 * and running jobs) times the recent mean job time, shared by the workers.
 * Caller holds the lock. */
static ts_status busy_ticket(ts_jobs *jobs, ts_job_ticket *ticket, ts_error *err)
{
    double mean = jobs->mean_job_s > 0 ? jobs->mean_job_s : DEFAULT_JOB_S;
    double wait = (jobs->queued + jobs->running) * mean / jobs->opts.workers;
    int ra = (int)ceil(wait);
    ticket->retry_after_s = ra < 1 ? 1 : (ra > 3600 ? 3600 : ra);
    ts_metrics_refusal(jobs->opts.metrics, TS_REFUSAL_QUEUE_FULL);
    return ts_error_set(err, TS_ERR_BUSY,
                        "the queue is full (%d jobs waiting); try again in %d seconds",
                        jobs->queued, ticket->retry_after_s);
}

ts_status ts_jobs_submit(ts_jobs *jobs, const ts_job_request *rq, ts_job_ticket *ticket,
                         ts_error *err)
{
    memset(ticket, 0, sizeof *ticket);
    ts_status st = check_request(jobs, rq, err);
    if (st != TS_OK) {
        if (st == TS_ERR_LIMIT)
            ts_metrics_refusal(jobs->opts.metrics, TS_REFUSAL_LIMIT);
        return st;
    }

    /* A full queue answers before any face is looked at, so a flood of
     * requests cannot make the server run the (costly) portrait checks for
     * nothing. The capacity is checked again when the job is queued. */
    pthread_mutex_lock(&jobs->lock);
    int full = jobs->queued >= jobs->opts.queue_size || jobs->stopping;
    if (full)
        busy_ticket(jobs, ticket, err);
    pthread_mutex_unlock(&jobs->lock);
    if (full)
        return TS_ERR_BUSY;

    /* Portrait rights first: nothing of a refused request is ever stored. */
    if (refuse_prompt(jobs, rq->prompt)) {
        ts_metrics_refusal(jobs->opts.metrics, TS_REFUSAL_PORTRAIT_PROMPT);
        return ts_error_set(err, TS_ERR_REFUSED,
                            "the prompt names a protected person; this server does not make "
                            "images of them");
    }
    for (int i = 0; i < rq->n_inputs; i++) {
        int verdict = refuse_image(jobs, rq->inputs[i]);
        if (verdict != 0) {
            ts_metrics_refusal(jobs->opts.metrics, TS_REFUSAL_PORTRAIT_UPLOAD);
            return ts_error_set(err, TS_ERR_REFUSED,
                                verdict > 0 ? "image %d shows a protected person; it was "
                                              "deleted"
                                            : "image %d could not be checked for protected "
                                              "persons; it was deleted",
                                i + 1);
        }
    }

    job *j = calloc(1, sizeof *j);
    if (!j)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    j->prompt = ts_secure_strndup(rq->prompt, jobs->limits.max_prompt_bytes);
    j->negative = ts_secure_strndup(rq->negative_prompt ? rq->negative_prompt : "",
                                    jobs->limits.max_prompt_bytes);
    if (!j->prompt || !j->negative) {
        job_free(j);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    }
    random_b64(j->id, sizeof j->id, 16);
    random_b64(ticket->token, sizeof ticket->token, 32);
    token_hash(jobs, ticket->token, j->token_hash);
    memcpy(ticket->id, j->id, sizeof ticket->id);
    j->refs = 1;
    j->n = rq->n == 0 ? 1 : rq->n;
    j->steps = rq->steps;
    j->guidance = rq->guidance;
    j->strength = rq->strength < 0 ? 0.75f : rq->strength;
    j->sampler = rq->sampler;
    if (rq->seed_random) {
        randombytes_buf(&j->seed, sizeof j->seed);
        j->seed &= TS_LIMITS_SEED_RANDOM_MAX; /* exact even as a JavaScript number */
    } else {
        j->seed = rq->seed; /* exactly as asked (check_request bounds it) */
    }
    snprintf(j->output_format, sizeof j->output_format, "%s",
             rq->output_format[0] ? rq->output_format : "png");
    snprintf(j->response_format, sizeof j->response_format, "%s",
             rq->response_format[0] ? rq->response_format : "b64_json");

    /* Sizes: up to the native size, generated as asked, rounded to what the
     * model accepts (and delivered at that size). Beyond native, generated at
     * the native scale (aspect kept) and upscaled to the asked size rounded
     * down to a multiple of 8. */
    int nw = jobs->native_width, nh = jobs->native_height;
    int want_w = rq->width ? rq->width : nw, want_h = rq->height ? rq->height : nh;
    if (want_w > nw || want_h > nh) {
        double scale = fmin((double)nw / want_w, (double)nh / want_h);
        j->width = round_side(want_w);
        j->height = round_side(want_h);
        j->native_width = (int)(want_w * scale);
        j->native_height = (int)(want_h * scale);
        round_generated(jobs, &j->native_width, &j->native_height);
    } else {
        j->native_width = want_w;
        j->native_height = want_h;
        round_generated(jobs, &j->native_width, &j->native_height);
        j->width = j->native_width;
        j->height = j->native_height;
    }
    ticket->width = j->width;
    ticket->height = j->height;
    ticket->native_width = j->native_width;
    ticket->native_height = j->native_height;
    j->created_ms = ts_clock_now_ms();
    j->expires_ms = j->created_ms + jobs->retention_ms;

    pthread_mutex_lock(&jobs->lock);
    int slot = -1;
    if (jobs->queued >= jobs->opts.queue_size || jobs->stopping) {
        st = busy_ticket(jobs, ticket, err);
        goto fail_locked;
    }
    for (int i = 0; i < jobs->max_jobs; i++)
        if (!jobs->table[i]) {
            slot = i;
            break;
        }
    if (slot < 0) {
        ticket->retry_after_s = 60;
        st = ts_error_set(err, TS_ERR_BUSY, "the server holds its maximum of %d jobs",
                          jobs->max_jobs);
        goto fail_locked;
    }
    /* Inputs go into the store, encrypted, owned by the job. */
    for (int i = 0; i < rq->n_inputs; i++) {
        st = store_image(jobs, TS_ITEM_UPLOAD, j->id, rq->inputs[i], j->expires_ms, j->input_ids[i],
                         err);
        if (st != TS_OK)
            goto fail_items;
        j->n_inputs++;
    }
    if (rq->mask) {
        st = store_image(jobs, TS_ITEM_UPLOAD, j->id, rq->mask, j->expires_ms, j->mask_id, err);
        if (st != TS_OK)
            goto fail_items;
        j->has_mask = 1;
    }

    jobs->table[slot] = j;
    j->in_table = 1;
    if (jobs->queue_tail)
        jobs->queue_tail->queue_next = j;
    else
        jobs->queue_head = j;
    jobs->queue_tail = j;
    jobs->queued++;
    ticket->position = queue_position(jobs, j);
    update_gauges(jobs);
    pthread_cond_broadcast(&jobs->changed);
    pthread_mutex_unlock(&jobs->lock);
    return TS_OK;

fail_items:
    ts_store_destroy_owner(jobs->opts.store, j->id, -1);
    if (st == TS_ERR_BUSY)
        ticket->retry_after_s = 60;
fail_locked:
    pthread_mutex_unlock(&jobs->lock);
    sodium_memzero(ticket->token, sizeof ticket->token);
    memset(ticket->id, 0, sizeof ticket->id);
    job_free(j);
    return st;
}

static void fill_status(ts_jobs *jobs, const job *j, ts_job_status *st)
{
    memset(st, 0, sizeof *st);
    st->state = j->state;
    st->position = j->state == TS_JOB_QUEUED ? queue_position(jobs, j) : 0;
    st->image_index = j->image_index;
    st->step = j->step;
    st->total_steps = j->total;
    st->n = j->n;
    st->n_results = j->n_results;
    st->width = j->width;
    st->height = j->height;
    st->native_width = j->native_width;
    st->native_height = j->native_height;
    st->seed = j->seed;
    st->created_ms = j->created_ms;
    st->expires_ms = j->expires_ms;
    /* A running job's record and images live a retention past its end, so
     * the earliest they can go is a retention from now. */
    if (j->state == TS_JOB_RUNNING && st->expires_ms < ts_clock_now_ms() + jobs->retention_ms)
        st->expires_ms = ts_clock_now_ms() + jobs->retention_ms;
    memcpy(st->output_format, j->output_format, sizeof st->output_format);
    memcpy(st->response_format, j->response_format, sizeof st->response_format);
    memcpy(st->message, j->message, sizeof st->message);
    st->expired = j->expired;
    st->fail_status = j->state == TS_JOB_FAILED ? j->fail_status : TS_OK;
}

ts_status ts_jobs_status(ts_jobs *jobs, const char *id, const char *token, ts_job_status *st,
                         ts_error *err)
{
    pthread_mutex_lock(&jobs->lock);
    job *j = find_job(jobs, id, token);
    if (j)
        fill_status(jobs, j, st);
    pthread_mutex_unlock(&jobs->lock);
    return j ? TS_OK : ts_error_set(err, TS_ERR_NOT_FOUND, NOT_FOUND_TEXT);
}

ts_status ts_jobs_wait(ts_jobs *jobs, const char *id, const char *token, int64_t timeout_ms,
                       ts_job_status *st, ts_error *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&jobs->lock);
    job *j;
    for (;;) {
        j = find_job(jobs, id, token);
        if (!j || ts_job_state_is_final(j->state) || jobs->stopping)
            break;
        if (pthread_cond_timedwait(&jobs->changed, &jobs->lock, &deadline) != 0) {
            j = find_job(jobs, id, token);
            break;
        }
    }
    if (j)
        fill_status(jobs, j, st);
    pthread_mutex_unlock(&jobs->lock);
    return j ? TS_OK : ts_error_set(err, TS_ERR_NOT_FOUND, NOT_FOUND_TEXT);
}

ts_status ts_jobs_result(ts_jobs *jobs, const char *id, const char *token, int index, ts_image *out,
                         ts_error *err)
{
    memset(out, 0, sizeof *out);
    char item[TS_STORE_ID_SIZE] = "";
    pthread_mutex_lock(&jobs->lock);
    job *j = find_job(jobs, id, token);
    int ok = j && j->state == TS_JOB_DONE && index >= 0 && index < j->n_results;
    if (ok)
        memcpy(item, j->result_ids[index], sizeof item);
    pthread_mutex_unlock(&jobs->lock);
    if (!ok)
        return ts_error_set(err, TS_ERR_NOT_FOUND, j ? "no such image" : NOT_FOUND_TEXT);
    ts_status st = load_image(jobs, item, out, err);
    if (st == TS_ERR_NOT_FOUND)
        ts_error_set(err, TS_ERR_NOT_FOUND, NOT_FOUND_TEXT);
    return st;
}

/* Takes j out of reach and destroys everything it holds. Caller holds the
 * lock. */
static void remove_job(ts_jobs *jobs, job *j, const char *why)
{
    if (j->state == TS_JOB_QUEUED) {
        queue_remove(jobs, j);
        emit_positions(jobs);
    }
    j->cancel = 1;
    ts_store_destroy_owner(jobs->opts.store, j->id, -1);
    j->n_results = 0;
    j->n_inputs = 0;
    j->has_mask = 0;
    if (!ts_job_state_is_final(j->state)) {
        ts_job_state was = j->state;
        j->state = TS_JOB_CANCELLED;
        snprintf(j->message, sizeof j->message, "%s", why);
        if (was == TS_JOB_QUEUED) {
            ts_metrics_job(jobs->opts.metrics, TS_JOB_OUTCOME_CANCELLED, 0);
            wipe_prompt(j);
        } else {
            /* The worker still reads the prompt until its next step; it
             * wipes it when it notices the cancel flag. */
            ts_metrics_job(jobs->opts.metrics, TS_JOB_OUTCOME_CANCELLED, 0);
        }
        emit(jobs, j, NULL);
    } else {
        j->state = TS_JOB_CANCELLED;
        snprintf(j->message, sizeof j->message, "%s", why);
        emit(jobs, j, NULL);
    }
    update_gauges(jobs);
    table_remove(jobs, j);
}

ts_status ts_jobs_delete(ts_jobs *jobs, const char *id, const char *token, ts_error *err)
{
    pthread_mutex_lock(&jobs->lock);
    job *j = find_job(jobs, id, token);
    if (j)
        remove_job(jobs, j, "deleted by its owner");
    pthread_mutex_unlock(&jobs->lock);
    return j ? TS_OK : ts_error_set(err, TS_ERR_NOT_FOUND, NOT_FOUND_TEXT);
}

int ts_jobs_sweep(ts_jobs *jobs, int64_t now_ms)
{
    int count = 0;
    pthread_mutex_lock(&jobs->lock);
    for (int i = 0; i < jobs->max_jobs; i++) {
        job *j = jobs->table[i];
        if (!j || j->expires_ms > now_ms || j->state == TS_JOB_RUNNING)
            continue; /* a running job ends first; its record then gets a retention */
        if (j->state == TS_JOB_QUEUED) {
            expire_queued(jobs, j); /* fails, saying why; removed a retention later */
            continue;
        }
        remove_job(jobs, j, "expired");
        count++;
    }
    pthread_mutex_unlock(&jobs->lock);
    return count;
}

void ts_jobs_get_stats(ts_jobs *jobs, ts_jobs_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    pthread_mutex_lock(&jobs->lock);
    stats->queued = jobs->queued;
    stats->running = jobs->running;
    for (int i = 0; i < jobs->max_jobs; i++)
        stats->jobs += jobs->table[i] != NULL;
    stats->workers = jobs->opts.workers;
    stats->queue_size = jobs->opts.queue_size;
    stats->mean_job_s = jobs->mean_job_s;
    pthread_mutex_unlock(&jobs->lock);
}

void ts_jobs_model(ts_jobs *jobs, char family[32], int *native_width, int *native_height)
{
    snprintf(family, 32, "%s", jobs->family);
    if (native_width)
        *native_width = jobs->native_width;
    if (native_height)
        *native_height = jobs->native_height;
}

/* ------------------------------------------------------ subscriptions */

ts_status ts_jobs_subscribe(ts_jobs *jobs, const char *id, const char *token,
                            ts_job_notify_fn notify, void *notify_user, ts_job_sub **out,
                            ts_error *err)
{
    *out = NULL;
    ts_job_sub *s = calloc(1, sizeof *s);
    if (!s)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&jobs->lock);
    job *j = find_job(jobs, id, token);
    if (!j) {
        pthread_mutex_unlock(&jobs->lock);
        free(s);
        return ts_error_set(err, TS_ERR_NOT_FOUND, NOT_FOUND_TEXT);
    }
    s->jobs = jobs;
    s->j = j;
    s->notify = notify;
    s->notify_user = notify_user;
    j->refs++;
    s->next = j->subs;
    j->subs = s;
    s->all_next = jobs->all_subs;
    jobs->all_subs = s;
    /* The first event is the current state: a late joiner catches up. */
    ts_job_event ev;
    event_from_state(jobs, j, &ev);
    s->notify = NULL;
    sub_push(s, &ev);
    s->notify = notify;
    pthread_mutex_unlock(&jobs->lock);
    *out = s;
    return TS_OK;
}

ts_status ts_job_sub_next(ts_job_sub *s, int timeout_ms, ts_job_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ts_jobs *jobs = s->jobs;
    if (!jobs || s->ended) {
        /* Detached by ts_jobs_destroy: deliver what is left, then end. */
        if (s->count > 0) {
            *ev = s->ring[s->head];
            memset(&s->ring[s->head], 0, sizeof s->ring[s->head]);
            s->head = (s->head + 1) % SUB_RING;
            s->count--;
            return TS_OK;
        }
        s->ended = 1;
        return TS_ERR_NOT_FOUND;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&jobs->lock);
    ts_status st = TS_ERR_BUSY;
    for (;;) {
        if (s->count > 0) {
            *ev = s->ring[s->head];
            memset(&s->ring[s->head], 0, sizeof s->ring[s->head]);
            s->head = (s->head + 1) % SUB_RING;
            s->count--;
            st = TS_OK;
            break;
        }
        if (s->final_queued || jobs->stopping) {
            s->ended = 1;
            st = TS_ERR_NOT_FOUND;
            break;
        }
        if (timeout_ms <= 0 ||
            pthread_cond_timedwait(&jobs->changed, &jobs->lock, &deadline) != 0) {
            if (s->count == 0)
                break;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    return st;
}

void ts_job_sub_close(ts_job_sub *s)
{
    if (!s)
        return;
    ts_jobs *jobs = s->jobs;
    if (jobs)
        pthread_mutex_lock(&jobs->lock);
    job *j = s->j;
    if (j && jobs) {
        ts_job_sub **pp = &j->subs;
        while (*pp && *pp != s)
            pp = &(*pp)->next;
        if (*pp)
            *pp = s->next;
        ts_job_sub **ap = &jobs->all_subs;
        while (*ap && *ap != s)
            ap = &(*ap)->all_next;
        if (*ap)
            *ap = s->all_next;
        job_unref(j);
    }
    while (s->count > 0) {
        ts_job_event_clear(&s->ring[s->head]);
        s->head = (s->head + 1) % SUB_RING;
        s->count--;
    }
    if (jobs)
        pthread_mutex_unlock(&jobs->lock);
    free(s);
}
