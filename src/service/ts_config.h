/*
 * ts_config.h - every option of `togethershot serve`, from flags and
 * environment, validated in one place.
 *
 * One table describes each option (flag, environment variable, default,
 * help line); parsing, validation and the `--help` text all come from it, so
 * they cannot disagree. Flags win over the environment, the environment over
 * the defaults.
 *
 *     ts_config cfg;
 *     ts_error err;
 *     int help = 0;
 *     if (ts_config_from_args(&cfg, argc, argv, environ, &help, &err) != TS_OK) {
 *         fprintf(stderr, "serve: %s\n", err.message);      // exit 2
 *         ...
 *     }
 *     if (help) { fputs(ts_config_help_text(), stdout); ... } // exit 0
 *
 * Policy enforced here: retention defaults to 24h and more than 24h is
 * refused (POLICY.md P3); test mode (injectable clock) only on a loopback
 * listen address; metrics only to loopback clients unless --metrics-public.
 *
 * Ownership: ts_config is a plain value (fixed-size strings, no heap); copy it
 * freely. Thread safety: read-only after parsing.
 */
#ifndef TS_SERVICE_CONFIG_H
#define TS_SERVICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"
#include "ts_limits.h"

#define TS_CONFIG_PATH_MAX    1024
#define TS_CONFIG_HOST_MAX    256
#define TS_CONFIG_CONTACT_MAX 256
#define TS_CONFIG_PROXIES_MAX 1024

#define TS_RETENTION_MAX_MS     (24LL * 3600 * 1000) /* P3: hard maximum */
#define TS_RETENTION_DEFAULT_MS TS_RETENTION_MAX_MS

/* Token-bucket settings of one route class (see ts_ratelimit.h). */
typedef struct ts_rate_class_config {
    double per_minute; /* tokens refilled per minute */
    double burst;      /* bucket capacity */
} ts_rate_class_config;

typedef struct ts_config {
    /* network */
    char listen_host[TS_CONFIG_HOST_MAX]; /* "127.0.0.1", "::1", "0.0.0.0", "::" */
    int listen_port;                      /* 1..65535; 0 picks a free port (tests) */
    char tls_cert[TS_CONFIG_PATH_MAX];    /* "" = plain HTTP */
    char tls_key[TS_CONFIG_PATH_MAX];
    char trusted_proxies[TS_CONFIG_PROXIES_MAX]; /* "127.0.0.1/32,::1/128", "" = none */
    int max_connections;                         /* whole server */
    int max_conns_per_client;

    /* storage (P2-P5) */
    char data_dir[TS_CONFIG_PATH_MAX]; /* encrypted item files; "" with memory_only */
    int memory_only;                   /* 1: ciphertext in memory, nothing on disk */
    int64_t retention_ms;              /* results live this long; <= TS_RETENTION_MAX_MS */
    int max_items;                     /* stored items (uploads + results) at once */
    int64_t max_store_bytes;           /* total ciphertext bytes at once */

    /* work */
    char model_path[TS_CONFIG_PATH_MAX]; /* "" = the built-in model (ts_cli_default_model) */
    int workers;                         /* worker threads, each with its own model */
    int queue_size;                      /* jobs waiting, beyond those running */
    int threads_per_worker;              /* engine threads per worker; 0 = cores / workers */

    /* abuse prevention (P11, P12) */
    ts_limits limits;
    ts_rate_class_config rate_expensive; /* generations, edits, job creation */
    ts_rate_class_config rate_cheap;     /* status, events, downloads, page, privacy */

    /* portrait rights (P13) */
    int portrait_check; /* 1: check prompts, uploads and results */
    char gallery_path[TS_CONFIG_PATH_MAX];
    char face_models_dir[TS_CONFIG_PATH_MAX];
    float portrait_threshold; /* <= 0: the checker's default */

    /* transparency and operations */
    char operator_contact[TS_CONFIG_CONTACT_MAX]; /* shown on /privacy */
    int metrics_public;                           /* 0: /metrics answers loopback only */
    int log_level;                                /* ts_log_level */
    int test_mode; /* 1: POST /test/clock advances the clock; loopback only */
} ts_config;

/* Fills every default: 127.0.0.1:8080, memory-only off with data_dir
 * "/var/tmp/togethershot" (see ts_config_from_args for the env override),
 * retention 24h, 1 worker, queue 16, the ts_limits defaults, portrait check
 * off, metrics loopback-only. */
void ts_config_default(ts_config *cfg);

/* Parses the options that follow `serve` (argv[0] is the subcommand name and
 * is skipped). envp: NULL-terminated "NAME=value" strings, or NULL to use the
 * process environment. Sets *help_requested to 1 (and returns TS_OK) on
 * --help. Validates the result (ts_config_validate). Errors are TS_ERR_ARG
 * with a sentence naming the flag or variable, the bad value and what is
 * accepted: "--retention 48h: the maximum is 24h (results are never kept
 * longer)". */
ts_status ts_config_from_args(ts_config *cfg, int argc, char **argv, char **envp,
                              int *help_requested, ts_error *err);

/* Checks cross-field rules: retention in (0, 24h], TLS cert and key given
 * together, data_dir xor memory_only, test mode only on loopback, limits sane,
 * trusted proxies parse as CIDRs. */
ts_status ts_config_validate(const ts_config *cfg, ts_error *err);

/* The options part of `serve --help` ("options ...:" and one entry per
 * option with its default and environment variable, wrapped at 79 columns),
 * generated from the option table; the caller prints its own usage line
 * first. Static storage. */
const char *ts_config_help_text(void);

/* 1 when host is a loopback address or "localhost". */
int ts_config_host_is_loopback(const char *host);

/* "24h", "90m", "45s": the retention as a person would write it (for the
 * privacy page and logs). buf receives at least 16 bytes. */
void ts_config_format_duration(int64_t ms, char *buf, size_t cap);

#endif
