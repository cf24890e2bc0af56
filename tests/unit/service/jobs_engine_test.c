/* jobs_engine_test.c - the job queue with the real engine on the tiny SD 1.x
 * fixture: a job's images equal a direct ts_generate call with the same
 * parameters (the queue adds nothing and loses nothing), img2img and the
 * together shot run, upscaling reports both sizes, and deleting a running
 * job stops it between steps and leaves nothing stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_jobs.h"
#include "ts_store.h"
#include "ts_test.h"

#define WAIT_MS 120000

static char model_path[1024];
static ts_store *store;
static ts_jobs *jobs;
static ts_limits limits;
static int native_w, native_h;

static int start(void)
{
    ts_error err;
    ts_store_options so = {.memory_only = 1};
    if (ts_store_open(&so, &store, &err) != TS_OK)
        return -1;
    ts_limits_default(&limits);
    ts_jobs_options o = {
        .store = store,
        .limits = &limits,
        .workers = 1,
        .queue_size = 8,
        .model_path = model_path,
        .threads_per_worker = 1,
    };
    if (ts_jobs_create(&o, &jobs, &err) != TS_OK) {
        fprintf(stderr, "ts_jobs_create: %s\n", err.message);
        return -1;
    }
    char family[32];
    ts_jobs_model(jobs, family, &native_w, &native_h);
    return 0;
}

static int stored(ts_item_kind kind)
{
    ts_store_stats s;
    ts_store_get_stats(store, &s);
    return s.items[kind];
}

static ts_job_status wait_final(const ts_job_ticket *t)
{
    ts_job_status st;
    ts_error err;
    memset(&st, 0, sizeof st);
    st.state = TS_JOB_STATE_COUNT;
    ts_jobs_wait(jobs, t->id, t->token, WAIT_MS, &st, &err);
    return st;
}

static void test_same_as_direct_generation(void)
{
    ts_error err;
    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = "a red heart";
    rq.n = 2;
    rq.steps = 3;
    rq.seed_random = 0;
    rq.seed = 42;
    ts_job_ticket t;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    ts_job_status st = wait_final(&t);
    TS_CHECK_INT_EQ(st.state, TS_JOB_DONE);
    TS_CHECK_INT_EQ(st.n_results, 2);
    TS_CHECK_INT_EQ(st.width, native_w);

    /* The reference: the engine called directly, seeds 42 and 43. */
    ts_model *model;
    TS_CHECK_INT_EQ(ts_model_load(model_path, NULL, &model, &err), TS_OK);
    for (int i = 0; i < 2; i++) {
        ts_gen_params p;
        ts_gen_params_default(&p);
        p.prompt = "a red heart";
        p.steps = 3;
        p.seed = 42 + (uint64_t)i;
        ts_image want = {0}, got = {0};
        TS_CHECK_INT_EQ(ts_generate(model, &p, NULL, NULL, &want, &err), TS_OK);
        TS_CHECK_INT_EQ(ts_jobs_result(jobs, t.id, t.token, i, &got, &err), TS_OK);
        TS_CHECK_INT_EQ(got.width, want.width);
        TS_CHECK_INT_EQ(got.height, want.height);
        TS_CHECK(got.pixels && want.pixels &&
                 memcmp(got.pixels, want.pixels, (size_t)want.width * want.height * 3) == 0);
        ts_image_free(&want);
        ts_image_free(&got);
    }
    ts_model_destroy(model);
    ts_jobs_delete(jobs, t.id, t.token, &err);
}

static ts_image photo(int w, int h, int seed)
{
    ts_image img = {0};
    ts_error err;
    ts_image_alloc(&img, w, h, &err);
    for (int i = 0; i < w * h * 3; i++)
        img.pixels[i] = (unsigned char)((i * 7 + seed * 31) & 0xff);
    return img;
}

static void test_img2img_together_and_upscale(void)
{
    ts_error err;
    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = "two friends at the seaside";
    rq.steps = 2;
    ts_image a = photo(40, 48, 1), b = photo(56, 40, 2);

    rq.inputs[0] = &a;
    rq.n_inputs = 1;
    ts_job_ticket t;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    ts_job_status st = wait_final(&t);
    TS_CHECK_INT_EQ(st.state, TS_JOB_DONE);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);

#ifdef TS_TEST_HAVE_TOGETHER
    rq.inputs[1] = &b;
    rq.n_inputs = 2;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    st = wait_final(&t);
    TS_CHECK_INT_EQ(st.state, TS_JOB_DONE);
    if (st.state != TS_JOB_DONE)
        fprintf(stderr, "together: %s\n", st.message);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
#endif

    /* Twice the native size: generated natively, delivered upscaled. */
    rq.n_inputs = 0;
    rq.width = native_w * 2 < 64 ? 64 : native_w * 2;
    rq.height = rq.width;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    st = wait_final(&t);
    TS_CHECK_INT_EQ(st.state, TS_JOB_DONE);
    TS_CHECK_INT_EQ(st.width, rq.width);
    TS_CHECK_INT_EQ(st.native_width, native_w);
    ts_image out = {0};
    TS_CHECK_INT_EQ(ts_jobs_result(jobs, t.id, t.token, 0, &out, &err), TS_OK);
    TS_CHECK_INT_EQ(out.width, rq.width);
    TS_CHECK_INT_EQ(out.height, rq.height);
    ts_image_free(&out);
    ts_image_free(&a);
    ts_image_free(&b);
}

static void test_delete_while_running(void)
{
    ts_error err;
    ts_job_request rq;
    ts_job_request_default(&rq);
    rq.prompt = "a long job";
    rq.steps = 50;
    ts_image a = photo(32, 32, 3);
    rq.inputs[0] = &a;
    rq.n_inputs = 1;
    ts_job_ticket t;
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    ts_job_sub *sub;
    TS_CHECK_INT_EQ(ts_jobs_subscribe(jobs, t.id, t.token, NULL, NULL, &sub, &err), TS_OK);
    ts_job_event ev;
    int progressed = 0;
    for (int i = 0; i < 1000 && !progressed; i++) {
        if (ts_job_sub_next(sub, 100, &ev) != TS_OK)
            continue;
        progressed = ev.type == TS_JOB_EVENT_PROGRESS;
        ts_job_event_clear(&ev);
    }
    TS_CHECK(progressed);
    TS_CHECK_INT_EQ(ts_jobs_delete(jobs, t.id, t.token, &err), TS_OK);
    TS_CHECK_INT_EQ(stored(TS_ITEM_UPLOAD), 0);
    /* The stream ends with "cancelled" (progress events may come first). */
    ts_job_event_type last = TS_JOB_EVENT_PROGRESS;
    while (ts_job_sub_next(sub, 1000, &ev) == TS_OK) {
        last = ev.type;
        ts_job_event_clear(&ev);
    }
    TS_CHECK_INT_EQ(last, TS_JOB_EVENT_CANCELLED);
    ts_job_sub_close(sub);

    /* The worker stopped between steps and moved on: a next job runs. */
    rq.n_inputs = 0;
    rq.steps = 1;
    int results_before = stored(TS_ITEM_RESULT);
    TS_CHECK_INT_EQ(ts_jobs_submit(jobs, &rq, &t, &err), TS_OK);
    TS_CHECK_INT_EQ(wait_final(&t).state, TS_JOB_DONE);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), results_before + 1);
    ts_jobs_delete(jobs, t.id, t.token, &err);
    TS_CHECK_INT_EQ(stored(TS_ITEM_RESULT), results_before);
    ts_image_free(&a);
}

int main(void)
{
    const char *fixtures = getenv("TS_FIXTURES");
    snprintf(model_path, sizeof model_path, "%s/engine/tiny-sd1", fixtures ? fixtures : "");
    if (start() != 0) {
        TS_CHECK(0);
        return ts_test_finish();
    }
    TS_RUN(test_same_as_direct_generation);
    TS_RUN(test_img2img_together_and_upscale);
    TS_RUN(test_delete_while_running);
    ts_jobs_destroy(jobs);
    ts_store_close(store);
    return ts_test_finish();
}
