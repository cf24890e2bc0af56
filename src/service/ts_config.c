/*
 * ts_config.c - the `serve` option table: flags, environment variables,
 * defaults and help, from one description.
 */
#include "ts_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ts_clock.h"
#include "ts_log.h"
#include "ts_ratelimit.h"

extern char **environ;

typedef enum opt_kind {
    OPT_LISTEN,   /* HOST:PORT into listen_host + listen_port */
    OPT_STRING,   /* char[] field */
    OPT_INT,      /* int field */
    OPT_SIZE,     /* size_t field, bytes with optional K/M/G */
    OPT_COUNT64,  /* int64_t field, count with optional K/M/G (decimal) */
    OPT_BYTES64,  /* int64_t field, bytes with optional K/M/G (binary) */
    OPT_DURATION, /* int64_t ms */
    OPT_DOUBLE,   /* double field */
    OPT_FLOAT,    /* float field */
    OPT_BOOL,     /* int field; a flag without value sets 1 */
    OPT_LOGLEVEL, /* int field */
    OPT_HELP,
} opt_kind;

typedef struct option {
    const char *flag; /* without the leading "--" */
    const char *env;  /* environment variable, or NULL */
    opt_kind kind;
    size_t offset;
    size_t size; /* of the field, for strings */
    const char *metavar;
    const char *def; /* the default, as shown in --help */
    const char *help;
} option;

#define F(field) offsetof(ts_config, field), sizeof(((ts_config *)0)->field)

static const option options[] = {
    {"listen", "TOGETHERSHOT_LISTEN", OPT_LISTEN, 0, 0, "HOST:PORT", "127.0.0.1:8080",
     "address and port to listen on ([::1]:8080 for IPv6)"},
    {"tls-cert", "TOGETHERSHOT_TLS_CERT", OPT_STRING, F(tls_cert), "PATH", "none",
     "PEM certificate chain; with --tls-key the server speaks TLS 1.2+ itself"},
    {"tls-key", "TOGETHERSHOT_TLS_KEY", OPT_STRING, F(tls_key), "PATH", "none",
     "PEM private key for --tls-cert"},
    {"data-dir", "TOGETHERSHOT_DATA_DIR", OPT_STRING, F(data_dir), "DIR", "/var/tmp/togethershot",
     "folder for encrypted items (emptied at start; must hold nothing else)"},
    {"memory-only", "TOGETHERSHOT_MEMORY_ONLY", OPT_BOOL, F(memory_only), NULL, "off",
     "keep encrypted items in memory; write nothing to disk"},
    {"retention", "TOGETHERSHOT_RETENTION", OPT_DURATION, F(retention_ms), "DURATION", "24h",
     "how long results stay downloadable (at most 24h)"},
    {"max-items", "TOGETHERSHOT_MAX_ITEMS", OPT_INT, F(max_items), "N", "4096",
     "stored items (uploads and results) at once"},
    {"max-store-bytes", "TOGETHERSHOT_MAX_STORE_BYTES", OPT_BYTES64, F(max_store_bytes), "SIZE",
     "4G on disk, 1G in memory", "encrypted bytes held at once"},
    {"model", "TOGETHERSHOT_MODEL", OPT_STRING, F(model_path), "PATH", "the built-in model",
     "diffusers folder or single-file checkpoint"},
    {"workers", "TOGETHERSHOT_WORKERS", OPT_INT, F(workers), "N", "1",
     "generation workers, each with its own copy of the model"},
    {"threads", "TOGETHERSHOT_THREADS", OPT_INT, F(threads_per_worker), "N", "cores / workers",
     "engine threads per worker"},
    {"queue-size", "TOGETHERSHOT_QUEUE_SIZE", OPT_INT, F(queue_size), "N", "16",
     "jobs that may wait; beyond it requests get 503 with Retry-After"},
    {"rate-expensive", "TOGETHERSHOT_RATE_EXPENSIVE", OPT_DOUBLE, F(rate_expensive.per_minute),
     "PER_MIN", "6", "generation requests per minute per client"},
    {"burst-expensive", "TOGETHERSHOT_BURST_EXPENSIVE", OPT_DOUBLE, F(rate_expensive.burst), "N",
     "3", "generation requests a client may make at once"},
    {"rate-cheap", "TOGETHERSHOT_RATE_CHEAP", OPT_DOUBLE, F(rate_cheap.per_minute), "PER_MIN",
     "600", "other requests (status, events, downloads, page) per minute per client"},
    {"burst-cheap", "TOGETHERSHOT_BURST_CHEAP", OPT_DOUBLE, F(rate_cheap.burst), "N", "120",
     "other requests a client may make at once"},
    {"max-connections", "TOGETHERSHOT_MAX_CONNECTIONS", OPT_INT, F(max_connections), "N", "256",
     "open connections, all clients together"},
    {"max-conns-per-client", "TOGETHERSHOT_MAX_CONNS_PER_CLIENT", OPT_INT, F(max_conns_per_client),
     "N", "16", "open connections of one client"},
    {"max-body-bytes", "TOGETHERSHOT_MAX_BODY_BYTES", OPT_SIZE, F(limits.max_body_bytes), "SIZE",
     "64M", "largest request body"},
    {"max-upload-bytes", "TOGETHERSHOT_MAX_UPLOAD_BYTES", OPT_SIZE, F(limits.max_upload_bytes),
     "SIZE", "20M", "largest uploaded file"},
    {"max-uploads", "TOGETHERSHOT_MAX_UPLOADS", OPT_INT, F(limits.max_uploads), "N", "4",
     "photos per request (1-4)"},
    {"max-pixels", "TOGETHERSHOT_MAX_PIXELS", OPT_COUNT64, F(limits.max_pixels), "N", "40M",
     "largest uploaded image, width x height, checked before decoding"},
    {"max-prompt-bytes", "TOGETHERSHOT_MAX_PROMPT_BYTES", OPT_SIZE, F(limits.max_prompt_bytes), "N",
     "4000", "longest prompt (and negative prompt)"},
    {"max-n", "TOGETHERSHOT_MAX_N", OPT_INT, F(limits.max_n), "N", "4", "images per request"},
    {"max-width", "TOGETHERSHOT_MAX_WIDTH", OPT_INT, F(limits.max_width), "N", "2048",
     "widest output"},
    {"max-height", "TOGETHERSHOT_MAX_HEIGHT", OPT_INT, F(limits.max_height), "N", "2048",
     "tallest output"},
    {"max-steps", "TOGETHERSHOT_MAX_STEPS", OPT_INT, F(limits.max_steps), "N", "100",
     "sampler steps per image"},
    {"trusted-proxies", "TOGETHERSHOT_TRUSTED_PROXIES", OPT_STRING, F(trusted_proxies), "CIDRS",
     "none", "proxies whose X-Forwarded-For is believed (10.0.0.0/8,::1/128)"},
    {"metrics-public", "TOGETHERSHOT_METRICS_PUBLIC", OPT_BOOL, F(metrics_public), NULL, "off",
     "answer /metrics to any client, not only loopback"},
    {"contact", "TOGETHERSHOT_CONTACT", OPT_STRING, F(operator_contact), "TEXT", "none",
     "operator contact shown on /privacy (e-mail or address)"},
    {"portrait-check", "TOGETHERSHOT_PORTRAIT_CHECK", OPT_BOOL, F(portrait_check), NULL, "off",
     "refuse prompts, photos and results showing protected persons"},
    {"gallery", "TOGETHERSHOT_GALLERY", OPT_STRING, F(gallery_path), "PATH", "none",
     "protected-persons gallery (names and face descriptors)"},
    {"face-models", "TOGETHERSHOT_FACE_MODELS", OPT_STRING, F(face_models_dir), "DIR",
     "the bundled weights", "folder with the face detector and descriptor weights"},
    {"portrait-threshold", "TOGETHERSHOT_PORTRAIT_THRESHOLD", OPT_FLOAT, F(portrait_threshold), "X",
     "the checker's default", "face descriptor distance that counts as a match"},
    {"log-level", "TOGETHERSHOT_LOG_LEVEL", OPT_LOGLEVEL, F(log_level), "LEVEL", "info",
     "debug, info, warn or error"},
    {"test-mode", "TOGETHERSHOT_TEST_MODE", OPT_BOOL, F(test_mode), NULL, "off",
     "allow POST /v1/test/clock to move time (loopback only; for tests)"},
    {"help", NULL, OPT_HELP, 0, 0, NULL, NULL, "show this text"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

void ts_config_default(ts_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    cfg->max_connections = 256;
    cfg->max_conns_per_client = 16;
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "/var/tmp/togethershot");
    cfg->retention_ms = TS_RETENTION_DEFAULT_MS;
    cfg->max_items = 4096;
    cfg->workers = 1;
    cfg->queue_size = 16;
    ts_limits_default(&cfg->limits);
    cfg->rate_expensive.per_minute = 6;
    cfg->rate_expensive.burst = 3;
    cfg->rate_cheap.per_minute = 600;
    cfg->rate_cheap.burst = 120;
    cfg->log_level = TS_LOG_INFO;
}

/* ------------------------------------------------------------- values */

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi || !(isdigit((unsigned char)s[0]) || s[0] == '-'))
        return -1;
    *out = v;
    return 0;
}

/* "64M", "20k", "1G", "4000": binary multiples for bytes (base 1024) or
 * decimal for counts (base 1000). */
static int parse_scaled(const char *s, long long base, long long *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return -1;
    long long mul = 1;
    if (*end) {
        char c = (char)toupper((unsigned char)*end);
        if (c == 'K')
            mul = base;
        else if (c == 'M')
            mul = base * base;
        else if (c == 'G')
            mul = base * base * base;
        else
            return -1;
        end++;
        if (*end == 'B' || *end == 'b')
            end++;
        if (*end)
            return -1;
    }
    if (v > (1LL << 50) / mul)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "on", "true", "yes"};
    static const char *const no[] = {"0", "off", "false", "no"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_listen(const char *s, ts_config *cfg)
{
    const char *colon;
    char host[TS_CONFIG_HOST_MAX];
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return -1;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= sizeof host ||
            memchr(s, ':', (size_t)(colon - s)))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    long long port;
    if (parse_int(colon + 1, 0, 65535, &port) != 0)
        return -1;
    unsigned char buf[16];
    if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, buf) != 1 &&
        inet_pton(AF_INET6, host, buf) != 1)
        return -1;
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", host);
    cfg->listen_port = (int)port;
    return 0;
}

/* The range of an integer option, for the message about a value that is
 * not a number (ts_config_validate checks the same ranges). */
static const char *int_range(const char *flag)
{
    static const struct {
        const char *flag, *range;
    } ranges[] = {
        {"workers", "1 to 64"},           {"threads", "0 (cores / workers) to 1024"},
        {"queue-size", "1 to 100000"},    {"max-items", "16 to 1000000"},
        {"max-connections", "1 or more"}, {"max-conns-per-client", "0 (no cap) or more"},
        {"max-uploads", "1 to 4"},        {"max-n", "1 to 16"},
        {"max-width", "64 to 8192"},      {"max-height", "64 to 8192"},
        {"max-steps", "1 to 1000"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (strcmp(ranges[i].flag, flag) == 0)
            return ranges[i].range;
    return "a whole number of 0 or more";
}

static ts_status set_option(ts_config *cfg, const option *o, const char *value, const char *src,
                            ts_error *err)
{
    void *field = (char *)cfg + o->offset;
    long long v;
    switch (o->kind) {
    case OPT_LISTEN:
        if (parse_listen(value, cfg) != 0)
            return ts_error_set(err, TS_ERR_ARG,
                                "%s '%.80s' is not HOST:PORT (like 127.0.0.1:8080 or [::1]:8080)",
                                src, value);
        return TS_OK;
    case OPT_STRING:
        if (strlen(value) >= o->size)
            return ts_error_set(err, TS_ERR_ARG, "%s is longer than %zu characters", src,
                                o->size - 1);
        snprintf(field, o->size, "%s", value);
        return TS_OK;
    case OPT_INT:
        if (parse_int(value, 0, 1000000000, &v) != 0)
            return ts_error_set(err, TS_ERR_ARG, "%s '%.40s' is not a whole number; give %s", src,
                                value, int_range(o->flag));
        *(int *)field = (int)v;
        return TS_OK;
    case OPT_SIZE:
        if (parse_scaled(value, 1024, &v) != 0)
            return ts_error_set(err, TS_ERR_ARG, "%s '%.40s' is not a size (like 4000, 20M, 1G)",
                                src, value);
        *(size_t *)field = (size_t)v;
        return TS_OK;
    case OPT_COUNT64:
    case OPT_BYTES64:
        if (parse_scaled(value, o->kind == OPT_BYTES64 ? 1024 : 1000, &v) != 0)
            return ts_error_set(err, TS_ERR_ARG, "%s '%.40s' is not a number (like 40M)", src,
                                value);
        *(int64_t *)field = v;
        return TS_OK;
    case OPT_DURATION: {
        int64_t ms = ts_duration_parse_ms(value);
        if (ms <= 0)
            return ts_error_set(err, TS_ERR_ARG,
                                "%s '%.40s' is not a duration (like 90s, 30m, 24h)", src, value);
        if (ms > TS_RETENTION_MAX_MS)
            return ts_error_set(err, TS_ERR_ARG,
                                "%s %.40s: the maximum is 24h (results are never kept longer)", src,
                                value);
        *(int64_t *)field = ms;
        return TS_OK;
    }
    case OPT_DOUBLE:
    case OPT_FLOAT: {
        char *end;
        errno = 0;
        double d = strtod(value, &end);
        if (errno || *end || end == value || !isfinite(d) || d < 0)
            return ts_error_set(err, TS_ERR_ARG, "%s '%.40s' is not a non-negative number", src,
                                value);
        if (o->kind == OPT_DOUBLE)
            *(double *)field = d;
        else
            *(float *)field = (float)d;
        return TS_OK;
    }
    case OPT_BOOL: {
        int b;
        if (parse_bool(value, &b) != 0)
            return ts_error_set(err, TS_ERR_ARG, "%s '%.40s' is not on/off (or 1/0)", src, value);
        *(int *)field = b;
        return TS_OK;
    }
    case OPT_LOGLEVEL: {
        int level = ts_log_level_parse(value);
        if (level < 0)
            return ts_error_set(err, TS_ERR_ARG,
                                "%s '%.40s' is not a log level (debug, info, warn, error)", src,
                                value);
        *(int *)field = level;
        return TS_OK;
    }
    case OPT_HELP:
        return TS_OK;
    }
    return TS_ERR_INTERNAL;
}

static const char *env_lookup(char **envp, const char *name)
{
    if (!envp)
        return getenv(name);
    size_t n = strlen(name);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* ------------------------------------------------------------- public */

int ts_config_host_is_loopback(const char *host)
{
    if (!host)
        return 0;
    if (strcmp(host, "localhost") == 0)
        return 1;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return 0;
}

ts_status ts_config_validate(const ts_config *cfg, ts_error *err)
{
    if (cfg->retention_ms <= 0 || cfg->retention_ms > TS_RETENTION_MAX_MS)
        return ts_error_set(err, TS_ERR_ARG,
                            "retention must be more than 0 and at most 24h (results are never "
                            "kept longer)");
    if ((cfg->tls_cert[0] != '\0') != (cfg->tls_key[0] != '\0'))
        return ts_error_set(err, TS_ERR_ARG, "give --tls-cert and --tls-key together");
    if (cfg->tls_cert[0] && access(cfg->tls_cert, R_OK) != 0)
        return ts_error_set(err, TS_ERR_ARG, "--tls-cert %.200s cannot be read: %s", cfg->tls_cert,
                            strerror(errno));
    if (cfg->tls_key[0] && access(cfg->tls_key, R_OK) != 0)
        return ts_error_set(err, TS_ERR_ARG, "--tls-key %.200s cannot be read: %s", cfg->tls_key,
                            strerror(errno));
    if (!cfg->memory_only && !cfg->data_dir[0])
        return ts_error_set(err, TS_ERR_ARG, "give --data-dir DIR or --memory-only");
    if (cfg->memory_only && cfg->data_dir[0])
        return ts_error_set(err, TS_ERR_ARG,
                            "--memory-only writes nothing to disk; drop --data-dir");
    if (cfg->test_mode && !ts_config_host_is_loopback(cfg->listen_host))
        return ts_error_set(err, TS_ERR_ARG,
                            "--test-mode moves the server's clock and is allowed only on a "
                            "loopback address (127.0.0.1 or ::1), not %.100s",
                            cfg->listen_host);
    if (cfg->workers < 1 || cfg->workers > 64)
        return ts_error_set(err, TS_ERR_ARG, "--workers must be 1 to 64, not %d", cfg->workers);
    if (cfg->queue_size < 1 || cfg->queue_size > 100000)
        return ts_error_set(err, TS_ERR_ARG, "--queue-size must be 1 to 100000, not %d",
                            cfg->queue_size);
    if (cfg->max_items < 16 || cfg->max_items > 1000000)
        return ts_error_set(err, TS_ERR_ARG, "--max-items must be 16 to 1000000, not %d",
                            cfg->max_items);
    if (cfg->threads_per_worker < 0 || cfg->threads_per_worker > 1024)
        return ts_error_set(err, TS_ERR_ARG, "--threads must be 0 to 1024, not %d",
                            cfg->threads_per_worker);
    if (cfg->max_connections < 1)
        return ts_error_set(err, TS_ERR_ARG, "--max-connections must be 1 or more, not %d",
                            cfg->max_connections);
    if (cfg->max_conns_per_client < 0)
        return ts_error_set(err, TS_ERR_ARG, "--max-conns-per-client must be 0 or more");
    if (!(cfg->rate_expensive.per_minute > 0) || !(cfg->rate_cheap.per_minute > 0))
        return ts_error_set(err, TS_ERR_ARG,
                            "--rate-expensive and --rate-cheap must be more than 0 per minute");
    if (!(cfg->rate_expensive.burst >= 1) || !(cfg->rate_cheap.burst >= 1))
        return ts_error_set(err, TS_ERR_ARG,
                            "--burst-expensive and --burst-cheap must be at least 1");
    ts_status st = ts_limits_validate(&cfg->limits, err);
    if (st != TS_OK)
        return ts_error_wrap(err, "limits");
    st = ts_ratelimit_check_cidrs(cfg->trusted_proxies, err);
    if (st != TS_OK)
        return ts_error_wrap(err, "--trusted-proxies");
    if (cfg->portrait_check && !cfg->gallery_path[0])
        return ts_error_set(err, TS_ERR_ARG,
                            "--portrait-check needs --gallery PATH (the protected persons)");
    if (cfg->portrait_threshold < 0 || cfg->portrait_threshold > 2)
        return ts_error_set(err, TS_ERR_ARG, "--portrait-threshold must be 0 to 2");
    return TS_OK;
}

ts_status ts_config_from_args(ts_config *cfg, int argc, char **argv, char **envp,
                              int *help_requested, ts_error *err)
{
    ts_config_default(cfg);
    if (help_requested)
        *help_requested = 0;
    int data_dir_given = 0;

    /* Environment first, flags override. */
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option *o = &options[i];
        const char *v = o->env ? env_lookup(envp, o->env) : NULL;
        if (!v || !*v)
            continue;
        ts_status st = set_option(cfg, o, v, o->env, err);
        if (st != TS_OK)
            return st;
        if (o->offset == offsetof(ts_config, data_dir) && o->kind == OPT_STRING)
            data_dir_given = 1;
    }

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0)
            return ts_error_set(err, TS_ERR_ARG,
                                "unexpected argument '%.80s' (options start "
                                "with --; see --help)",
                                arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const option *o = NULL;
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].flag) == name_len &&
                strncmp(options[i].flag, name, name_len) == 0)
                o = &options[i];
        if (!o)
            return ts_error_set(err, TS_ERR_ARG, "unknown option '%.80s' (see --help)", arg);
        if (o->kind == OPT_HELP) {
            if (help_requested)
                *help_requested = 1;
            return TS_OK;
        }
        char src[64];
        snprintf(src, sizeof src, "--%s", o->flag);
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->kind == OPT_BOOL) {
            value = "on";
        } else {
            if (a + 1 >= argc)
                return ts_error_set(err, TS_ERR_ARG, "%s needs a value (%s)", src, o->metavar);
            value = argv[++a];
        }
        ts_status st = set_option(cfg, o, value, src, err);
        if (st != TS_OK)
            return st;
        if (o->offset == offsetof(ts_config, data_dir) && o->kind == OPT_STRING)
            data_dir_given = 1;
    }

    /* Memory-only replaces the default data folder; an explicit one is a
     * contradiction that validation reports. */
    if (cfg->memory_only && !data_dir_given)
        cfg->data_dir[0] = '\0';
    return ts_config_validate(cfg, err);
}

static char help_text[12288];
static pthread_once_t help_once = PTHREAD_ONCE_INIT;

typedef struct help_buf {
    size_t n;
} help_buf;

static void help_put(help_buf *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void help_put(help_buf *h, const char *fmt, ...)
{
    if (h->n >= sizeof help_text)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(help_text + h->n, sizeof help_text - h->n, fmt, ap);
    va_end(ap);
    if (w > 0)
        h->n += (size_t)w;
}

/* Writes text indented by 8 spaces, wrapped at 79 columns. */
static void help_wrap(help_buf *h, const char *text)
{
    const int indent = 8, width = 79;
    int col = 0;
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p, ' ');
        int len = sp ? (int)(sp - p) : (int)strlen(p);
        if (col == 0) {
            help_put(h, "%*s%.*s", indent, "", len, p);
            col = indent + len;
        } else if (col + 1 + len > width) {
            help_put(h, "\n%*s%.*s", indent, "", len, p);
            col = indent + len;
        } else {
            help_put(h, " %.*s", len, p);
            col += 1 + len;
        }
        p += len;
        while (*p == ' ')
            p++;
    }
    help_put(h, "\n");
}

static void build_help(void)
{
    help_buf h = {0};
    help_put(&h, "options (each can also come from the environment variable named; flags "
                 "win):\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option *o = &options[i];
        help_put(&h, "  --%s%s%s\n", o->flag, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        char line[512];
        int n = snprintf(line, sizeof line, "%s.", o->help);
        if (o->def && n > 0 && (size_t)n < sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, " Default: %s.", o->def);
        if (o->env && n > 0 && (size_t)n < sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, " Environment: %s.", o->env);
        help_wrap(&h, line);
    }
}

const char *ts_config_help_text(void)
{
    pthread_once(&help_once, build_help);
    return help_text;
}

void ts_config_format_duration(int64_t ms, char *buf, size_t cap)
{
    if (ms > 0 && ms % 3600000 == 0)
        snprintf(buf, cap, "%lldh", (long long)(ms / 3600000));
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(buf, cap, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, cap, "%lldms", (long long)ms);
}
