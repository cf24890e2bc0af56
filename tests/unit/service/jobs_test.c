/* jobs_test.c - the job queue's mechanics with an injected runner: tokens
 * (P10), queue positions and Retry-After, uploads destroyed however a job
 * ends (P2), prompts wiped (P1), live events, sizes, expiry.
 *
 * The runner here stands in for the engine; it takes one step at a time when
 * the test opens its gate, so every ordering is decided by the test, never by
 * timing. Waits have generous timeouts only to fail instead of hanging. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_clock.h"
#include "ts_jobs.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_secure.h"
#include "ts_store.h"
#include "ts_test.h"

#define WAIT_MS 20000
#define STEPS   3

/* ------------------------------------------------------------ the runner */

typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    int allowed; /* steps the runner may still take; -1: any number */
    int fail;    /* 1: the runner fails after its first step; 2: it refuses the
                  * request after its first step, as the engine does a prompt
                  * over the model's token limit */
    int runs;
    int last_w, last_h, last_inputs;
    unsigned char fill; /* pixel value of generated images */
} gate;

static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0, 0, 0, 0, 200};

static void gate_set(int allowed)
{
    pthread_mutex_lock(&g.m);
    g.allowed = allowed;
    pthread_cond_broadcast(&g.c);
    pthread_mutex_unlock(&g.m);
}

static void gate_add(int steps)
{
    pthread_mutex_lock(&g.m);
    g.allowed += steps;
    pthread_cond_broadcast(&g.c);
    pthread_mutex_unlock(&g.m);
}

static ts_status test_runner(void *user, int worker, const ts_job_work *w, ts_progress_fn progress,
                             void *progress_user, ts_image *out, ts_error *err)
{
    pthread_mutex_lock(&g.m);
    g.runs++;
    g.last_w = w->width;
    g.last_h = w->height;
    g.last_inputs = w->n_inputs;
    pthread_mutex_unlock(&g.m);

    unsigned char preview_px[8 * 8 * 3];
    memset(preview_px, 77, sizeof preview_px);
    ts_image preview = {8, 8, preview_px};
    for (int s = 1; s <= STEPS; s++) {
        pthread_mutex_lock(&g.m);
        while (g.allowed == 0)
            pthread_cond_wait(&g.c, &g.m);
        if (g.allowed > 0)
            g.allowed--;
        int fail = g.fail;
        pthread_mutex_unlock(&g.m);
        if (progress(progress_user, s, STEPS, &preview))
            return ts_error_set(err, TS_ERR_CANCELLED, "cancelled");
        if (fail == 2)
            return ts_error_set(err, TS_ERR_LIMIT, "the prompt is longer than 600 tokens");
        if (fail)
            return ts_error_set(err, TS_ERR_INTERNAL, "the runner broke on purpose");
    }
    out->width = w->width;
    out->height = w->height;
    out->pixels = malloc((size_t)w->width * w->height * 3);
    memset(out->pixels, g.fill, (size_t)w->width * w->height * 3);
    return TS_OK;
}

/* Portrait checks: refuse prompts containing "Protected Person", uploads
 * whose first pixel is 13, and results whose first pixel is 99. */
static int prompt_checks;

static int check_prompt(void *user, const char *prompt)
{
    prompt_checks++;
    return strstr(prompt, "Protected Person") != NULL;
}

static int check_image(void *user, const ts_image *img)
{
    return img->pixels[0] == 13 || img->pixels[0] == 99;
}

/* -------------------------------------------------------------- fixture */

static ts_store *store;
static ts_jobs *jobs;
static ts_metrics *metrics;
static ts_limits limits;

static void start(int workers, int queue_size)
{
    ts_error err;
    ts_store_options so = {.memory_only = 1, .retention_ms = 3600000};
    if (ts_store_open(&so, &store, &err) != TS_OK)
        abort();
    ts_metrics_create(&metrics, &err);
    ts_limits_default(&limits);
    ts_jobs_options o = {
        .store = store,
        .limits = &limits,
        .workers = workers,
        .queue_size = queue_size,
        .runner = test_runner,
        .native_width = 64,
        .native_height = 64,
        .check_prompt = check_prompt,
        .check_image = check_image,
        .metrics = metrics,
    };
    if (ts_jobs_create(&o, &jobs, &err) != TS_OK) {
        fprintf(stderr, "%s\n", err.message);
        abort();
    }
}

static void stop(void)
{
    gate_set(-1);
    ts_jobs_destroy(jobs);
    ts_store_close(store);
    ts_metrics_destroy(metrics);
    g.fail = 0;
    g.fill = 200;
}

static int stored(ts_item_kind kind)
{
    ts_store_stats s;
    ts_store_get_stats(store, &s);
    return s.items[kind];
}

static ts_image make_image(int w, int h, unsigned char v)
{
    ts_image img = {w, h, malloc((size_t)w * h * 3)};
    memset(img.pixels, v, (size_t)w * h * 3);
    return img;
}

static ts_status submit(const char *prompt, const ts_image *input, ts_job_ticket *t, ts_error *err)
{
    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = prompt;
    if (input) {
        rq.inputs[0] = input;
        rq.n_inputs = 1;
    }
    return ts_jobs_submit(jobs, &rq, t, err);
}

static ts_job_state wait_final(const ts_job_ticket *t)
{
    ts_job_status st;
    ts_error err;
    if (ts_jobs_wait(jobs, t->id, t->token, WAIT_MS, &st, &err) != TS_OK)
        return TS_JOB_STATE_COUNT;
    return st.state;
}

/* Waits until the job is running (its RUNNING event arrived). */
static void wait_running(const ts_job_ticket *t)
{
    ts_job_sub *sub;
    ts_error err;
    if (ts_jobs_subscribe(jobs, t->id, t->token, NULL, NULL, &sub, &err) != TS_OK)
        return;
    ts_job_event ev;
    for (int i = 0; i < 100; i++) {
        if (ts_job_sub_next(sub, WAIT_MS / 100, &ev) == TS_OK) {
            int running = ev.type != TS_JOB_EVENT_QUEUED;
            ts_job_event_clear(&ev);
            if (running)
                break;
        }
    }
    ts_job_sub_close(sub);
}

/* ---------------------------------------------------------------- tests */

static void test_tokens(void)
{
    start(1, 4);
    ts_job_ticket t;
    ts_error err;
    TS_CHECK_INT_EQ(submit("a lighthouse at dusk", NULL, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(strlen(t.id), 22);
    TS_CHECK_INT_EQ(strlen(t.token), 43); /* 256 bits */
    for (const char *p = t.token; *p; p++)
        TS_CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);

    ts_job_status st;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.n_results, 1);

    /* Wrong token, token off by its last character, no token, unknown id:
     * all answer exactly alike. */
    char wrong[TS_JOB_TOKEN_SIZE];
    memcpy(wrong, t.token, sizeof wrong);
    wrong[42] = wrong[42] == 'A' ? 'B' : 'A';
    ts_error e1, e2, e3, e4;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, wrong, &st, &e1), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, NULL, &st, &e2), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, "AAAAAAAAAAAAAAAAAAAAAA", t.token, &st, &e3),
                    TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.token, t.id, &st, &e4), TS_ERR_NOT_FOUND);
    TS_CHECK_STR_EQ(e1.message, e3.message);
    TS_CHECK_STR_EQ(e2.message, e3.message);
    TS_CHECK_STR_EQ(e4.message, e3.message);
    ts_image img;
    TS_CHECK_INT_EQ(ts_jobs_result(jobs, t.id, wrong, 0, &img, &e1), TS_ERR_NOT_FOUND);
    TS_CHECK_STR_EQ(e1.message, e3.message);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t.id, wrong, &e1), TS_ERR_NOT_FOUND);
    TS_CHECK_STR_EQ(e1.message, e3.message);
    ts_job_sub *sub;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t.id, wrong, NULL, NULL, &sub, &e1), TS_ERR_NOT_FOUND);
    TS_CHECK_STR_EQ(e1.message, e3.message);

    /* The right token still works after all that, then delete is final. */
    TS_CHECK_INT_EQ(ts_jobs_result(jobs, t.id, t.token, 0, &img, &err), TS_OK);
    TS_CHECK_INT_EQ(img.width, 64);
    TS_CHECK_INT_EQ(img.pixels[0], 200);
    ts_image_free(&img);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t.id, t.token, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &e1), TS_ERR_NOT_FOUND);
    TS_CHECK_STR_EQ(e1.message, e3.message);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 0);

    /* Two jobs never share an id or token. */
    ts_job_ticket t2;
    TS_CHECK_INT_EQ(submit("a lighthouse at dusk", NULL, &t2, &err), TS_OK);
    TS_CHECK(strcmp(t.id, t2.id) != 0 && strcmp(t.token, t2.token) != 0);
    stop();
}

static void test_queue_positions_and_busy(void)
{
    start(1, 2);
    gate_set(0);
    ts_job_ticket t1, t2, t3, t4;
    ts_error err;
    TS_CHECK_INT_EQ(submit("one", NULL, &t1, &err), TS_OK);
    wait_running(&t1);
    TS_CHECK_INT_EQ(submit("two", NULL, &t2, &err), TS_OK);
    TS_CHECK_INT_EQ(t2.position, 1);
    TS_CHECK_INT_EQ(submit("three", NULL, &t3, &err), TS_OK);
    TS_CHECK_INT_EQ(t3.position, 2);

    /* Full: busy, with Retry-After from the queue (no job finished yet, so
     * the 20 s default per job): (2 queued + 1 running) * 20 s / 1 worker. */
    int checks_before = prompt_checks;
    TS_CHECK_INT_EQ(submit("four", NULL, &t4, &err), TS_ERR_BUSY);
    TS_CHECK_INT_EQ(prompt_checks, checks_before); /* no portrait work for a full queue */
    TS_CHECK_INT_EQ(t4.retry_after_s, 60);
    TS_CHECK(strstr(err.message, "queue is full") != NULL);
    TS_CHECK_INT_EQ(t4.id[0], '\0');
    TS_CHECK_INT_EQ(t4.token[0], '\0');

    ts_job_status st;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t1.id, t1.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.state, TS_JOB_RUNNING);
    TS_CHECK_INT_EQ(st.position, 0);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t3.id, t3.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.state, TS_JOB_QUEUED);
    TS_CHECK_INT_EQ(st.position, 2);

    /* Deleting the job ahead moves the next one up. */
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t2.id, t2.token, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t3.id, t3.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.position, 1);
    TS_CHECK_INT_EQ(submit("four", NULL, &t4, &err), TS_OK);
    TS_CHECK_INT_EQ(t4.position, 2);

    ts_jobs_stats js;
    ts_jobs_get_stats(jobs, &js);
    TS_CHECK_INT_EQ(js.queued, 2);
    TS_CHECK_INT_EQ(js.running, 1);

    gate_set(-1);
    TS_CHECK_INT_EQ(wait_final(&t1), TS_JOB_DONE);
    TS_CHECK_INT_EQ(wait_final(&t3), TS_JOB_DONE);
    TS_CHECK_INT_EQ(wait_final(&t4), TS_JOB_DONE);

    /* The metrics saw it all, as aggregates. */
    char *text;
    size_t len;
    TS_CHECK_INT_EQ(ts_metrics_render(metrics, &text, &len, &err), TS_OK);
    TS_CHECK(strstr(text, "togethershot_jobs_total{outcome=\"done\"} 3\n") != NULL);
    TS_CHECK(strstr(text, "togethershot_jobs_total{outcome=\"cancelled\"} 1\n") != NULL);
    TS_CHECK(strstr(text, "togethershot_refusals_total{reason=\"queue_full\"} 1\n") != NULL);
    TS_CHECK(strstr(text, "togethershot_queue_length 0\n") != NULL);
    TS_CHECK(strstr(text, "togethershot_generation_seconds_count 3\n") != NULL);
    free(text);
    stop();
}

static void test_uploads_destroyed_however_jobs_end(void)
{
    start(1, 8);
    ts_error err;
    ts_job_ticket t;
    ts_image photo = make_image(80, 64, 50);

    /* Success: the upload is gone, the result stays. */
    TS_CHECK_INT_EQ(submit("success", &photo, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    TS_CHECK_INT_EQ(g.last_inputs, 1);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 1);
    ts_jobs_delete(jobs, t.id, t.token, &err);

    /* Failure. */
    g.fail = 1;
    TS_CHECK_INT_EQ(submit("failure", &photo, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_FAILED);
    g.fail = 0;
    ts_job_status st;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    TS_CHECK_STR_EQ(st.message, "the runner broke on purpose");
    TS_CHECK_INT_EQ(st.fail_status, TS_ERR_INTERNAL);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 0);

    /* A failure that is the request's fault keeps its kind, so the API can
     * answer 400 rather than 500. */
    g.fail = 2;
    TS_CHECK_INT_EQ(submit("too many tokens", &photo, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_FAILED);
    g.fail = 0;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.fail_status, TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(st.message, "the prompt is longer than 600 tokens");
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);

    /* Refusal of an upload, before anything is stored or queued. */
    ts_image protected_face = make_image(64, 64, 13);
    TS_CHECK_INT_EQ(submit("refused upload", &protected_face, &t, &err), TS_ERR_REFUSED);
    TS_CHECK(strstr(err.message, "protected person") != NULL);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    TS_CHECK_INT_EQ(submit("Protected Person on a beach", NULL, &t, &err), TS_ERR_REFUSED);

    /* Refusal of a generated image: the job is refused, nothing survives. */
    g.fill = 99;
    TS_CHECK_INT_EQ(submit("refused result", &photo, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_REFUSED);
    g.fill = 200;
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 0);

    /* Cancellation while running. */
    gate_set(1);
    TS_CHECK_INT_EQ(submit("cancelled", &photo, &t, &err), TS_OK);
    wait_running(&t);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 1);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t.id, t.token, &err), TS_OK);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    gate_set(-1);
    /* The worker notices and throws its work away; a later job proves it
     * moved on. */
    ts_job_ticket t2;
    TS_CHECK_INT_EQ(submit("after", NULL, &t2, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t2), TS_JOB_DONE);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 1);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);

    /* Cancellation while queued. */
    gate_set(0);
    ts_job_ticket t3;
    TS_CHECK_INT_EQ(submit("blocker", NULL, &t3, &err), TS_OK);
    wait_running(&t3);
    TS_CHECK_INT_EQ(submit("queued", &photo, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 1);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t.id, t.token, &err), TS_OK);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    gate_set(-1);
    TS_CHECK_INT_EQ(wait_final(&t3), TS_JOB_DONE);

    /* Shutdown with work queued destroys everything too. */
    gate_set(0);
    TS_CHECK_INT_EQ(submit("running at shutdown", &photo, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(submit("queued at shutdown", &photo, &t2, &err), TS_OK);
    ts_image_free(&photo);
    ts_image_free(&protected_face);
    gate_set(-1); /* the test runner only stops at its gate; the engine checks each step */
    ts_jobs_destroy(jobs);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 0);
    jobs = NULL;
    ts_store_close(store);
    ts_metrics_destroy(metrics);
    gate_set(-1);
}

/* ------------------------------------------------- prompt wipe and logs */

static const char secret_prompt[] = "a portrait of my neighbour SECRET-PROMPT-51f2";
static int wiped_prompts, dirty_frees;

static void free_hook(void *user, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) {
            dirty_frees++;
            return;
        }
    if (n == sizeof secret_prompt)
        wiped_prompts++;
}

static char log_text[65536];
static size_t log_len;

static void log_sink(void *user, ts_log_level level, const char *line)
{
    size_t n = strlen(line);
    if (log_len + n + 2 < sizeof log_text) {
        memcpy(log_text + log_len, line, n);
        log_len += n;
        log_text[log_len++] = '\n';
        log_text[log_len] = '\0';
    }
}

static void test_prompt_wiped_and_never_logged(void)
{
    ts_log_set_sink(log_sink, NULL);
    ts_log_set_level(TS_LOG_DEBUG);
    ts_secure_set_free_hook(free_hook, NULL);
    start(1, 4);
    ts_error err;
    ts_job_ticket t;
    wiped_prompts = dirty_frees = 0;

    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = secret_prompt;
    rq.negative_prompt = secret_prompt; /* same length: both copies counted */
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    /* Both copies were released, zeroed, by the time the job was final. */
    TS_CHECK_INT_EQ(wiped_prompts, 2);
    TS_CHECK_INT_EQ(dirty_frees, 0);

    /* A refused and a failed job wipe theirs too. */
    g.fail = 1;
    rq.negative_prompt = NULL;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_FAILED);
    g.fail = 0;
    TS_CHECK_INT_EQ(wiped_prompts, 3);

    /* Deleted while queued. */
    gate_set(0);
    ts_job_ticket blocker;
    TS_CHECK_INT_EQ(submit("blocker", NULL, &blocker, &err), TS_OK);
    wait_running(&blocker);
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t.id, t.token, &err), TS_OK);
    TS_CHECK_INT_EQ(wiped_prompts, 4);
    gate_set(-1);
    TS_CHECK_INT_EQ(wait_final(&blocker), TS_JOB_DONE);
    stop();

    ts_secure_set_free_hook(NULL, NULL);
    ts_log_set_sink(NULL, NULL);
    ts_log_set_level(TS_LOG_INFO);
    TS_CHECK(strstr(log_text, "SECRET-PROMPT") == NULL);
    TS_CHECK(strstr(log_text, t.token) == NULL);
    TS_CHECK_INT_EQ(dirty_frees, 0);
}

/* --------------------------------------------------------------- events */

static ts_job_event next_event(ts_job_sub *sub)
{
    ts_job_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = (ts_job_event_type)-1;
    for (int i = 0; i < 100; i++)
        if (ts_job_sub_next(sub, WAIT_MS / 100, &ev) == TS_OK)
            break;
    return ev;
}

static int notified;
static void on_notify(void *user)
{
    notified++;
}

static void test_event_sequence(void)
{
    start(1, 4);
    gate_set(0);
    ts_error err;
    ts_job_ticket blocker, t;
    TS_CHECK_INT_EQ(submit("blocker", NULL, &blocker, &err), TS_OK);
    wait_running(&blocker);
    TS_CHECK_INT_EQ(submit("watched", NULL, &t, &err), TS_OK);

    ts_job_sub *a, *b;
    notified = 0;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t.id, t.token, on_notify, NULL, &a, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t.id, t.token, NULL, NULL, &b, &err), TS_OK);
    ts_job_event ev = next_event(a);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_QUEUED);
    TS_CHECK_INT_EQ(ev.position, 1);
    TS_CHECK_INT_EQ(ts_job_sub_next(a, 0, &ev), TS_ERR_BUSY); /* nothing new: keep-alive */

    /* Let the blocker finish; the watched job starts. Step one at a time. */
    gate_set(STEPS);
    TS_CHECK_INT_EQ(wait_final(&blocker), TS_JOB_DONE);
    ev = next_event(a);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_RUNNING);
    uint64_t last_seq = ev.seq;
    for (int s = 1; s <= STEPS; s++) {
        gate_add(1);
        ev = next_event(a);
        TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_PROGRESS);
        TS_CHECK_INT_EQ(ev.step, s);
        TS_CHECK_INT_EQ(ev.total, STEPS);
        TS_CHECK_INT_EQ(ev.preview.width, 8);
        TS_CHECK(ev.preview.pixels && ev.preview.pixels[0] == 77);
        TS_CHECK(ev.seq > last_seq);
        last_seq = ev.seq;
        ts_job_event_clear(&ev);
    }
    ev = next_event(a);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_DONE);
    TS_CHECK_INT_EQ(ev.n_results, 1);
    TS_CHECK_INT_EQ(ts_job_sub_next(a, 0, &ev), TS_ERR_NOT_FOUND); /* the stream is over */
    TS_CHECK(notified >= 2 + STEPS);

    /* The slow subscriber b read nothing meanwhile: its progress events were
     * coalesced, but it still sees queued -> running -> progress -> done. */
    ts_job_event_type seen[16];
    int n_seen = 0;
    for (;;) {
        ts_status st = ts_job_sub_next(b, 0, &ev);
        if (st != TS_OK)
            break;
        if (n_seen < 16)
            seen[n_seen++] = ev.type;
        ts_job_event_clear(&ev);
    }
    TS_CHECK(n_seen >= 3);
    TS_CHECK_INT_EQ(seen[0], TS_JOB_EVENT_QUEUED);
    TS_CHECK_INT_EQ(seen[n_seen - 1], TS_JOB_EVENT_DONE);
    ts_job_sub_close(a);
    ts_job_sub_close(b);

    /* A late joiner gets the current state at once. */
    ts_job_sub *late;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t.id, t.token, NULL, NULL, &late, &err), TS_OK);
    ev = next_event(late);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_DONE);
    TS_CHECK_INT_EQ(ts_job_sub_next(late, 0, &ev), TS_ERR_NOT_FOUND);

    /* A subscriber of a job deleted while running sees it cancelled. */
    gate_set(0);
    ts_job_ticket t2;
    TS_CHECK_INT_EQ(submit("doomed", NULL, &t2, &err), TS_OK);
    wait_running(&t2);
    ts_job_sub *c;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t2.id, t2.token, NULL, NULL, &c, &err), TS_OK);
    ev = next_event(c);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_RUNNING);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t2.id, t2.token, &err), TS_OK);
    ev = next_event(c);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_CANCELLED);
    TS_CHECK_INT_EQ(ts_job_sub_next(c, 0, &ev), TS_ERR_NOT_FOUND);
    gate_set(-1);
    /* Closing after the job is gone is fine; so is a subscription that
     * outlives the whole queue. */
    ts_job_sub_close(c);
    ts_job_sub *survivor;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t.id, t.token, NULL, NULL, &survivor, &err), TS_OK);
    ts_job_sub_close(late);
    stop();
    ev = next_event(survivor);
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_DONE);
    TS_CHECK_INT_EQ(ts_job_sub_next(survivor, 0, &ev), TS_ERR_NOT_FOUND);
    ts_job_sub_close(survivor);
}

/* ---------------------------------------------------------- sizes, expiry */

static void test_sizes(void)
{
    start(1, 4);
    ts_error err;
    ts_job_ticket t;
    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = "sizes";

    /* Rounded down to multiples of 8, within native: generated as is. */
    rq.width = 100;
    rq.height = 70;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(t.width, 96);
    TS_CHECK_INT_EQ(t.height, 64);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    TS_CHECK_INT_EQ(g.last_w, 64); /* wider than native 64: generated at 64, upscaled */

    /* Larger than native: generated natively (aspect kept), then upscaled. */
    rq.width = 128;
    rq.height = 256;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    TS_CHECK_INT_EQ(g.last_w, 64); /* 128x256 scaled by 1/4 = 32x64, at least 64 wide */
    TS_CHECK_INT_EQ(g.last_h, 64);
    ts_job_status st;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.width, 128);
    TS_CHECK_INT_EQ(st.height, 256);
    TS_CHECK_INT_EQ(st.native_width, 64);
    ts_image img;
    TS_CHECK_INT_EQ(ts_jobs_result(jobs, t.id, t.token, 0, &img, &err), TS_OK);
    TS_CHECK_INT_EQ(img.width, 128);
    TS_CHECK_INT_EQ(img.height, 256);
    ts_image_free(&img);

    /* Several images, seeds in sequence. */
    rq.width = rq.height = 0;
    rq.n = 3;
    rq.seed_random = 0;
    rq.seed = 1234;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.n_results, 3);
    TS_CHECK_INT_EQ(st.seed, 1234);
    TS_CHECK_INT_EQ(ts_jobs_result(jobs, t.id, t.token, 3, &img, &err), TS_ERR_NOT_FOUND);
    stop();
}

static void test_limits_named(void)
{
    start(1, 4);
    ts_error err;
    ts_job_ticket t;
    char big[5001];
    memset(big, 'x', 5000);
    big[5000] = '\0';
    TS_CHECK_INT_EQ(submit(big, NULL, &t, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "prompt is 5000 bytes; the limit is 4000");

    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = "ok";
    rq.n = 5;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "n is 5; the limit is 4");
    rq.n = 1;
    ts_image img = make_image(64, 64, 1);
    for (int i = 0; i < 4; i++)
        rq.inputs[i] = &img;
    rq.n_inputs = 5;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "request has 5 images; the limit is 4");
    rq.n_inputs = 2;
    rq.mask = &img;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_ERR_ARG);
    rq.mask = NULL;
    rq.n_inputs = 4; /* the together shot: four uploads reach the runner */
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    TS_CHECK_INT_EQ(g.last_inputs, 4);
    ts_image_free(&img);
    stop();
}

static void test_expiry(void)
{
    start(1, 4);
    ts_error err;
    ts_job_ticket t;
    TS_CHECK_INT_EQ(submit("expires", NULL, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t), TS_JOB_DONE);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 1);
    ts_job_status st;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    TS_CHECK(st.expires_ms - st.created_ms <= 3600000 + 60000);

    ts_clock_advance_ms(30 * 60000);
    TS_CHECK_INT_EQ(ts_jobs_sweep(jobs, ts_clock_now_ms()), 0);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_OK);
    ts_clock_advance_ms(31 * 60000);
    /* Past retention it is gone even before a sweep; the sweep frees it. */
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t.id, t.token, &st, &err), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_jobs_sweep(jobs, ts_clock_now_ms()), 1);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 0);
    ts_jobs_stats js;
    ts_jobs_get_stats(jobs, &js);
    TS_CHECK_INT_EQ(js.jobs, 0);
    ts_clock_advance_ms(-61 * 60000);
    stop();
}

/* A job still queued when its retention ends fails then, saying why, and
 * what it held is destroyed at that moment; a running job is not cut off. */
static void test_expiry_while_queued(void)
{
    start(1, 4);
    gate_set(0);
    ts_error err;
    ts_job_ticket t1, t2, t3;
    ts_image photo = make_image(64, 64, 50);
    pthread_mutex_lock(&g.m);
    int runs_before = g.runs;
    pthread_mutex_unlock(&g.m);
    TS_CHECK_INT_EQ(submit("runs long", NULL, &t1, &err), TS_OK);
    wait_running(&t1);
    TS_CHECK_INT_EQ(submit("waits with a photo", &photo, &t2, &err), TS_OK);
    TS_CHECK_INT_EQ(submit("waits too", NULL, &t3, &err), TS_OK);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 1);
    ts_job_sub *sub;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t3.id, t3.token, NULL, NULL, &sub, &err), TS_OK);
    ts_job_event ev;
    TS_CHECK_INT_EQ(ts_job_sub_next(sub, WAIT_MS, &ev), TS_OK); /* queued */
    ts_job_event_clear(&ev);

    ts_clock_advance_ms(61 * 60000); /* the retention is one hour */

    /* Asked about, the queued job has failed and says why; its photo is gone. */
    ts_job_status st;
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t2.id, t2.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.state, TS_JOB_FAILED);
    TS_CHECK_INT_EQ(st.expired, 1);
    TS_CHECK(strstr(st.message, "expired before it could run") != NULL);
    TS_CHECK(strstr(st.message, "retention of 1 hour") != NULL);
    TS_CHECK(st.expires_ms > ts_clock_now_ms());
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);

    /* The sweep does the same for a job nobody asked about, and tells its
     * subscribers; it removes neither record yet. */
    TS_CHECK_INT_EQ(ts_jobs_sweep(jobs, ts_clock_now_ms()), 0);
    TS_CHECK_INT_EQ(ts_job_sub_next(sub, WAIT_MS, &ev), TS_OK);
    if (ev.type == TS_JOB_EVENT_QUEUED) { /* moved up when the job ahead failed */
        ts_job_event_clear(&ev);
        TS_CHECK_INT_EQ(ts_job_sub_next(sub, WAIT_MS, &ev), TS_OK);
    }
    TS_CHECK_INT_EQ(ev.type, TS_JOB_EVENT_FAILED);
    TS_CHECK_INT_EQ(ev.expired, 1);
    TS_CHECK(strstr(ev.message, "expired before it could run") != NULL);
    ts_job_event_clear(&ev);
    ts_job_sub_close(sub);

    /* The running job goes on, finishes, and its result gets a retention. */
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t1.id, t1.token, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(st.state, TS_JOB_RUNNING);
    TS_CHECK(st.expires_ms >= ts_clock_now_ms() + 60 * 60000); /* not in the past */
    gate_set(-1);
    TS_CHECK_INT_EQ(wait_final(&t1), TS_JOB_DONE);
    TS_CHECK_INT_EQ(ts_jobs_status(jobs, t1.id, t1.token, &st, &err), TS_OK);
    TS_CHECK(st.expires_ms > ts_clock_now_ms() + 59 * 60000);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), 1);
    TS_CHECK_INT_EQ(wait_final(&t3), TS_JOB_FAILED);
    pthread_mutex_lock(&g.m);
    TS_CHECK_INT_EQ(g.runs, runs_before + 1); /* neither expired job ever ran */
    pthread_mutex_unlock(&g.m);

    /* A retention later everything is gone. */
    ts_clock_advance_ms(61 * 60000);
    TS_CHECK_INT_EQ(ts_jobs_sweep(jobs, ts_clock_now_ms()), 3);
    ts_jobs_stats js;
    ts_jobs_get_stats(jobs, &js);
    TS_CHECK_INT_EQ(js.jobs, 0);
    ts_clock_advance_ms(-122 * 60000);
    ts_image_free(&photo);
    stop();
}

int main(void)
{
    TS_RUN(test_tokens);
    TS_RUN(test_queue_positions_and_busy);
    TS_RUN(test_uploads_destroyed_however_jobs_end);
    TS_RUN(test_prompt_wiped_and_never_logged);
    TS_RUN(test_event_sequence);
    TS_RUN(test_sizes);
    TS_RUN(test_limits_named);
    TS_RUN(test_expiry);
    TS_RUN(test_expiry_while_queued);
    return ts_test_finish();
}
