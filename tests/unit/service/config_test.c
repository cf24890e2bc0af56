/* config_test.c - serve options (flags, environment, defaults, help), the
 * limits' wording, the live privacy page (POLICY.md P16) and the hardening
 * switches. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ts_config.h"
#include "ts_limits.h"
#include "ts_privacy.h"
#include "ts_secure.h"
#include "ts_test.h"

static char *no_env[] = {NULL};

static ts_status parse(ts_config *cfg, ts_error *err, char **env, int argc, ...)
{
    char *argv[32] = {"serve"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 30; i++)
        argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    int help = 0;
    return ts_config_from_args(cfg, argc + 1, argv, env ? env : no_env, &help, err);
}

static void test_defaults(void)
{
    ts_config cfg;
    ts_error err;
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 0), TS_OK);
    TS_CHECK_STR_EQ(cfg.listen_host, "127.0.0.1");
    TS_CHECK_INT_EQ(cfg.listen_port, 8080);
    TS_CHECK_INT_EQ(cfg.retention_ms, 24LL * 3600 * 1000);
    TS_CHECK_INT_EQ(cfg.limits.max_uploads, 4);
    TS_CHECK_INT_EQ(cfg.limits.max_prompt_bytes, 4000);
    TS_CHECK_INT_EQ(cfg.memory_only, 0);
    TS_CHECK(cfg.data_dir[0] != '\0');
    TS_CHECK_INT_EQ(cfg.metrics_public, 0);
    TS_CHECK_INT_EQ(cfg.portrait_check, 0);
    TS_CHECK_INT_EQ(cfg.test_mode, 0);
}

static void test_flags_and_env(void)
{
    ts_config cfg;
    ts_error err;
    char *env[] = {"TOGETHERSHOT_RETENTION=2h",
                   "TOGETHERSHOT_WORKERS=3",
                   "TOGETHERSHOT_MAX_BODY_BYTES=32M",
                   "TOGETHERSHOT_CONTACT=ops@example.org",
                   "UNRELATED=1",
                   NULL};
    TS_CHECK_INT_EQ(parse(&cfg, &err, env, 6, "--listen", "[::1]:9000", "--workers=2",
                          "--memory-only", "--max-pixels", "12M"),
                    TS_OK);
    TS_CHECK_STR_EQ(cfg.listen_host, "::1");
    TS_CHECK_INT_EQ(cfg.listen_port, 9000);
    TS_CHECK_INT_EQ(cfg.retention_ms, 2 * 3600000); /* from the environment */
    TS_CHECK_INT_EQ(cfg.workers, 2);                /* the flag wins */
    TS_CHECK_INT_EQ(cfg.limits.max_body_bytes, 32 * 1024 * 1024);
    TS_CHECK_INT_EQ(cfg.limits.max_pixels, 12000000);
    TS_CHECK_INT_EQ(cfg.memory_only, 1);
    TS_CHECK_STR_EQ(cfg.data_dir, ""); /* memory-only drops the default folder */
    TS_CHECK_STR_EQ(cfg.operator_contact, "ops@example.org");

    /* --help stops parsing and is reported. */
    char *argv[] = {"serve", "--help", "--bogus"};
    int help = 0;
    TS_CHECK_INT_EQ(ts_config_from_args(&cfg, 3, argv, no_env, &help, &err), TS_OK);
    TS_CHECK_INT_EQ(help, 1);
}

static void test_refusals(void)
{
    ts_config cfg;
    ts_error err;
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--retention", "48h"), TS_ERR_ARG);
    TS_CHECK_STR_EQ(err.message, "--retention 48h: the maximum is 24h (results are never kept "
                                 "longer)");
    char *env[] = {"TOGETHERSHOT_RETENTION=25h", NULL};
    TS_CHECK_INT_EQ(parse(&cfg, &err, env, 0), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "TOGETHERSHOT_RETENTION") != NULL);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--retention", "24h"), TS_OK);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--retention", "soon"), TS_ERR_ARG);

    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 3, "--listen", "0.0.0.0:8080", "--test-mode"),
                    TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "loopback") != NULL);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 3, "--listen", "127.0.0.1:0", "--test-mode"), TS_OK);
    TS_CHECK_INT_EQ(cfg.test_mode, 1);

    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 1, "--frobnicate"), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "--frobnicate") != NULL);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 1, "--workers"), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "needs a value") != NULL);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--workers", "lots"), TS_ERR_ARG);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--listen", "8080"), TS_ERR_ARG);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--tls-cert", "/nonexistent/cert.pem"), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "--tls-key") != NULL);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 3, "--memory-only", "--data-dir", "/tmp/x"),
                    TS_ERR_ARG);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--max-uploads", "5"), TS_ERR_ARG);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 2, "--trusted-proxies", "10.0.0.0/8,nope"), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "nope") != NULL);
    TS_CHECK_INT_EQ(parse(&cfg, &err, NULL, 1, "--portrait-check"), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "--gallery") != NULL);
}

static void test_help_lists_every_option(void)
{
    const char *help = ts_config_help_text();
    static const char *const flags[] = {
        "--listen",
        "--tls-cert",
        "--tls-key",
        "--data-dir",
        "--memory-only",
        "--retention",
        "--workers",
        "--model",
        "--queue-size",
        "--rate-expensive",
        "--rate-cheap",
        "--max-body-bytes",
        "--max-upload-bytes",
        "--max-uploads",
        "--max-pixels",
        "--max-prompt-bytes",
        "--max-n",
        "--max-width",
        "--max-height",
        "--max-steps",
        "--trusted-proxies",
        "--metrics-public",
        "--contact",
        "--portrait-check",
        "--gallery",
        "--portrait-threshold",
        "--test-mode",
        "TOGETHERSHOT_RETENTION",
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(help, flags[i])) {
            fprintf(stderr, "help lacks %s\n", flags[i]);
            TS_CHECK(0);
        }
    TS_CHECK(strstr(help, "at most 24h") != NULL);
}

static void test_limits_wording(void)
{
    ts_limits l;
    ts_limits_default(&l);
    ts_error err;
    TS_CHECK_INT_EQ(ts_limits_check_prompt(&l, "prompt", 5000, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "prompt is 5000 bytes; the limit is 4000");
    TS_CHECK_INT_EQ(ts_limits_check_prompt(&l, "prompt", 4000, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_limits_check_body(&l, 64u * 1024 * 1024 + 1, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "request body is 67108865 bytes; the limit is 67108864");
    TS_CHECK_INT_EQ(ts_limits_check_upload_count(&l, 5, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "request has 5 images; the limit is 4");
    TS_CHECK_INT_EQ(ts_limits_check_pixels(&l, 10000, 5000, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message,
                    "image is 10000x5000 (50000000 pixels); the limit is 40000000 pixels");
    TS_CHECK_INT_EQ(ts_limits_check_pixels(&l, 65535, 65535, &err), TS_ERR_LIMIT);
    TS_CHECK_INT_EQ(ts_limits_check_pixels(&l, 0, 5, &err), TS_ERR_ARG);
    TS_CHECK_INT_EQ(ts_limits_check_size(&l, 4096, 512, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "size is 4096x512; the limit is 2048x2048");
    TS_CHECK_INT_EQ(ts_limits_check_size(&l, 0, 0, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_limits_check_steps(&l, 101, &err), TS_ERR_LIMIT);
    TS_CHECK_STR_EQ(err.message, "steps is 101; the limit is 100");
    TS_CHECK_INT_EQ(ts_limits_check_n(&l, 0, &err), TS_ERR_ARG);
    TS_CHECK_INT_EQ(ts_limits_check_upload_bytes(&l, 20u * 1024 * 1024 + 1, &err), TS_ERR_LIMIT);
    l.max_uploads = 5;
    TS_CHECK_INT_EQ(ts_limits_validate(&l, &err), TS_ERR_ARG);
}

/* The prompt rules the CLI and the APIs share. The UTF-8 cases are the
 * classic ones from the Unicode standard's table of well-formed sequences
 * (Table 3-7): overlong forms, surrogates and code points past U+10FFFF are
 * ill-formed. */
static void test_prompt_text(void)
{
    ts_limits l;
    ts_limits_default(&l);
    ts_error err;
    static const char *const good[] = {
        "a red heart",  "caf\xc3\xa9",      "\xe2\x82\xac 5", "\xf0\x9f\x90\xb1 cat",
        "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf",
    };
    static const char *const bad[] = {
        "caf\xe9",          /* Latin-1, not UTF-8 */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* a surrogate, U+D800 */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf8\x88\x80\x80\x80",
        "\xe2\x82",
        "x\x80",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        TS_CHECK_INT_EQ(ts_limits_check_prompt_text(&l, "prompt", good[i], 1, &err), TS_OK);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        TS_CHECK_INT_EQ(ts_limits_check_prompt_text(&l, "prompt", bad[i], 1, &err), TS_ERR_FORMAT);
        TS_CHECK_STR_EQ(err.message, "the prompt is not valid UTF-8 text");
    }
    TS_CHECK_INT_EQ(ts_limits_check_prompt_text(&l, "prompt", " \t\n", 1, &err), TS_ERR_ARG);
    TS_CHECK_STR_EQ(err.message, "the prompt is empty: describe the image to make");
    TS_CHECK_INT_EQ(ts_limits_check_prompt_text(&l, "negative prompt", "", 0, &err), TS_OK);
}

static char *render(const ts_config *cfg, const ts_privacy_facts *f)
{
    char *html = NULL;
    size_t len;
    ts_error err;
    if (ts_privacy_render_html(cfg, f, &html, &len, &err) != TS_OK)
        return NULL;
    if (strlen(html) != len) {
        free(html);
        return NULL;
    }
    return html;
}

static void test_privacy_page_follows_config(void)
{
    ts_config cfg;
    ts_config_default(&cfg);
    ts_privacy_facts facts = {0};
    char *a = render(&cfg, &facts);
    TS_CHECK(a != NULL);
    TS_CHECK(strstr(a, "<td id=\"retention\">24 hours") != NULL);
    TS_CHECK(strstr(a, "encrypted files on the server's disk") != NULL);
    TS_CHECK(strstr(a, "<td id=\"portrait\">off</td>") != NULL);
    TS_CHECK(strstr(a, "not encrypted by this server") != NULL);
    for (int p = 1; p <= 16; p++) {
        char tag[48];
        snprintf(tag, sizeof tag, "<span class=\"p\">P%d</span>", p);
        if (p == 16)
            snprintf(tag, sizeof tag, "P16:");
        TS_CHECK(strstr(a, tag) != NULL);
    }
    /* Nothing loads from elsewhere (P8). */
    TS_CHECK(strstr(a, "http://") == NULL && strstr(a, "https://") == NULL);
    TS_CHECK(strstr(a, "<script") == NULL);

    /* Change the settings: the page changes with them. */
    cfg.retention_ms = 90 * 60000;
    cfg.memory_only = 1;
    cfg.limits.max_prompt_bytes = 1234;
    snprintf(cfg.operator_contact, sizeof cfg.operator_contact, "<script>alert(1)</script> & Co");
    facts.tls_active = 1;
    facts.portrait_active = 1;
    facts.gallery_size = 12;
    char *b = render(&cfg, &facts);
    TS_CHECK(b != NULL);
    TS_CHECK(strstr(b, "<td id=\"retention\">90 minutes") != NULL);
    TS_CHECK(strstr(b, "24 hours") == NULL);
    TS_CHECK(strstr(b, "memory only") != NULL);
    TS_CHECK(strstr(b, "prompts up to 1234 bytes") != NULL);
    TS_CHECK(strstr(b, "on: protecting 12 persons") != NULL);
    TS_CHECK(strstr(b, "numeric description of each face") != NULL); /* discloses the check */
    TS_CHECK(strstr(b, "TLS 1.2 or newer") != NULL);
    TS_CHECK(strstr(b, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co") != NULL);
    TS_CHECK(strstr(b, "<script") == NULL);
    free(a);
    free(b);
}

static int freed, freed_zero;
static void hook(void *user, const void *p, size_t n)
{
    const unsigned char *b = p;
    freed++;
    size_t i = 0;
    while (i < n && b[i] == 0)
        i++;
    freed_zero += i == n;
}

static void test_secure(void)
{
    ts_error err;
    TS_CHECK_INT_EQ(ts_secure_disable_core_dumps(&err), TS_OK);
    TS_CHECK_INT_EQ(ts_secure_core_dumps_disabled(), 1);
    struct rlimit rl;
    TS_CHECK(getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur == 0);

    ts_secure_set_free_hook(hook, NULL);
    char *s = ts_secure_strndup("a secret prompt that is long", 8);
    TS_CHECK_STR_EQ(s, "a secret");
    ts_secure_free_string(s);
    char *buf = malloc(64);
    memset(buf, 0xAB, 64);
    ts_secure_free(buf, 64);
    ts_secure_free(NULL, 10);
    ts_secure_set_free_hook(NULL, NULL);
    TS_CHECK_INT_EQ(freed, 2);
    TS_CHECK_INT_EQ(freed_zero, 2);

    char dur[16];
    ts_config_format_duration(24LL * 3600000, dur, sizeof dur);
    TS_CHECK_STR_EQ(dur, "24h");
    ts_config_format_duration(90 * 60000, dur, sizeof dur);
    TS_CHECK_STR_EQ(dur, "90m");
    TS_CHECK(ts_config_host_is_loopback("::1"));
    TS_CHECK(ts_config_host_is_loopback("127.0.0.2"));
    TS_CHECK(!ts_config_host_is_loopback("0.0.0.0"));
    TS_CHECK(!ts_config_host_is_loopback("::"));
}

int main(void)
{
    TS_RUN(test_defaults);
    TS_RUN(test_flags_and_env);
    TS_RUN(test_refusals);
    TS_RUN(test_help_lists_every_option);
    TS_RUN(test_limits_wording);
    TS_RUN(test_prompt_text);
    TS_RUN(test_privacy_page_follows_config);
    TS_RUN(test_secure);
    return ts_test_finish();
}
