/* cmd_serve.c - `togethershot serve`: the web service (page, OpenAI-compatible
 * and native job APIs).
 *
 * Start-up order: options, hardening (no core dumps), metrics, encrypted
 * store (which removes leftovers of an earlier process), portrait checker,
 * job workers (loading the model), rate limiter, HTTP server. The URL goes
 * to stdout once the server listens; everything else goes to stderr through
 * the logger. SIGINT/SIGTERM stop it gracefully: connections are closed,
 * running jobs cancelled between steps, and every stored item destroyed.
 * SIGHUP re-reads the portrait gallery, as does a change of its file.
 *
 * Exit codes: 0 after a clean stop, 1 when start-up failed (model, store,
 * address in use), 2 for bad options.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ts_api_jobs.h"
#include "ts_api_openai.h"
#include "ts_cli.h"
#include "ts_clock.h"
#include "ts_config.h"
#include "ts_http.h"
#include "ts_jobs.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_ratelimit.h"
#include "ts_secure.h"
#include "ts_store.h"
#include "ts_web.h"
#ifdef TS_HAVE_VISION
#include "ts_portrait.h"
#endif

extern char **environ;

/* ----------------------------------------------------- the synthetic runner */

/* Test mode only (loopback, --test-mode): when TOGETHERSHOT_TEST_RUNNER is
 * "synthetic", jobs are made by this stand-in instead of the engine: a
 * gradient from the seed, with real progress events and previews. It lets the
 * service be tested quickly and without model files; it is never available
 * outside test mode. */
static ts_status synthetic_runner(void *user, int worker, const ts_job_work *w,
                                  ts_progress_fn progress, void *progress_user, ts_image *out,
                                  ts_error *err)
{
    (void)user;
    (void)worker;
    int steps = w->steps > 0 ? w->steps : 8;
    ts_status st = ts_image_alloc(out, w->width, w->height, err);
    if (st != TS_OK)
        return st;
    uint32_t s = (uint32_t)(w->seed * 2654435761u) ^ (uint32_t)w->index;
    uint8_t base[3] = {(uint8_t)(s >> 24), (uint8_t)(s >> 16), (uint8_t)(s >> 8)};
    const ts_image *in = w->n_inputs > 0 ? w->inputs[0] : NULL;
    for (int k = 1; k <= steps; k++) {
        ts_image preview = {0};
        if (ts_image_alloc(&preview, 32, 32, NULL) == TS_OK) {
            for (int i = 0; i < 32 * 32 * 3; i++)
                preview.pixels[i] = (uint8_t)(base[i % 3] + k * 255 / steps);
        }
        int stop = progress(progress_user, k, steps, preview.pixels ? &preview : NULL);
        ts_image_free(&preview);
        if (stop) {
            ts_image_free(out);
            return ts_error_set(err, TS_ERR_CANCELLED, "cancelled");
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int y = 0; y < w->height; y++) {
        for (int x = 0; x < w->width; x++) {
            uint8_t *p = out->pixels + ((size_t)y * w->width + x) * 3;
            p[0] = (uint8_t)(base[0] + x * 255 / w->width);
            p[1] = (uint8_t)(base[1] + y * 255 / w->height);
            p[2] = base[2];
            if (in && x < in->width && y < in->height) {
                /* Blend in the first photo so edits visibly use their input. */
                const uint8_t *q = in->pixels + ((size_t)y * in->width + x) * 3;
                for (int c = 0; c < 3; c++)
                    p[c] = (uint8_t)((p[c] + q[c]) / 2);
            }
        }
    }
    return TS_OK;
}

/* Test mode only: TOGETHERSHOT_TEST_PORTRAIT="NAME" stands in for the face
 * check, so the refusal paths can be tested end to end without a gallery: a
 * prompt containing NAME, and any image of exactly 72 x 72 pixels (an upload
 * or a result), count as showing a protected person. */
static int test_refuse_prompt(void *user, const char *prompt)
{
    return strcasestr(prompt, (const char *)user) != NULL;
}

static int test_refuse_image(void *user, const ts_image *img)
{
    (void)user;
    return img->width == 72 && img->height == 72;
}

/* ----------------------------------------------------------------- signals */

static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(stop_pipe[1], &b, 1); /* async-signal-safe */
    (void)r;
    errno = saved;
}

/* Re-reads the portrait gallery when forced (SIGHUP) or when its file changed
 * since the last read, as `togethershot gallery` tells operators. A file that
 * cannot be read leaves the previous gallery in force; the attempt (and the
 * warning) repeats at each poll until the file is fixed. */
static void reload_gallery(void *portrait, int forced)
{
#ifdef TS_HAVE_VISION
    if (!portrait || (!forced && !ts_portrait_gallery_changed(portrait)))
        return;
    ts_error e;
    ts_error_clear(&e);
    if (ts_portrait_reload(portrait, &e) != TS_OK)
        ts_log_warn("serve",
                    "the portrait gallery could not be re-read; the previous one stays "
                    "in force: %s",
                    e.message);
#else
    (void)portrait;
    (void)forced;
#endif
}

/* ----------------------------------------------------------------- metrics */

static void observe(void *user, const char *route, int status, double ms)
{
    ts_metrics_request(user, (ts_route)ts_api_route_metric(route), status, ms / 1000.0);
}

/* ------------------------------------------------------------------- serve */

int ts_cli_serve(int argc, char **argv)
{
    ts_config cfg;
    ts_error err;
    ts_error_clear(&err);
    int help = 0;
    if (ts_config_from_args(&cfg, argc, argv, environ, &help, &err) != TS_OK) {
        fprintf(stderr, "togethershot serve: %s\n(see 'togethershot serve --help')\n", err.message);
        return TS_EXIT_USAGE;
    }
    if (help) {
        fputs("usage: togethershot serve [OPTIONS]\n\n"
              "Runs the web service: the page at /, the OpenAI-compatible Images API under\n"
              "/v1/images, the job API under /v1/jobs, /privacy, /healthz and /metrics.\n"
              "Prints the address it serves on to stdout; stops on SIGINT or SIGTERM,\n"
              "destroying every stored upload and result.\n\n",
              stdout);
        fputs(ts_config_help_text(), stdout);
        fputs("\nexit codes: 0 stopped cleanly, 1 could not start, 2 bad options\n", stdout);
        return TS_EXIT_OK;
    }
    ts_log_set_level((ts_log_level)cfg.log_level);

    /* SIGINT/SIGTERM only write a byte to a pipe that the main thread waits
     * on, whichever thread the kernel picks to run the handler (libraries
     * may start threads with their own signal masks). */
    if (pipe2(stop_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "togethershot serve: cannot create a pipe: %s\n", strerror(errno));
        return TS_EXIT_FAILURE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* re-read the gallery; never a stop */
    signal(SIGPIPE, SIG_IGN);

    if (ts_secure_disable_core_dumps(&err) != TS_OK)
        ts_log_warn("serve", "core dumps could not be switched off: %s", err.message);
    ts_api_json_wipe_on_free();

    int rc = TS_EXIT_FAILURE;
    ts_metrics *metrics = NULL;
    ts_store *store = NULL;
    ts_jobs *jobs = NULL;
    ts_ratelimit *rl = NULL;
    ts_http_server *srv = NULL;
    void *portrait = NULL;
    ts_api api;
    memset(&api, 0, sizeof api);

    if (ts_metrics_create(&metrics, &err) != TS_OK)
        goto fail;

    ts_store_options so;
    memset(&so, 0, sizeof so);
    so.data_dir = cfg.memory_only ? NULL : cfg.data_dir;
    so.memory_only = cfg.memory_only;
    so.retention_ms = cfg.retention_ms;
    so.max_items = cfg.max_items;
    so.max_bytes = cfg.max_store_bytes;
    so.start_sweeper = 1;
    if (ts_store_open(&so, &store, &err) != TS_OK)
        goto fail;

#ifdef TS_HAVE_VISION
    if (cfg.portrait_check) {
        ts_portrait_options po = {.models_dir = cfg.face_models_dir,
                                  .gallery_path = cfg.gallery_path,
                                  .threshold = cfg.portrait_threshold};
        ts_portrait *pc = NULL;
        if (ts_portrait_open(&po, &pc, &err) != TS_OK)
            goto fail;
        portrait = pc;
    }
#else
    if (cfg.portrait_check) {
        ts_error_set(&err, TS_ERR_UNSUPPORTED,
                     "portrait-rights checks were asked for, but this build has no face check");
        goto fail;
    }
#endif

    ts_jobs_options jo;
    memset(&jo, 0, sizeof jo);
    jo.store = store;
    jo.limits = &cfg.limits;
    jo.workers = cfg.workers;
    jo.queue_size = cfg.queue_size;
    jo.retention_ms = cfg.retention_ms;
    jo.model_path = cfg.model_path[0] ? cfg.model_path : ts_cli_default_model();
    jo.threads_per_worker = cfg.threads_per_worker;
    jo.portrait = portrait;
    jo.metrics = metrics;
    const char *runner = getenv("TOGETHERSHOT_TEST_RUNNER");
    if (runner && strcmp(runner, "synthetic") == 0) {
        if (!cfg.test_mode) {
            ts_error_set(&err, TS_ERR_ARG,
                         "TOGETHERSHOT_TEST_RUNNER works only together with test mode");
            fprintf(stderr, "togethershot serve: %s\n", err.message);
            rc = TS_EXIT_USAGE;
            goto cleanup;
        }
        jo.runner = synthetic_runner;
        jo.native_width = 64;
        jo.native_height = 64;
        ts_log_warn("serve", "test mode: images are made by the synthetic test runner");
    }
    const char *refuse = getenv("TOGETHERSHOT_TEST_PORTRAIT");
    if (refuse && *refuse) {
        if (!cfg.test_mode) {
            fprintf(stderr, "togethershot serve: TOGETHERSHOT_TEST_PORTRAIT works only together "
                            "with test mode\n");
            rc = TS_EXIT_USAGE;
            goto cleanup;
        }
        jo.check_prompt = test_refuse_prompt;
        jo.check_image = test_refuse_image;
        jo.check_user = (void *)refuse;
        ts_log_warn("serve", "test mode: a stand-in replaces the portrait-rights check");
    }
    if (ts_jobs_create(&jo, &jobs, &err) != TS_OK)
        goto fail;

    ts_ratelimit_options ro;
    ts_ratelimit_options_default(&ro);
    ro.expensive_per_minute = cfg.rate_expensive.per_minute;
    ro.expensive_burst = cfg.rate_expensive.burst;
    ro.cheap_per_minute = cfg.rate_cheap.per_minute;
    ro.cheap_burst = cfg.rate_cheap.burst;
    ro.max_conns_per_client = cfg.max_conns_per_client;
    ro.trusted_proxies = cfg.trusted_proxies;
    if (ts_ratelimit_create(&ro, &rl, &err) != TS_OK)
        goto fail;

    char listen[TS_CONFIG_HOST_MAX + 16];
    snprintf(listen, sizeof listen, strchr(cfg.listen_host, ':') ? "[%s]:%d" : "%s:%d",
             cfg.listen_host, cfg.listen_port);
    ts_http_options ho;
    ts_http_options_default(&ho);
    ho.listen = listen;
    ho.tls_cert_path = cfg.tls_cert[0] ? cfg.tls_cert : NULL;
    ho.tls_key_path = cfg.tls_key[0] ? cfg.tls_key : NULL;
    ho.max_connections = (unsigned)cfg.max_connections;
    /* Behind a trusted proxy every connection comes from the proxy's
     * address: a per-address cap would throttle everyone together. */
    ho.per_ip_connections = cfg.trusted_proxies[0] ? 0 : (unsigned)cfg.max_conns_per_client;
    /* Test mode may shorten the idle timeout, so a test can watch a slow
     * client being dropped. */
    const char *idle = getenv("TOGETHERSHOT_TEST_IDLE_TIMEOUT_S");
    if (cfg.test_mode && idle && atoi(idle) > 0)
        ho.idle_timeout_s = (unsigned)atoi(idle);
    /* Likewise the whole-body deadline, so a test can watch a client that
     * trickles its body being cut off. */
    const char *body_s = getenv("TOGETHERSHOT_TEST_REQUEST_TIMEOUT_S");
    if (cfg.test_mode && body_s && atoi(body_s) > 0)
        ho.max_request_s = (unsigned)atoi(body_s);
    if (ts_http_server_create(&ho, &srv, &err) != TS_OK)
        goto fail;

    api.cfg = &cfg;
    api.jobs = jobs;
    api.ratelimit = rl;
    api.metrics = metrics;
    api.portrait = portrait;
    api.tls_active = ts_http_server_tls(srv);
    api.sync_timeout_s = 600;
    /* Test mode may shorten the event-stream heartbeat, so tests see
     * keep-alive comments without waiting ten seconds. */
    const char *beat = getenv("TOGETHERSHOT_TEST_HEARTBEAT_MS");
    if (cfg.test_mode && beat)
        api.heartbeat_ms = atoi(beat) >= 50 ? atoi(beat) : 0;
    ts_http_server_set_observer(srv, observe, metrics);
    if (ts_web_register(&api, srv, &err) != TS_OK ||
        ts_api_openai_register(&api, srv, &err) != TS_OK ||
        ts_api_jobs_register(&api, srv, &err) != TS_OK)
        goto fail;
    if (ts_http_server_start(srv, &err) != TS_OK)
        goto fail;

    char host[TS_CONFIG_HOST_MAX + 2];
    snprintf(host, sizeof host, strchr(cfg.listen_host, ':') ? "[%s]" : "%s", cfg.listen_host);
    printf("%s://%s:%d/\n", api.tls_active ? "https" : "http", host, ts_http_server_port(srv));
    fflush(stdout);
    ts_log_info("serve", "serving on port %d (%s, %s, retention %llds, %d worker%s)%s",
                ts_http_server_port(srv), api.tls_active ? "TLS" : "plain HTTP",
                cfg.memory_only ? "memory only" : "encrypted data folder",
                (long long)(cfg.retention_ms / 1000), cfg.workers, cfg.workers == 1 ? "" : "s",
                cfg.test_mode ? " [test mode]" : "");

    /* SIGHUP and a changed gallery file (looked for every 2 s while the check
     * is on) reload the gallery; SIGINT and SIGTERM end the loop. */
    unsigned char sig = 0;
    for (;;) {
        struct pollfd pfd = {.fd = stop_pipe[0], .events = POLLIN};
        int ready = poll(&pfd, 1, portrait ? 2000 : -1);
        if (ready < 0 && errno == EINTR)
            continue; /* a signal's byte is in the pipe: the next poll reads it. Looking at
                       * the gallery here too would reload it twice for one SIGHUP. */
        if (ready < 0)
            break;
        if (ready > 0) {
            ssize_t got = read(stop_pipe[0], &sig, 1);
            if (got < 0 && errno == EINTR)
                continue;
            if (got != 1 || sig != SIGHUP)
                break;
        }
        reload_gallery(portrait, ready > 0);
    }
    ts_log_info("serve", "stopping (%s): closing connections, cancelling jobs, wiping the store",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = TS_EXIT_OK;
    goto cleanup;

fail:
    fprintf(stderr, "togethershot serve: %s\n", err.message);
    rc = TS_EXIT_FAILURE;
cleanup:
    if (srv)
        ts_http_server_destroy(srv);
    ts_api_jobs_shutdown(&api);
    if (jobs)
        ts_jobs_destroy(jobs);
    if (rl)
        ts_ratelimit_destroy(rl);
    if (store)
        ts_store_close(store);
#ifdef TS_HAVE_VISION
    if (portrait)
        ts_portrait_close(portrait);
#endif
    if (metrics)
        ts_metrics_destroy(metrics);
    if (rc == TS_EXIT_OK)
        ts_log_info("serve", "stopped; every stored item was destroyed");
    return rc;
}
