/*
 * ts_privacy.c - the /privacy page, written from the running configuration.
 *
 * Every sentence that depends on a setting is built from that setting here,
 * never from a constant, so changing --retention or --portrait-check changes
 * the page (POLICY.md P16).
 */
#include "ts_privacy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct page {
    char *buf;
    size_t len, cap;
    int failed;
} page;

static void put(page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(page *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            p->failed = 1;
            return;
        }
        if ((size_t)n < p->cap - p->len) {
            p->len += (size_t)n;
            return;
        }
        size_t cap = p->cap * 2 + (size_t)n;
        char *grown = realloc(p->buf, cap);
        if (!grown) {
            p->failed = 1;
            return;
        }
        p->buf = grown;
        p->cap = cap;
    }
}

/* Appends text with &, <, >, " and ' escaped. */
static void put_escaped(page *p, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            put(p, "&amp;");
            break;
        case '<':
            put(p, "&lt;");
            break;
        case '>':
            put(p, "&gt;");
            break;
        case '"':
            put(p, "&quot;");
            break;
        case '\'':
            put(p, "&#39;");
            break;
        default:
            put(p, "%c", *s);
        }
    }
}

static void human_bytes(size_t bytes, char *buf, size_t cap)
{
    if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
        snprintf(buf, cap, "%zu MiB", bytes / (1024 * 1024));
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, cap, "%zu KiB", bytes / 1024);
    else
        snprintf(buf, cap, "%zu bytes", bytes);
}

/* "24 hours", "90 minutes", "45 seconds": the retention in words. */
static void human_duration(int64_t ms, char *buf, size_t cap)
{
    if (ms % 3600000 == 0)
        snprintf(buf, cap, "%lld hour%s", (long long)(ms / 3600000), ms == 3600000 ? "" : "s");
    else if (ms % 60000 == 0)
        snprintf(buf, cap, "%lld minute%s", (long long)(ms / 60000), ms == 60000 ? "" : "s");
    else
        snprintf(buf, cap, "%lld second%s", (long long)(ms / 1000), ms == 1000 ? "" : "s");
}

ts_status ts_privacy_render_html(const ts_config *cfg, const ts_privacy_facts *facts, char **html,
                                 size_t *len, ts_error *err)
{
    *html = NULL;
    *len = 0;
    page p = {.cap = 16384};
    p.buf = malloc(p.cap);
    if (!p.buf)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory rendering the privacy page");

    char retention[48], body[32], upload[32];
    human_duration(cfg->retention_ms, retention, sizeof retention);
    human_bytes(cfg->limits.max_body_bytes, body, sizeof body);
    human_bytes(cfg->limits.max_upload_bytes, upload, sizeof upload);
    const ts_limits *l = &cfg->limits;
    int portrait = facts && facts->portrait_active;
    int tls = facts && facts->tls_active;
    int proxy = (facts && facts->behind_proxy) || cfg->trusted_proxies[0];

    put(&p, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>Privacy - TogetherShot</title>\n"
            /* The server's CSP (style-src 'self') forbids inline styles, so
             * the page's look comes from the page's own stylesheet. */
            "<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n"
            "<body class=\"privacy\">\n"
            "<h1>Privacy on this server</h1>\n"
            "<p>This page is generated from the settings this server is running with right "
            "now, so it describes what the server actually does.</p>\n");

    /* --------------------------------------------------- the settings */
    put(&p, "<h2>How this server is set up</h2>\n<table>\n");
    put(&p,
        "<tr><th>Results are kept for</th><td id=\"retention\">%s, then deleted "
        "automatically</td></tr>\n",
        retention);
    if (cfg->memory_only)
        put(&p, "<tr><th>Storage</th><td id=\"storage\">memory only: nothing you send or "
                "receive is ever written to disk</td></tr>\n");
    else
        put(&p, "<tr><th>Storage</th><td id=\"storage\">encrypted files on the server's disk, "
                "each under its own key that exists only in the server's memory</td></tr>\n");
    if (tls)
        put(&p, "<tr><th>Connection</th><td id=\"tls\">encrypted (TLS 1.2 or newer) by this "
                "server</td></tr>\n");
    else if (proxy)
        put(&p, "<tr><th>Connection</th><td id=\"tls\">encryption is provided by the "
                "operator's proxy in front of this server</td></tr>\n");
    else
        put(&p, "<tr><th>Connection</th><td id=\"tls\">not encrypted by this server; use it "
                "only on your own machine or network</td></tr>\n");
    if (portrait)
        put(&p,
            "<tr><th>Portrait-rights check</th><td id=\"portrait\">on: protecting %d "
            "person%s</td></tr>\n",
            facts->gallery_size, facts->gallery_size == 1 ? "" : "s");
    else
        put(&p, "<tr><th>Portrait-rights check</th><td id=\"portrait\">off</td></tr>\n");
    put(&p,
        "<tr><th>Limits</th><td id=\"limits\">prompts up to %zu bytes; up to %d photo%s per "
        "request, each up to %s and %lld megapixels; requests up to %s; up to %d image%s of "
        "at most %dx%d pixels and %d steps</td></tr>\n",
        l->max_prompt_bytes, l->max_uploads, l->max_uploads == 1 ? "" : "s", upload,
        (long long)(l->max_pixels / 1000000), body, l->max_n, l->max_n == 1 ? "" : "s",
        l->max_width, l->max_height, l->max_steps);
    put(&p,
        "<tr><th>Fair use</th><td id=\"rates\">%g image requests per minute (%g at once) and "
        "%g other requests per minute per visitor</td></tr>\n",
        cfg->rate_expensive.per_minute, cfg->rate_expensive.burst, cfg->rate_cheap.per_minute);
    put(&p, "<tr><th>Operator</th><td id=\"contact\">");
    if (cfg->operator_contact[0])
        put_escaped(&p, cfg->operator_contact);
    else
        put(&p, "not given by the operator");
    put(&p, "</td></tr>\n</table>\n");

    /* --------------------------------------------------- the promises */
    put(&p, "<h2>What happens to what you send</h2>\n<ul>\n");
    put(&p, "<li><strong>Your prompt</strong> is kept in memory only while your images are "
            "made, then erased. It is never written to disk, to a log or into the images. "
            "<span class=\"p\">P1</span></li>\n");
    put(&p,
        "<li><strong>Your photos</strong> are deleted as soon as your job ends, whether it "
        "succeeded, failed, was refused or cancelled, and never kept longer than %s. "
        "<span class=\"p\">P2</span></li>\n",
        retention);
    put(&p,
        "<li><strong>Your results</strong> are kept only so you can download them: for "
        "%s, or until you delete them, which happens at once. "
        "<span class=\"p\">P3</span></li>\n",
        retention);
    if (cfg->memory_only)
        put(&p, "<li><strong>Deleted means gone.</strong> This server keeps everything in "
                "memory, encrypted with a key per item; deleting the key and the data, or "
                "stopping the server, leaves nothing behind. <span class=\"p\">P4</span></li>\n");
    else
        put(&p, "<li><strong>Deleted means gone.</strong> Everything stored is encrypted with "
                "a key per item that exists only in the server's memory. Once the key is "
                "erased the data cannot be recovered, not even from the raw disk or after a "
                "crash; a restarted server removes what an earlier one left. "
                "<span class=\"p\">P4</span></li>\n");
    put(&p, "<li><strong>No database of you.</strong> There is no lasting store of prompts, "
            "photos, results, faces or request histories; only totals (how many requests, "
            "how long generation takes) are counted. <span class=\"p\">P5</span></li>\n"
            "</ul>\n");

    put(&p, "<h2>What is never collected</h2>\n<ul>\n"
            "<li><strong>No tracking:</strong> no cookies, nothing stored in your browser "
            "about you, no fingerprinting. <span class=\"p\">P6</span></li>\n"
            "<li><strong>No personal data in logs or statistics:</strong> your address, "
            "browser, prompts, job links and images appear in no log and no statistic. "
            "<span class=\"p\">P7</span></li>\n"
            "<li><strong>Nothing goes to anyone else:</strong> the server contacts no other "
            "service and the page loads nothing from elsewhere. "
            "<span class=\"p\">P8</span></li>\n</ul>\n");

    put(&p, "<h2>Security and fair use</h2>\n<ul>\n");
    if (tls)
        put(&p, "<li><strong>Encrypted connections:</strong> this server speaks TLS 1.2 or "
                "newer itself. <span class=\"p\">P9</span></li>\n");
    else if (proxy)
        put(&p, "<li><strong>Encrypted connections:</strong> the operator's proxy encrypts "
                "the connection before it reaches this server. "
                "<span class=\"p\">P9</span></li>\n");
    else
        put(&p, "<li><strong>Encrypted connections:</strong> this server is not encrypting "
                "connections itself right now; do not use it over a network you do not "
                "trust. <span class=\"p\">P9</span></li>\n");
    put(&p, "<li><strong>Only you can reach your job.</strong> Each job gets a secret link "
            "token; without it the job looks as if it never existed. No account or cookie is "
            "involved. <span class=\"p\">P10</span></li>\n"
            "<li><strong>Hostile input is expected:</strong> sizes are checked before anything "
            "is decoded, and every rejection says what was wrong. "
            "<span class=\"p\">P11</span></li>\n"
            "<li><strong>Fair use without remembering you:</strong> request limits use a "
            "scrambled form of your address under a key that lives only in memory and is "
            "replaced regularly; when the server is busy it asks you to retry later. "
            "<span class=\"p\">P12</span></li>\n</ul>\n");

    put(&p, "<h2>Portrait rights</h2>\n<ul>\n");
    if (portrait)
        put(&p,
            "<li><strong>Public figures are protected.</strong> Your photos and the "
            "generated images are checked for faces of the %d protected person%s chosen "
            "by the operator, and prompts for their names. To do this the server computes "
            "a numeric description of each face in memory, compares it, and erases it at "
            "once; it keeps no photo and no description of you. A match refuses the job "
            "and the photo is deleted at once. <span class=\"p\">P13</span></li>\n",
            facts->gallery_size, facts->gallery_size == 1 ? "" : "s");
    else
        put(&p, "<li><strong>The portrait-rights check is off on this server.</strong> Faces "
                "in photos and results are not analysed at all. "
                "<span class=\"p\">P13</span></li>\n");
    put(&p, "<li><strong>You are responsible</strong> for having the right to use the photos "
            "you upload; the server does not check copyright. "
            "<span class=\"p\">P14</span></li>\n</ul>\n");

    put(&p, "<h2>Children</h2>\n<ul>\n<li>This service is not for children under 13. The page "
            "asks you to confirm your age; the answer stays in your browser tab and is never "
            "sent or stored. <span class=\"p\">P15</span></li>\n</ul>\n");
    put(&p, "<p class=\"p\">P16: this page is rendered from the running configuration.</p>\n"
            "</body>\n</html>\n");

    if (p.failed) {
        free(p.buf);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory rendering the privacy page");
    }
    *html = p.buf;
    *len = p.len;
    return TS_OK;
}
