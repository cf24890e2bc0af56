/* ts_api_jobs.c - native job API, server-sent events, downloads, and the
 * request parsing every API route shares.
 *
 * Server-sent events without a thread per client: a stream's read callback
 * pulls events from its ts_jobs subscription; when there is none it parks the
 * connection (ts_http_stream_wait) and returns 0. The subscription's notify
 * callback (a worker thread) and a heartbeat thread (every few seconds, for
 * keep-alive comments and to notice clients that left) wake it again.
 */
#include "ts_api_jobs.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "ts_clock.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_multipart.h"
#include "ts_privacy.h"
#ifdef TS_SERVICE_HAVE_VISION
#include "ts_portrait.h"
#endif
#include "ts_ratelimit.h"
#include "ts_secure.h"

#define HEARTBEAT_MS   10000 /* default; ts_api.heartbeat_ms overrides */
#define NO_JOB_MESSAGE "no such job"

/* ============================================================ shared parts */

/* jansson's blocks are plain malloc blocks (other code may free() what
 * json_dumps returned), and its free function zeroes each block's usable
 * size first, so every parsed string (prompts from JSON and form fields) is
 * wiped when released (POLICY.md P1). malloc_usable_size is glibc's. */
static void json_wipe_free(void *ptr)
{
    if (!ptr)
        return;
    sodium_memzero(ptr, malloc_usable_size(ptr));
    free(ptr);
}

void ts_api_json_wipe_on_free(void)
{
    json_set_alloc_funcs(malloc, json_wipe_free);
}

void ts_api_respond_no_job(ts_http_request *req)
{
    /* Fixed text and no param: every cause (unknown id, wrong or missing
     * token, expired, deleted) gives the same bytes (POLICY.md P10). */
    ts_http_respond_error(req, TS_ERR_NOT_FOUND, NO_JOB_MESSAGE, NULL);
}

int ts_api_rate_check(ts_api *api, ts_http_request *req, int expensive)
{
    if (!api->ratelimit)
        return 1;
    ts_client_id who;
    ts_ratelimit_identify(api->ratelimit, ts_http_client_addr(req),
                          ts_http_header(req, "X-Forwarded-For"), &who);
    ts_ratelimit_decision d;
    ts_ratelimit_take(api->ratelimit, &who, expensive, 1.0, &d);
    sodium_memzero(&who, sizeof who);
    if (d.allowed)
        return 1;
    char ra[16];
    snprintf(ra, sizeof ra, "%d", d.retry_after_s > 0 ? d.retry_after_s : 1);
    ts_http_add_header(req, "Retry-After", ra);
    ts_metrics_refusal(api->metrics, TS_REFUSAL_RATE_LIMIT);
    char msg[160];
    snprintf(msg, sizeof msg, "too many requests from this client; try again in %s seconds", ra);
    ts_http_respond_error_code(req, 429, "rate_limit_error", "rate_limited", msg, NULL);
    return 0;
}

void ts_api_respond_submit_error(ts_http_request *req, ts_status st, const ts_job_ticket *t,
                                 const ts_error *err)
{
    if (st == TS_ERR_BUSY) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", t && t->retry_after_s > 0 ? t->retry_after_s : 5);
        ts_http_add_header(req, "Retry-After", ra);
        ts_http_respond_error_code(
            req, 503, "server_error", "queue_full",
            err->message[0] ? err->message : "the queue is full; try again later", NULL);
        return;
    }
    if (st == TS_ERR_LIMIT) {
        /* Non-size limits (n, steps, prompt length, size) are request errors;
         * the code is the one every limit answers with. */
        ts_http_respond_error_code(req, 400, "invalid_request_error", ts_status_name(TS_ERR_LIMIT),
                                   err->message, NULL);
        return;
    }
    ts_http_respond_error(req, st, err->message[0] ? err->message : "the job was not accepted",
                          NULL);
}

void ts_api_respond_parse_error(ts_http_request *req, ts_status st, const ts_error *err,
                                const char *param)
{
    /* Every limit answers with code "limit_exceeded". A limit on the
     * uploads (their bytes, pixels or number: image, mask) keeps its own
     * status, 413 Content Too Large; any other limit (n, steps, size, prompt
     * length, form fields) is a request error, 400. */
    if (st == TS_ERR_NOT_FOUND && param && strcmp(param, "model") == 0) {
        ts_http_respond_error_code(req, 400, "invalid_request_error", "model_not_found",
                                   err->message, param);
        return;
    }
    int upload = param && (strcmp(param, "image") == 0 || strcmp(param, "mask") == 0);
    if (st == TS_ERR_LIMIT && !upload)
        ts_http_respond_error_code(req, 400, "invalid_request_error", ts_status_name(TS_ERR_LIMIT),
                                   err->message, param);
    else
        ts_http_respond_error(req, st, err->message, param);
}

void ts_api_model_id(ts_api *api, char out[TS_API_MODEL_ID_MAX])
{
    char family[32] = "";
    int w = 0, h = 0;
    if (api->jobs)
        ts_jobs_model(api->jobs, family, &w, &h);
    snprintf(out, TS_API_MODEL_ID_MAX, "%s", family[0] ? family : "togethershot");
}

void ts_api_size_fields(json_t *o, int width, int height, int native_width, int native_height)
{
    char size[32], native[32];
    snprintf(size, sizeof size, "%dx%d", width, height);
    snprintf(native, sizeof native, "%dx%d", native_width, native_height);
    json_object_set_new(o, "size", json_string(size));
    json_object_set_new(o, "native_size", json_string(native));
    json_object_set_new(o, "upscaled",
                        json_boolean(native_width != width || native_height != height));
}

int ts_api_route_metric(const char *t)
{
    static const struct {
        const char *route;
        ts_route metric;
    } map[] = {
        {"GET /", TS_ROUTE_PAGE},
        {"GET /app.js", TS_ROUTE_PAGE},
        {"GET /style.css", TS_ROUTE_PAGE},
        {"GET /favicon.ico", TS_ROUTE_PAGE},
        {"GET /privacy", TS_ROUTE_PRIVACY},
        {"GET /healthz", TS_ROUTE_HEALTHZ},
        {"GET /metrics", TS_ROUTE_METRICS},
        {"GET /v1/models", TS_ROUTE_MODELS},
        {"POST /v1/images/generations", TS_ROUTE_GENERATIONS},
        {"POST /v1/images/edits", TS_ROUTE_EDITS},
        {"POST /v1/jobs", TS_ROUTE_JOB_CREATE},
        {"GET /v1/jobs/:id", TS_ROUTE_JOB_STATUS},
        {"GET /v1/jobs/:id/events", TS_ROUTE_JOB_EVENTS},
        {"GET /v1/jobs/:id/images/:file", TS_ROUTE_JOB_DOWNLOAD},
        {"DELETE /v1/jobs/:id", TS_ROUTE_JOB_DELETE},
        {"POST /v1/test/clock", TS_ROUTE_TEST},
    };
    if (!t)
        return TS_ROUTE_OTHER;
    if (strncmp(t, "HEAD ", 5) == 0) {
        /* HEAD shares its GET route's label. */
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (strncmp(map[i].route, "GET ", 4) == 0 && strcmp(map[i].route + 4, t + 5) == 0)
                return map[i].metric;
    }
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].route, t) == 0)
            return map[i].metric;
    return TS_ROUTE_OTHER;
}

/* Token from X-Job-Token, the token query parameter, or Authorization: Bearer. */
static const char *job_token(ts_http_request *req)
{
    const char *t = ts_http_header(req, "X-Job-Token");
    if (t && *t)
        return t;
    t = ts_http_query(req, "token");
    if (t && *t)
        return t;
    t = ts_http_header(req, "Authorization");
    if (t && strncasecmp(t, "Bearer ", 7) == 0 && t[7])
        return t + 7;
    return NULL;
}

/* Job ids and tokens are base64url; anything else cannot be one. */
static int plausible(const char *s, size_t max)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* The id and token of the request, or NULL (and the no-job answer sent). */
static int job_credentials(ts_http_request *req, const char **id, const char **token)
{
    *id = ts_http_param(req, "id");
    *token = job_token(req);
    if (!plausible(*id, TS_JOB_ID_SIZE) || !plausible(*token, TS_JOB_TOKEN_SIZE)) {
        ts_api_respond_no_job(req);
        return 0;
    }
    return 1;
}

/* The opening of every request about one job (status, delete, download,
 * events): the rate check of a non-submitting request, then the id and
 * token. 0: the answer (rate limit or no job) has been sent. */
static int job_request(ts_api *api, ts_http_request *req, const char **id, const char **token)
{
    if (!ts_api_rate_check(api, req, 0))
        return 0;
    return job_credentials(req, id, token);
}

/* ------------------------------------------------------------- parsing */

/* Numbers may come as JSON numbers or (multipart) as text. rule, when not
 * NULL, replaces "a whole number from LO to HI" in the message. */
/* A reason for a JSON parse failure, from jansson's message (which may quote
 * the body, so it is never passed on). Plain "problem" for a syntax error,
 * which the position points at. */
static const char *json_problem(const char *text)
{
    if (strstr(text, "unable to decode byte") || strstr(text, "invalid Unicode '") ||
        strstr(text, "Invalid UTF-8"))
        return "it is not valid UTF-8 text (or escapes half of a UTF-16 pair);";
    if (strstr(text, "\\u0000"))
        return "it holds a \\u0000 (NUL) escape, which no field takes;";
    if (strstr(text, "'[' or '{' expected"))
        return "it holds another JSON value, not an object {...};";
    if (strstr(text, "maximum parsing depth"))
        return "it nests arrays or objects too deeply;";
    return "problem";
}

static int field_int(json_t *obj, const char *key, long long lo, long long hi, const char *rule,
                     long long *out, const char **param, ts_error *err, ts_status *st)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        /* 2^63 is exact as a double and the first value past the range:
         * converting anything outside it to long long is undefined. */
        double d = json_real_value(v);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d))
            goto bad;
        x = (long long)d;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        x = strtoll(s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno == ERANGE)
            goto bad;
    } else {
        goto bad;
    }
    if (x < lo || x > hi)
        goto bad;
    *out = x;
    return 1;
bad:
    *param = key;
    if (rule)
        *st = ts_error_set(err, TS_ERR_ARG, "'%s' must be %s", key, rule);
    else
        *st = ts_error_set(err, TS_ERR_ARG, "'%s' must be a whole number from %lld to %lld", key,
                           lo, hi);
    return -1;
}

static int field_real(json_t *obj, const char *key, double lo, double hi, double *out,
                      const char **param, ts_error *err, ts_status *st)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    double x;
    if (json_is_number(v)) {
        x = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        x = strtod(s, &end);
        if (*s == '\0' || *end != '\0')
            goto bad;
    } else {
        goto bad;
    }
    if (!(x >= lo && x <= hi))
        goto bad;
    *out = x;
    return 1;
bad:
    *param = key;
    *st = ts_error_set(err, TS_ERR_ARG, "'%s' must be a number from %g to %g", key, lo, hi);
    return -1;
}

static int field_str(json_t *obj, const char *key, const char **out, const char **param,
                     ts_error *err, ts_status *st)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        *param = key;
        *st = ts_error_set(err, TS_ERR_ARG, "'%s' must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

/* One side of "WxH": digits only, 1 .. 2^20 (the limits check the real
 * maximum later). sscanf's %d is undefined on overflow, and glibc read
 * "4294967360x64" as 64x64, so the digits are counted here. */
static int parse_side(const char *s, const char **end, int *out)
{
    long v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (++digits > 7)
            return 0;
        v = v * 10 + (*s++ - '0');
    }
    if (digits == 0 || v <= 0 || v > (1 << 20))
        return 0;
    *end = s;
    *out = (int)v;
    return 1;
}

static int parse_size(const char *s, int *w, int *h)
{
    const char *p;
    return parse_side(s, &p, w) && *p == 'x' && parse_side(p + 1, &p, h) && *p == '\0';
}

static int is_image_field(const char *name)
{
    if (strcmp(name, "image") == 0 || strcmp(name, "image[]") == 0)
        return 1;
    /* image[0] .. image[9], as some form encoders write arrays. */
    return strncmp(name, "image[", 6) == 0 && name[6] >= '0' && name[6] <= '9' && name[7] == ']' &&
           name[8] == '\0';
}

static ts_status decode_upload(ts_api *api, const uint8_t *data, size_t len, int mask,
                               ts_image *out, ts_error *err)
{
    const ts_limits *lim = &api->cfg->limits;
    ts_status st = ts_limits_check_upload_bytes(lim, len, err);
    if (st != TS_OK)
        return st;
    ts_image_limits il = ts_image_limits_default();
    il.max_bytes = lim->max_upload_bytes;
    il.max_pixels = (uint64_t)lim->max_pixels;
    if (len == 0)
        return ts_error_set(err, TS_ERR_FORMAT, "the uploaded file is empty");
    ts_image_info info;
    st = mask ? ts_image_decode_mask(data, len, &il, out, &info, err)
              : ts_image_decode(data, len, &il, out, &info, err);
    return st;
}

void ts_api_input_free(ts_api_input *in)
{
    if (in->fields)
        json_decref((json_t *)in->fields);
    for (int i = 0; i < TS_JOB_MAX_INPUTS; i++)
        ts_image_free(&in->images[i]);
    ts_image_free(&in->mask);
    memset(in, 0, sizeof *in);
}

ts_status ts_api_parse_input(ts_api *api, ts_http_request *req, int allow_images, int need_images,
                             ts_api_input *in, const char **param, ts_error *err)
{
    size_t len;
    const uint8_t *body = ts_http_body(req, &len);
    return ts_api_parse_body(api, ts_http_header(req, "Content-Type"), body, len, allow_images,
                             need_images, in, param, err);
}

ts_status ts_api_parse_body(ts_api *api, const char *ctype, const uint8_t *body, size_t len,
                            int allow_images, int need_images, ts_api_input *in, const char **param,
                            ts_error *err)
{
    const ts_limits *lim = &api->cfg->limits;
    ts_status st = TS_OK;
    json_t *obj = NULL;

    memset(in, 0, sizeof *in);
    ts_job_request_default(&in->rq);
    *param = NULL;

    int form = ctype && strncasecmp(ctype, "multipart/form-data", 19) == 0;
    if (form) {
        char boundary[TS_MULTIPART_BOUNDARY_MAX + 1];
        ts_multipart_part parts[TS_MULTIPART_MAX_PARTS];
        int n = 0;
        st = ts_multipart_boundary(ctype, boundary, err);
        if (st == TS_OK)
            st = ts_multipart_parse(body, len, boundary, parts, TS_MULTIPART_MAX_PARTS, &n, err);
        if (st != TS_OK)
            return st;
        obj = json_object();
        if (!obj)
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
        int n_images = 0;
        for (int i = 0; i < n; i++) {
            ts_multipart_part *p = &parts[i];
            int image = is_image_field(p->name), mask = strcmp(p->name, "mask") == 0;
            if (image || mask) {
                if (!allow_images) {
                    *param = image ? "image" : "mask";
                    st = ts_error_set(err, TS_ERR_ARG,
                                      "this endpoint takes no images; use /v1/images/edits");
                    goto done;
                }
                if (image && n_images == lim->max_uploads) {
                    *param = "image";
                    st = ts_limits_check_upload_count(lim, n_images + 1, err);
                    if (st == TS_OK)
                        st = ts_error_set(err, TS_ERR_LIMIT, "too many images");
                    goto done;
                }
                if (mask && in->has_mask) {
                    *param = "mask";
                    st = ts_error_set(err, TS_ERR_ARG, "give at most one mask");
                    goto done;
                }
                ts_image *dst = image ? &in->images[n_images] : &in->mask;
                st = decode_upload(api, p->data, p->len, mask, dst, err);
                if (st != TS_OK) {
                    *param = image ? "image" : "mask";
                    ts_error_wrap(err, "%s %d", image ? "image" : "mask", image ? n_images + 1 : 1);
                    goto done;
                }
                if (image)
                    in->rq.inputs[n_images++] = dst;
                else
                    in->has_mask = 1;
                continue;
            }
            /* A text field: at most the JSON limit, valid UTF-8 (jansson checks). */
            if (p->len > TS_LIMITS_HARD_JSON_BYTES) {
                *param = p->name;
                st = ts_error_set(err, TS_ERR_LIMIT, "the form field '%s' is too long", p->name);
                goto done;
            }
            json_t *s = json_stringn(p->len ? (const char *)p->data : "", p->len);
            if (!s) {
                *param = p->name;
                st = ts_error_set(err, TS_ERR_FORMAT, "the form field '%s' is not valid UTF-8 text",
                                  p->name);
                goto done;
            }
            /* As in JSON, a field given twice is refused: which copy would
             * win is not something a client should have to guess. */
            if (json_object_get(obj, p->name)) {
                json_decref(s);
                *param = p->name;
                st = ts_error_set(err, TS_ERR_FORMAT,
                                  "the form gives the field '%s' twice; give each field once",
                                  p->name);
                goto done;
            }
            json_object_set_new(obj, p->name, s);
        }
        in->rq.n_inputs = n_images;
    } else {
        if (ctype && strncasecmp(ctype, "application/json", 16) != 0) {
            return ts_error_set(err, TS_ERR_UNSUPPORTED, "send the request as application/json%s",
                                allow_images ? " or multipart/form-data" : "");
        }
        if (len == 0)
            return ts_error_set(err, TS_ERR_ARG,
                                "the request body is empty; send a JSON object "
                                "with at least a prompt");
        json_error_t je;
        obj = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
        if (!obj && strstr(je.text, "too big")) {
            /* jansson holds integers in 64 bits; the only field that takes
             * numbers that large is the seed. */
            st = ts_error_set(err, TS_ERR_FORMAT,
                              "the body holds a whole number outside the 64-bit range (near "
                              "byte %d); 'seed' must be " TS_LIMITS_SEED_RULE,
                              je.position);
            goto done;
        }
        if (!obj && strstr(je.text, "duplicate object key")) {
            st = ts_error_set(err, TS_ERR_FORMAT,
                              "the JSON object gives the same field twice (near byte %d); give "
                              "each field once",
                              je.position);
            goto done;
        }
        if (!obj || !json_is_object(obj)) {
            /* je.text may quote the body: give only the position and, for
             * the causes a client cannot see in its own source, a reason in
             * our words. */
            st = ts_error_set(
                err, TS_ERR_FORMAT, "the body is not a valid JSON object (%s near byte %d)",
                obj ? "it holds another JSON value, not an object {...};" : json_problem(je.text),
                obj ? 0 : je.position);
            goto done;
        }
    }

    /* JSON has numbers: a number sent as a string ("n": "2") is a mistake
     * the client should hear about (a form, which has only text, is fine). */
    if (!form) {
        static const char *const numeric[] = {
            "n", "steps", "seed", "guidance", "guidance_scale", "strength", "width", "height"};
        for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++)
            if (json_is_string(json_object_get(obj, numeric[i]))) {
                *param = numeric[i];
                st = ts_error_set(err, TS_ERR_ARG,
                                  "'%s' must be a JSON number, not a string: write it without "
                                  "quotes",
                                  numeric[i]);
                goto done;
            }
    }

    /* OpenAI clients may name a model: it must be the one GET /v1/models
     * lists (checked only with a job queue to ask; the fuzzer has none). */
    const char *model = NULL;
    int r;
    if ((r = field_str(obj, "model", &model, param, err, &st)) < 0)
        goto done;
    if (r > 0 && api->jobs) {
        char id[TS_API_MODEL_ID_MAX];
        ts_api_model_id(api, id);
        if (strcmp(model, id) != 0) {
            *param = "model";
            st = ts_error_set(err, TS_ERR_NOT_FOUND,
                              "this server has no model '%.64s'; it serves '%s' (GET /v1/models "
                              "lists it), or leave 'model' out",
                              model, id);
            goto done;
        }
    }

    if (need_images && in->rq.n_inputs == 0) {
        *param = "image";
        st = ts_error_set(err, TS_ERR_ARG, "give at least one image in the 'image' field");
        goto done;
    }
    if (in->has_mask && in->rq.n_inputs != 1) {
        *param = "mask";
        st = ts_error_set(err, TS_ERR_ARG, "a mask needs exactly one image");
        goto done;
    }
    if (in->has_mask &&
        (in->mask.width != in->images[0].width || in->mask.height != in->images[0].height)) {
        /* The queue checks this too; here it can name the field and sizes. */
        *param = "mask";
        st = ts_error_set(err, TS_ERR_ARG,
                          "the mask is %dx%d but the image is %dx%d; give a mask the size of the "
                          "image",
                          in->mask.width, in->mask.height, in->images[0].width,
                          in->images[0].height);
        goto done;
    }
    if (in->has_mask)
        in->rq.mask = &in->mask;

    /* prompt and negative prompt */
    const char *s = NULL;
    if ((r = field_str(obj, "prompt", &s, param, err, &st)) < 0)
        goto done;
    if (r == 0) {
        *param = "prompt";
        st = ts_error_set(err, TS_ERR_ARG, "'prompt' is required: describe the image to make");
        goto done;
    }
    /* The CLI checks prompts with the same function and words. */
    if ((st = ts_limits_check_prompt_text(lim, "prompt", s, 1, err)) != TS_OK) {
        *param = "prompt";
        goto done;
    }
    in->rq.prompt = s;
    s = NULL;
    if ((r = field_str(obj, "negative_prompt", &s, param, err, &st)) < 0)
        goto done;
    if (r > 0) {
        if ((st = ts_limits_check_prompt_text(lim, "negative prompt", s, 0, err)) != TS_OK) {
            *param = "negative_prompt";
            goto done;
        }
        in->rq.negative_prompt = s;
    }

    /* numbers */
    long long v;
    /* Any count parses; the limit (at most TS_JOB_MAX_N) then says "n is 99;
     * the limit is 4" with the code every limit has. What does not parse (0,
     * -1, 2.5, 1e300) hears the range this server takes, not the parser's. */
    char n_rule[64], steps_rule[96];
    snprintf(n_rule, sizeof n_rule, "a whole number from 1 to %d", lim->max_n);
    snprintf(steps_rule, sizeof steps_rule,
             "a whole number from 1 to %d, or 0 for the model's default", lim->max_steps);
    if ((r = field_int(obj, "n", 1, INT32_MAX, n_rule, &v, param, err, &st)) < 0)
        goto done;
    if (r > 0) {
        if ((st = ts_limits_check_n(lim, (int)v, err)) != TS_OK) {
            *param = "n";
            goto done;
        }
        in->rq.n = (int)v;
        in->n_set = 1;
    }
    if ((r = field_int(obj, "steps", 0, 10000, steps_rule, &v, param, err, &st)) < 0)
        goto done;
    if (r > 0) {
        if ((st = ts_limits_check_steps(lim, (int)v, err)) != TS_OK) {
            *param = "steps";
            goto done;
        }
        in->rq.steps = (int)v;
    }
    if ((r = field_int(obj, "seed", TS_LIMITS_SEED_RANDOM, TS_LIMITS_SEED_MAX, TS_LIMITS_SEED_RULE,
                       &v, param, err, &st)) < 0)
        goto done;
    if (r > 0 && v != TS_LIMITS_SEED_RANDOM) {
        in->rq.seed = (uint64_t)v;
        in->rq.seed_random = 0;
    }
    double d;
    /* Two names for one value: given both, neither may silently win. */
    if (json_object_get(obj, "guidance_scale") && json_object_get(obj, "guidance")) {
        *param = "guidance";
        st =
            ts_error_set(err, TS_ERR_ARG,
                         "give 'guidance' or 'guidance_scale' (two names for one value), not both");
        goto done;
    }
    const char *gkey = json_object_get(obj, "guidance_scale") ? "guidance_scale" : "guidance";
    if ((r = field_real(obj, gkey, 0.0, TS_LIMITS_GUIDANCE_MAX, &d, param, err, &st)) < 0)
        goto done;
    if (r > 0)
        in->rq.guidance = (float)d;
    if ((r = field_real(obj, "strength", 0.0, 1.0, &d, param, err, &st)) < 0)
        goto done;
    if (r > 0)
        in->rq.strength = (float)d;

    /* size: "WxH" or "auto"; width/height fields also work */
    int w = 0, h = 0;
    s = NULL;
    if ((r = field_str(obj, "size", &s, param, err, &st)) < 0)
        goto done;
    if (r > 0 && strcmp(s, "auto") != 0) {
        if (!parse_size(s, &w, &h)) {
            *param = "size";
            st = ts_error_set(err, TS_ERR_ARG,
                              "'size' must look like 512x512 (width x height) or be 'auto'");
            goto done;
        }
    }
    if (s && (json_object_get(obj, "width") || json_object_get(obj, "height"))) {
        *param = "size";
        st = ts_error_set(err, TS_ERR_ARG,
                          "give 'size' or 'width' and 'height', not both: they say the same thing");
        goto done;
    }
    if ((r = field_int(obj, "width", 0, 1 << 20, NULL, &v, param, err, &st)) < 0)
        goto done;
    if (r > 0)
        w = (int)v;
    if ((r = field_int(obj, "height", 0, 1 << 20, NULL, &v, param, err, &st)) < 0)
        goto done;
    if (r > 0)
        h = (int)v;
    if ((w == 0) != (h == 0)) {
        *param = "size";
        st = ts_error_set(err, TS_ERR_ARG, "give both width and height, or neither");
        goto done;
    }
    if ((st = ts_limits_check_size(lim, w, h, err)) != TS_OK) {
        *param = "size";
        goto done;
    }
    in->rq.width = w;
    in->rq.height = h;

    /* sampler */
    s = NULL;
    if ((r = field_str(obj, "sampler", &s, param, err, &st)) < 0)
        goto done;
    if (r > 0 && !ts_sampler_parse(s, &in->rq.sampler)) { /* 1 = known name */
        *param = "sampler";
        st = ts_error_set(err, TS_ERR_ARG,
                          "'sampler' must be one of euler, euler_a, dpmpp_2m, dpmpp_2m_karras, "
                          "ddim, lcm");
        goto done;
    }

    /* formats */
    s = NULL;
    if ((r = field_str(obj, "response_format", &s, param, err, &st)) < 0)
        goto done;
    if (r > 0) {
        if (strcmp(s, "url") != 0 && strcmp(s, "b64_json") != 0) {
            *param = "response_format";
            st = ts_error_set(err, TS_ERR_ARG, "'response_format' must be 'url' or 'b64_json'");
            goto done;
        }
        snprintf(in->rq.response_format, sizeof in->rq.response_format, "%s", s);
    }
    s = NULL;
    if ((r = field_str(obj, "output_format", &s, param, err, &st)) < 0)
        goto done;
    if (r > 0) {
        ts_image_format f = ts_image_format_from_name(s);
        if (f != TS_IMAGE_PNG && f != TS_IMAGE_JPEG && f != TS_IMAGE_WEBP) {
            *param = "output_format";
            st = ts_error_set(err, TS_ERR_ARG, "'output_format' must be png, jpeg or webp");
            goto done;
        }
        snprintf(in->rq.output_format, sizeof in->rq.output_format, "%s", ts_image_format_name(f));
    }

done:
    /* The prompts point into obj, which lives until ts_api_input_free; its
     * memory is wiped when released (ts_api_json_wipe_on_free). */
    in->fields = obj;
    if (st != TS_OK)
        ts_api_input_free(in);
    return st;
}

ts_status ts_api_encode_result(ts_api *api, const char *id, const char *token, int index,
                               ts_image_format format, uint8_t **out, size_t *len, ts_error *err)
{
    ts_image img = {0};
    ts_status st = ts_jobs_result(api->jobs, id, token, index, &img, err);
    if (st != TS_OK)
        return st;
    st = ts_image_encode(&img, format, 0, NULL, out, len, err);
    ts_image_free(&img);
    return st;
}

/* ============================================================ job routes */

static json_t *status_json(ts_http_request *req, const char *id, const ts_job_status *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("job"));
    json_object_set_new(o, "status", json_string(ts_job_state_name(st->state)));
    json_object_set_new(o, "position", json_integer(st->position));
    json_object_set_new(o, "n", json_integer(st->n));
    json_object_set_new(o, "width", json_integer(st->width));
    json_object_set_new(o, "height", json_integer(st->height));
    json_object_set_new(o, "native_width", json_integer(st->native_width));
    json_object_set_new(o, "native_height", json_integer(st->native_height));
    ts_api_size_fields(o, st->width, st->height, st->native_width, st->native_height);
    json_object_set_new(o, "seed", json_integer((json_int_t)(st->seed & INT64_MAX)));
    json_object_set_new(o, "created_at", json_integer(st->created_ms / 1000));
    json_object_set_new(o, "expires_at", json_integer(st->expires_ms / 1000));
    json_object_set_new(o, "expires_in",
                        json_integer((st->expires_ms - ts_clock_now_ms() + 999) / 1000));
    json_object_set_new(o, "output_format", json_string(st->output_format));
    if (st->state == TS_JOB_RUNNING) {
        json_object_set_new(o, "progress",
                            json_pack("{s:i, s:i, s:i, s:i}", "image", st->image_index, "n", st->n,
                                      "step", st->step, "total", st->total_steps));
    }
    json_t *imgs = json_array();
    const char *ext = strcmp(st->output_format, "jpeg") == 0   ? "jpg"
                      : strcmp(st->output_format, "webp") == 0 ? "webp"
                                                               : "png";
    for (int i = 0; i < st->n_results; i++) {
        char url[128], png[128], jpg[128], webp[128];
        snprintf(url, sizeof url, "/v1/jobs/%s/images/%d.%s", id, i, ext);
        snprintf(png, sizeof png, "/v1/jobs/%s/images/%d.png", id, i);
        snprintf(jpg, sizeof jpg, "/v1/jobs/%s/images/%d.jpg", id, i);
        snprintf(webp, sizeof webp, "/v1/jobs/%s/images/%d.webp", id, i);
        json_array_append_new(imgs,
                              json_pack("{s:i, s:s, s:{s:s, s:s, s:s}}", "index", i, "url", url,
                                        "formats", "png", png, "jpeg", jpg, "webp", webp));
    }
    json_object_set_new(o, "images", imgs);
    if (st->message[0])
        json_object_set_new(o, "message", json_string(st->message));
    if (st->expired)
        json_object_set_new(o, "code", json_string("expired"));
    else if (st->state == TS_JOB_FAILED && st->fail_status != TS_OK)
        json_object_set_new(o, "code", json_string(ts_status_name(st->fail_status)));
    (void)req;
    return o;
}

static void on_job_create(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!ts_api_rate_check(api, req, 1))
        return;
    ts_api_input in;
    const char *param;
    ts_error err;
    ts_error_clear(&err);
    ts_status st = ts_api_parse_input(api, req, 1, 0, &in, &param, &err);
    if (st != TS_OK) {
        ts_api_respond_parse_error(req, st, &err, param);
        return;
    }
    ts_job_ticket t;
    memset(&t, 0, sizeof t);
    st = ts_jobs_submit(api->jobs, &in.rq, &t, &err);
    ts_api_input_free(&in);
    if (st != TS_OK) {
        ts_api_respond_submit_error(req, st, &t, &err);
        return;
    }
    char status_url[96], events_url[112];
    snprintf(status_url, sizeof status_url, "/v1/jobs/%s", t.id);
    snprintf(events_url, sizeof events_url, "/v1/jobs/%s/events", t.id);
    ts_job_status js;
    int64_t expires = 0;
    if (ts_jobs_status(api->jobs, t.id, t.token, &js, NULL) == TS_OK)
        expires = js.expires_ms / 1000;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I}", "id", t.id, "token",
                          t.token, "status", "queued", "status_url", status_url, "events_url",
                          events_url, "position", t.position, "width", t.width, "height", t.height,
                          "expires_at", (json_int_t)expires);
    if (o)
        ts_api_size_fields(o, t.width, t.height, t.native_width, t.native_height);
    sodium_memzero(&t, sizeof t);
    ts_http_add_header(req, "Location", status_url);
    ts_http_respond_json(req, 202, o);
}

static void on_job_status(ts_http_request *req, void *user)
{
    ts_api *api = user;
    const char *id, *token;
    if (!job_request(api, req, &id, &token))
        return;
    ts_job_status st;
    if (ts_jobs_status(api->jobs, id, token, &st, NULL) != TS_OK) {
        ts_api_respond_no_job(req);
        return;
    }
    ts_http_respond_json(req, 200, status_json(req, id, &st));
}

static void on_job_delete(ts_http_request *req, void *user)
{
    ts_api *api = user;
    const char *id, *token;
    if (!job_request(api, req, &id, &token))
        return;
    if (ts_jobs_delete(api->jobs, id, token, NULL) != TS_OK) {
        ts_api_respond_no_job(req);
        return;
    }
    ts_http_respond_json(req, 200,
                         json_pack("{s:s, s:s, s:b}", "id", id, "object", "job", "deleted", 1));
}

/* "<index>.<png|jpg|jpeg|webp>" */
static int parse_file(const char *file, int *index, ts_image_format *fmt)
{
    if (!file)
        return 0;
    char *end;
    long i = strtol(file, &end, 10);
    if (end == file || *end != '.' || i < 0 || i >= TS_JOB_MAX_N || file[0] == '-' ||
        file[0] == '+')
        return 0;
    const char *ext = end + 1;
    if (strcmp(ext, "png") == 0)
        *fmt = TS_IMAGE_PNG;
    else if (strcmp(ext, "jpg") == 0 || strcmp(ext, "jpeg") == 0)
        *fmt = TS_IMAGE_JPEG;
    else if (strcmp(ext, "webp") == 0)
        *fmt = TS_IMAGE_WEBP;
    else
        return 0;
    *index = (int)i;
    return 1;
}

/* The answer for an image a job does not have. Only reached with the job's
 * own token, so it may say what the job does have (P10 holds: without the
 * token every cause answers "no such job"). */
static void respond_no_image(ts_http_request *req, const char *id, const ts_job_status *st)
{
    char msg[TS_ERROR_MESSAGE_MAX];
    if (st->n_results > 0)
        snprintf(msg, sizeof msg,
                 "no such image: this job has %d image%s, numbered 0 to %d; ask for "
                 "/v1/jobs/%s/images/N.png (or .jpg, .webp)",
                 st->n_results, st->n_results == 1 ? "" : "s", st->n_results - 1, id);
    else if (ts_job_state_is_final(st->state))
        snprintf(msg, sizeof msg, "no such image: this job ended %s and has no images",
                 ts_job_state_name(st->state));
    else
        snprintf(msg, sizeof msg,
                 "no such image yet: this job is %s; its images can be "
                 "downloaded once it is done",
                 ts_job_state_name(st->state));
    ts_http_respond_error_code(req, 404, "invalid_request_error", "image_not_found", msg, NULL);
}

static void on_job_download(ts_http_request *req, void *user)
{
    ts_api *api = user;
    const char *id, *token;
    if (!job_request(api, req, &id, &token))
        return;
    ts_job_status js;
    if (ts_jobs_status(api->jobs, id, token, &js, NULL) != TS_OK) {
        ts_api_respond_no_job(req);
        return;
    }
    int index;
    ts_image_format fmt;
    if (!parse_file(ts_http_param(req, "file"), &index, &fmt) || index >= js.n_results) {
        respond_no_image(req, id, &js);
        return;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    ts_error err;
    ts_error_clear(&err);
    ts_status st = ts_api_encode_result(api, id, token, index, fmt, &data, &len, &err);
    if (st == TS_ERR_NOT_FOUND) {
        ts_api_respond_no_job(req);
        return;
    }
    if (st != TS_OK) {
        ts_http_respond_error(req, TS_ERR_INTERNAL, "the image could not be encoded", NULL);
        return;
    }
    char disp[64], native[32];
    snprintf(disp, sizeof disp, "inline; filename=\"togethershot-%d.%s\"", index,
             fmt == TS_IMAGE_JPEG ? "jpg" : ts_image_format_name(fmt));
    ts_http_add_header(req, "Content-Disposition", disp);
    /* What the API answers say in "native_size" and "upscaled". */
    snprintf(native, sizeof native, "%dx%d", js.native_width, js.native_height);
    ts_http_add_header(req, "X-TogetherShot-Native-Size", native);
    ts_http_add_header(req, "X-TogetherShot-Upscaled",
                       js.native_width != js.width || js.native_height != js.height ? "true"
                                                                                    : "false");
    ts_http_respond(req, 200, ts_image_format_mime(fmt), data, len, TS_HTTP_NO_STORE);
    ts_image_buffer_free(data, len);
}

/* ============================================================ events */

typedef struct sse_stream {
    ts_api *api;
    ts_http_request *req;
    ts_job_sub *sub;
    char *buf; /* formatted bytes not yet handed to the connection */
    size_t len, off, cap;
    int finished;
    int started;
    int64_t last_send;
    ts_api_waker waker;
} sse_stream;

struct ts_api_sse {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    int running;
    int stop;
    int64_t heartbeat_ms;
    ts_api_waker *head;
};

static int sse_append(sse_stream *s, const char *text, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *nb = ts_secure_regrow(s->buf, s->len, s->cap, cap);
        if (!nb)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    return 1;
}

static char *preview_data_uri(const ts_image *img)
{
    if (!img || !img->pixels)
        return NULL;
    uint8_t *png = NULL;
    size_t png_len = 0;
    if (ts_image_encode(img, TS_IMAGE_PNG, 0, NULL, &png, &png_len, NULL) != TS_OK)
        return NULL;
    size_t b64_len = sodium_base64_ENCODED_LEN(png_len, sodium_base64_VARIANT_ORIGINAL);
    char *uri = malloc(22 + b64_len);
    if (uri) {
        memcpy(uri, "data:image/png;base64,", 22);
        sodium_bin2base64(uri + 22, b64_len, png, png_len, sodium_base64_VARIANT_ORIGINAL);
    }
    ts_image_buffer_free(png, png_len);
    return uri;
}

static int sse_format(sse_stream *s, const ts_job_event *ev)
{
    const char *name = ts_job_event_name(ev->type);
    json_t *o = json_pack("{s:s, s:I}", "type", name, "seq", (json_int_t)ev->seq);
    if (!o)
        return 0;
    switch (ev->type) {
    case TS_JOB_EVENT_QUEUED:
        json_object_set_new(o, "position", json_integer(ev->position));
        break;
    case TS_JOB_EVENT_PROGRESS: {
        json_object_set_new(o, "image", json_integer(ev->image_index));
        json_object_set_new(o, "n", json_integer(ev->n));
        json_object_set_new(o, "step", json_integer(ev->step));
        json_object_set_new(o, "total", json_integer(ev->total));
        char *uri = preview_data_uri(&ev->preview);
        if (uri) {
            json_object_set_new(o, "preview", json_string(uri));
            free(uri);
        }
        break;
    }
    case TS_JOB_EVENT_DONE:
        json_object_set_new(o, "n_results", json_integer(ev->n_results));
        ts_api_size_fields(o, ev->width, ev->height, ev->native_width, ev->native_height);
        break;
    case TS_JOB_EVENT_FAILED:
    case TS_JOB_EVENT_REFUSED:
    case TS_JOB_EVENT_CANCELLED:
        json_object_set_new(o, "message", json_string(ev->message));
        if (ev->type == TS_JOB_EVENT_REFUSED)
            json_object_set_new(o, "code", json_string("portrait_rights"));
        if (ev->type == TS_JOB_EVENT_FAILED && ev->expired)
            json_object_set_new(o, "code", json_string("expired"));
        else if (ev->type == TS_JOB_EVENT_FAILED && ev->fail_status != TS_OK)
            json_object_set_new(o, "code", json_string(ts_status_name(ev->fail_status)));
        break;
    default:
        break;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return 0;
    char head[96];
    int hn = snprintf(head, sizeof head, "id: %llu\nevent: %s\ndata: ", (unsigned long long)ev->seq,
                      name);
    int ok = sse_append(s, head, (size_t)hn) && sse_append(s, text, strlen(text)) &&
             sse_append(s, "\n\n", 2);
    ts_http_json_text_free(text);
    return ok;
}

static long sse_read(void *ctx, char *buf, size_t max)
{
    sse_stream *s = ctx;
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(buf, s->buf + s->off, n);
            s->off += n;
            if (s->off == s->len)
                s->off = s->len = 0;
            s->last_send = ts_clock_mono_ms();
            return (long)n;
        }
        if (s->finished)
            return -1;
        if (!s->started) {
            /* Reconnect delay for EventSource; also flushes headers at once. */
            s->started = 1;
            if (!sse_append(s, "retry: 3000\n\n", 13))
                return -1;
            continue;
        }
        ts_job_event ev;
        memset(&ev, 0, sizeof ev);
        ts_status st = ts_job_sub_next(s->sub, 0, &ev);
        if (st == TS_OK) {
            int ok = sse_format(s, &ev);
            if (ev.type >= TS_JOB_EVENT_DONE)
                s->finished = 1;
            ts_job_event_clear(&ev);
            if (!ok)
                return -1;
            continue;
        }
        if (st != TS_ERR_BUSY) {
            s->finished = 1;
            continue;
        }
        int64_t beat = s->api->heartbeat_ms > 0 ? s->api->heartbeat_ms : HEARTBEAT_MS;
        if (ts_clock_mono_ms() - s->last_send >= beat - beat / 20) {
            if (!sse_append(s, ": keep-alive\n\n", 14))
                return -1;
            continue;
        }
        int w = ts_http_stream_wait(s->req);
        if (w < 0)
            return -1;
        if (w == 1)
            return 0;
    }
}

static void sse_notify(void *user)
{
    sse_stream *s = user;
    ts_http_resume(s->req);
}

static void sse_free(void *ctx)
{
    sse_stream *s = ctx;
    ts_api_waker_remove(s->api, &s->waker);
    if (s->sub)
        ts_job_sub_close(s->sub);
    if (s->buf) {
        sodium_memzero(s->buf, s->cap);
        free(s->buf);
    }
    free(s);
}

void ts_api_waker_add(ts_api *api, ts_api_waker *w, ts_http_request *req)
{
    struct ts_api_sse *sse = api->sse;
    w->req = req;
    w->prev = NULL;
    pthread_mutex_lock(&sse->lock);
    w->next = sse->head;
    if (sse->head)
        sse->head->prev = w;
    sse->head = w;
    pthread_mutex_unlock(&sse->lock);
}

void ts_api_waker_remove(ts_api *api, ts_api_waker *w)
{
    struct ts_api_sse *sse = api->sse;
    pthread_mutex_lock(&sse->lock);
    if (w->prev)
        w->prev->next = w->next;
    else if (sse->head == w)
        sse->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    pthread_mutex_unlock(&sse->lock);
}

static void *sse_heartbeat(void *arg)
{
    struct ts_api_sse *sse = arg;
    pthread_mutex_lock(&sse->lock);
    while (!sse->stop) {
        int64_t beat = sse->heartbeat_ms;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += beat / 1000;
        ts.tv_nsec += (beat % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&sse->cond, &sse->lock, &ts);
        if (sse->stop)
            break;
        /* Each entry's owner removes it before its request can end. */
        for (ts_api_waker *w = sse->head; w; w = w->next)
            ts_http_resume(w->req);
    }
    pthread_mutex_unlock(&sse->lock);
    return NULL;
}

static void on_job_events(ts_http_request *req, void *user)
{
    ts_api *api = user;
    const char *id, *token;
    if (!job_request(api, req, &id, &token))
        return;
    sse_stream *s = calloc(1, sizeof *s);
    if (!s) {
        ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory", NULL);
        return;
    }
    s->api = api;
    s->req = req;
    s->last_send = ts_clock_mono_ms();
    if (ts_jobs_subscribe(api->jobs, id, token, sse_notify, s, &s->sub, NULL) != TS_OK) {
        free(s);
        ts_api_respond_no_job(req);
        return;
    }
    ts_api_waker_add(api, &s->waker, req);
    ts_http_respond_stream(req, "text/event-stream; charset=utf-8", sse_read, s, sse_free);
}

/* ============================================================ service routes */

static void on_healthz(ts_http_request *req, void *user)
{
    ts_api *api = user;
    ts_jobs_stats js;
    ts_jobs_get_stats(api->jobs, &js);
    ts_http_respond_json(req, 200,
                         json_pack("{s:s, s:i, s:i, s:i}", "status", "ok", "queued", js.queued,
                                   "running", js.running, "workers", js.workers));
}

static void on_metrics(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!api->metrics || (!api->cfg->metrics_public && !ts_http_client_is_loopback(req))) {
        ts_http_respond_error(req, TS_ERR_NOT_FOUND, "there is nothing at this address", NULL);
        return;
    }
    ts_jobs_stats js;
    ts_jobs_get_stats(api->jobs, &js);
    ts_metrics_set_queue_length(api->metrics, js.queued);
    ts_metrics_set_running(api->metrics, js.running);
    char *text = NULL;
    size_t len = 0;
    if (ts_metrics_render(api->metrics, &text, &len, NULL) != TS_OK) {
        ts_http_respond_error(req, TS_ERR_INTERNAL, "the metrics could not be rendered", NULL);
        return;
    }
    ts_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                    TS_HTTP_NO_STORE);
    free(text);
}

static void on_privacy(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!ts_api_rate_check(api, req, 0))
        return;
    ts_privacy_facts f;
    memset(&f, 0, sizeof f);
    f.tls_active = api->tls_active;
    f.behind_proxy = api->cfg->trusted_proxies[0] != '\0';
    f.portrait_active = api->portrait != NULL;
#ifdef TS_SERVICE_HAVE_VISION
    f.gallery_size = api->portrait ? ts_portrait_gallery_size(api->portrait) : 0;
#endif
    char *html = NULL;
    size_t len = 0;
    ts_error err;
    ts_error_clear(&err);
    if (ts_privacy_render_html(api->cfg, &f, &html, &len, &err) != TS_OK) {
        ts_http_respond_error(req, TS_ERR_INTERNAL, "the privacy page could not be rendered", NULL);
        return;
    }
    ts_http_respond(req, 200, "text/html; charset=utf-8", html, len, 0);
    free(html);
}

static void on_test_clock(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!api->cfg->test_mode || !ts_http_client_is_loopback(req)) {
        ts_http_respond_error(req, TS_ERR_NOT_FOUND, "there is nothing at this address", NULL);
        return;
    }
    size_t len;
    const uint8_t *body = ts_http_body(req, &len);
    json_t *o = json_loadb((const char *)body, len, 0, NULL);
    json_t *v = o ? json_object_get(o, "advance_ms") : NULL;
    if (!json_is_integer(v)) {
        json_decref(o);
        ts_http_respond_error(req, TS_ERR_ARG, "send {\"advance_ms\": N}", "advance_ms");
        return;
    }
    ts_clock_advance_ms(json_integer_value(v));
    json_decref(o);
    int swept = ts_jobs_sweep(api->jobs, ts_clock_now_ms());
    ts_http_respond_json(req, 200,
                         json_pack("{s:I, s:I, s:i}", "now_ms", (json_int_t)ts_clock_now_ms(),
                                   "offset_ms", (json_int_t)ts_clock_offset_ms(), "swept", swept));
}

ts_status ts_api_jobs_register(ts_api *api, ts_http_server *srv, ts_error *err)
{
    const ts_limits *lim = &api->cfg->limits;
    size_t upload_body = lim->max_body_bytes;

    api->sse = calloc(1, sizeof *api->sse);
    if (!api->sse)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    api->sse->heartbeat_ms = api->heartbeat_ms > 0 ? api->heartbeat_ms : HEARTBEAT_MS;
    pthread_mutex_init(&api->sse->lock, NULL);
    pthread_cond_init(&api->sse->cond, NULL);
    if (pthread_create(&api->sse->thread, NULL, sse_heartbeat, api->sse) != 0)
        return ts_error_set(err, TS_ERR_IO, "could not start the event heartbeat thread");
    api->sse->running = 1;

    int bad = 0;
    bad |= ts_http_route_add(srv, "POST", "/v1/jobs", on_job_create, api, upload_body) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/v1/jobs/:id", on_job_status, api, 0) != TS_OK;
    bad |= ts_http_route_add(srv, "DELETE", "/v1/jobs/:id", on_job_delete, api, 0) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/v1/jobs/:id/events", on_job_events, api, 0) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/v1/jobs/:id/images/:file", on_job_download, api, 0) !=
           TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/healthz", on_healthz, api, 0) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/metrics", on_metrics, api, 0) != TS_OK;
    bad |= ts_http_route_add(srv, "GET", "/privacy", on_privacy, api, 0) != TS_OK;
    if (api->cfg->test_mode)
        bad |= ts_http_route_add(srv, "POST", "/v1/test/clock", on_test_clock, api, 0) != TS_OK;
    if (bad)
        return ts_error_set(err, TS_ERR_INTERNAL, "too many routes");
    return TS_OK;
}

void ts_api_jobs_shutdown(ts_api *api)
{
    if (!api->sse)
        return;
    if (api->sse->running) {
        pthread_mutex_lock(&api->sse->lock);
        api->sse->stop = 1;
        pthread_cond_signal(&api->sse->cond);
        pthread_mutex_unlock(&api->sse->lock);
        pthread_join(api->sse->thread, NULL);
    }
    pthread_mutex_destroy(&api->sse->lock);
    pthread_cond_destroy(&api->sse->cond);
    free(api->sse);
    api->sse = NULL;
}
