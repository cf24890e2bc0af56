/* ts_api_openai.c - OpenAI-compatible image generation and edits.
 *
 * A request parks itself after submitting its job; the job subscription's
 * notify callback wakes it on every event, and the handler runs again: it
 * drains the events, reads the status, and either answers or parks again.
 */
#include "ts_api_openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "ts_clock.h"
#include "ts_log.h"
#include "ts_ratelimit.h"
#include "ts_secure.h"

typedef struct sync_job {
    ts_api *api;
    ts_http_request *req;
    ts_job_sub *sub;
    char id[TS_JOB_ID_SIZE];
    char token[TS_JOB_TOKEN_SIZE];
    int64_t deadline_mono;
    int64_t created_s;
    int b64;            /* response_format b64_json: the job dies with the answer */
    ts_api_waker waker; /* woken each heartbeat, so the deadline holds */
    int waking;
} sync_job;

static void sync_notify(void *user)
{
    sync_job *j = user;
    ts_http_resume(j->req);
}

static void sync_free(void *p)
{
    sync_job *j = p;
    if (j->waking)
        ts_api_waker_remove(j->api, &j->waker);
    if (j->sub)
        ts_job_sub_close(j->sub);
    /* With b64_json nobody else holds the token: the results are destroyed
     * now (also when the client left before the answer). */
    if (j->b64)
        ts_jobs_delete(j->api->jobs, j->id, j->token, NULL);
    sodium_memzero(j, sizeof *j);
    free(j);
}

static json_t *b64_of(ts_api *api, sync_job *j, int index, ts_image_format fmt, ts_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (ts_api_encode_result(api, j->id, j->token, index, fmt, &data, &len, err) != TS_OK)
        return NULL;
    size_t b64_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64_len);
    json_t *s = NULL;
    if (b64) {
        sodium_bin2base64(b64, b64_len, data, len, sodium_base64_VARIANT_ORIGINAL);
        s = json_string(b64);
        ts_secure_free(b64, b64_len);
    }
    ts_image_buffer_free(data, len);
    return s;
}

static void answer(ts_http_request *req, sync_job *j, const ts_job_status *st)
{
    ts_api *api = j->api;
    if (st->state == TS_JOB_REFUSED) {
        ts_http_respond_error(req, TS_ERR_REFUSED,
                              st->message[0] ? st->message
                                             : "the request was refused to protect portrait rights",
                              NULL);
        return;
    }
    if (st->state == TS_JOB_FAILED && st->expired) {
        /* Not a fault of the request nor of the server: the queue was
         * longer than the retention allows a job to wait. */
        ts_http_add_header(req, "Retry-After", "60");
        ts_http_respond_error_code(req, 503, "server_error", "expired", st->message, NULL);
        return;
    }
    if (st->state == TS_JOB_FAILED) {
        /* A request the engine found at fault (a prompt over the model's
         * token limit, which only the model's tokenizer can count) is the
         * client's to fix: a 4xx like every other rejection, not a 500. */
        ts_status why = st->fail_status;
        if (why == TS_ERR_ARG || why == TS_ERR_FORMAT || why == TS_ERR_LIMIT ||
            why == TS_ERR_UNSUPPORTED) {
            ts_error e;
            ts_error_set(&e, why, "%s", st->message[0] ? st->message : "the request was refused");
            ts_api_respond_parse_error(req, why, &e, NULL);
            return;
        }
        ts_http_respond_error(req, TS_ERR_INTERNAL,
                              st->message[0] ? st->message : "generating the image failed", NULL);
        return;
    }
    if (st->state == TS_JOB_CANCELLED) {
        ts_http_respond_error_code(req, 503, "server_error", "cancelled",
                                   "the job was cancelled before it finished; try again", NULL);
        return;
    }

    ts_image_format fmt = ts_image_format_from_name(st->output_format);
    if (fmt == TS_IMAGE_UNKNOWN)
        fmt = TS_IMAGE_PNG;
    json_t *data = json_array();
    char base[160];
    ts_http_base_url(req, base, sizeof base);
    /* Behind a TLS proxy the client reached us over https: a URL that says
     * http would send the token in the clear. Only a trusted proxy's word
     * on the scheme is taken. */
    const char *proto = ts_http_header(req, "X-Forwarded-Proto");
    if (proto && strcasecmp(proto, "https") == 0 && strncmp(base, "http://", 7) == 0 &&
        strlen(base) + 1 < sizeof base && api->ratelimit &&
        ts_ratelimit_peer_trusted(api->ratelimit, ts_http_client_addr(req))) {
        memmove(base + 5, base + 4, strlen(base + 4) + 1); /* "http://" -> "https://" */
        base[4] = 's';
    }
    for (int i = 0; i < st->n_results; i++) {
        json_t *item = json_object();
        if (j->b64) {
            ts_error err;
            ts_error_clear(&err);
            json_t *s = b64_of(api, j, i, fmt, &err);
            if (!s) {
                json_decref(item);
                json_decref(data);
                ts_http_respond_error(req, TS_ERR_INTERNAL, "the image could not be encoded", NULL);
                return;
            }
            json_object_set_new(item, "b64_json", s);
        } else {
            char url[400];
            snprintf(url, sizeof url, "%s/v1/jobs/%s/images/%d.%s?token=%s", base, j->id, i,
                     fmt == TS_IMAGE_JPEG ? "jpg" : ts_image_format_name(fmt), j->token);
            json_object_set_new(item, "url", json_string(url));
            sodium_memzero(url, sizeof url);
        }
        json_object_set_new(item, "revised_prompt", json_null());
        json_array_append_new(data, item);
    }
    /* OpenAI's shape ("created", "data", "output_format", "size": the
     * delivered size) plus two fields of ours: "native_size", the size the
     * model generated, and "upscaled". */
    json_t *o = json_pack("{s:I, s:o, s:s}", "created", (json_int_t)j->created_s, "data", data,
                          "output_format", ts_image_format_name(fmt));
    if (!o) {
        ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory", NULL);
        return;
    }
    ts_api_size_fields(o, st->width, st->height, st->native_width, st->native_height);
    if (!j->b64)
        json_object_set_new(o, "expires_at", json_integer(st->expires_ms / 1000));
    ts_http_respond_json(req, 200, o);
}

/* Runs on the first call and after every wake-up. */
static void run_sync(ts_http_request *req, sync_job *j)
{
    for (;;) {
        ts_job_event ev;
        memset(&ev, 0, sizeof ev);
        while (ts_job_sub_next(j->sub, 0, &ev) == TS_OK)
            ts_job_event_clear(&ev);

        ts_job_status st;
        if (ts_jobs_status(j->api->jobs, j->id, j->token, &st, NULL) != TS_OK) {
            ts_http_respond_error_code(req, 503, "server_error", "cancelled",
                                       "the job ended before its images were ready; try again",
                                       NULL);
            return;
        }
        if (ts_job_state_is_final(st.state)) {
            answer(req, j, &st);
            return;
        }
        if (ts_clock_mono_ms() > j->deadline_mono) {
            j->b64 = 1; /* nobody will collect it: destroy it with the request */
            ts_http_respond_error_code(req, 504, "server_error", "timeout",
                                       "the image took too long to make; try fewer steps or a "
                                       "smaller size, or use the asynchronous /v1/jobs API",
                                       NULL);
            return;
        }
        if (ts_http_suspend(req))
            return;
    }
}

static void on_images(ts_http_request *req, void *user, int edits)
{
    ts_api *api = user;
    sync_job *j = ts_http_state(req);
    if (j) {
        run_sync(req, j);
        return;
    }

    if (!ts_api_rate_check(api, req, 1))
        return;
    ts_api_input in;
    const char *param = NULL;
    ts_error err;
    ts_error_clear(&err);
    ts_status st = ts_api_parse_input(api, req, edits, edits, &in, &param, &err);
    if (st != TS_OK) {
        ts_api_respond_parse_error(req, st, &err, param);
        return;
    }

    ts_job_ticket t;
    memset(&t, 0, sizeof t);
    int b64 = strcmp(in.rq.response_format, "url") != 0;
    st = ts_jobs_submit(api->jobs, &in.rq, &t, &err);
    ts_api_input_free(&in);
    if (st != TS_OK) {
        ts_api_respond_submit_error(req, st, &t, &err);
        return;
    }

    j = calloc(1, sizeof *j);
    if (!j) {
        ts_jobs_delete(api->jobs, t.id, t.token, NULL);
        sodium_memzero(&t, sizeof t);
        ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory", NULL);
        return;
    }
    j->api = api;
    j->req = req;
    j->b64 = b64;
    j->created_s = ts_clock_now_ms() / 1000;
    j->deadline_mono =
        ts_clock_mono_ms() + (int64_t)(api->sync_timeout_s > 0 ? api->sync_timeout_s : 600) * 1000;
    memcpy(j->id, t.id, sizeof j->id);
    memcpy(j->token, t.token, sizeof j->token);
    sodium_memzero(&t, sizeof t);
    ts_http_set_state(req, j, sync_free);
    ts_api_waker_add(api, &j->waker, req);
    j->waking = 1;
    if (ts_jobs_subscribe(api->jobs, j->id, j->token, sync_notify, j, &j->sub, &err) != TS_OK) {
        ts_http_respond_error(req, TS_ERR_INTERNAL, "the job could not be followed", NULL);
        return;
    }
    run_sync(req, j);
}

static void on_generations(ts_http_request *req, void *user)
{
    on_images(req, user, 0);
}

static void on_edits(ts_http_request *req, void *user)
{
    on_images(req, user, 1);
}

static json_t *model_json(ts_api *api)
{
    char id[TS_API_MODEL_ID_MAX];
    ts_api_model_id(api, id);
    return json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model", "created", 0, "owned_by",
                     "togethershot");
}

static void on_models(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!ts_api_rate_check(api, req, 0))
        return;
    json_t *list = json_array();
    json_array_append_new(list, model_json(api));
    ts_http_respond_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", list));
}

static void on_model(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!ts_api_rate_check(api, req, 0))
        return;
    json_t *m = model_json(api);
    const char *want = ts_http_param(req, "id");
    if (!want || strcmp(want, json_string_value(json_object_get(m, "id"))) != 0) {
        json_decref(m);
        ts_http_respond_error_code(req, 404, "invalid_request_error", "model_not_found",
                                   "this server serves one model; GET /v1/models names it",
                                   "model");
        return;
    }
    ts_http_respond_json(req, 200, m);
}

ts_status ts_api_openai_register(ts_api *api, ts_http_server *srv, ts_error *err)
{
    size_t json_body = TS_LIMITS_HARD_JSON_BYTES;
    size_t upload_body = api->cfg->limits.max_body_bytes;
    int bad = 0;
    bad |= ts_http_route_add(srv, "POST", "/v1/images/generations", on_generations, api,
                             json_body) != TS_OK;
    bad |= ts_http_route_add(srv, "POST", "/v1/images/edits", on_edits, api, upload_body) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/v1/models", on_models, api, 0) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/v1/models/:id", on_model, api, 0) != TS_OK;
    if (bad)
        return ts_error_set(err, TS_ERR_INTERNAL, "too many routes");
    return TS_OK;
}
