/*
 * ts_privacy.h - the /privacy page, rendered from the running configuration
 * (POLICY.md P16).
 *
 * The page states the promises P1-P16 in plain words and fills in what this
 * server actually does: the retention configured, the limits, whether items
 * are encrypted on disk or kept in memory only, whether portrait-rights
 * checks run (and what they do with faces), whether connections are TLS, and
 * who operates it. Whatever the configuration says is what the page says, so
 * it cannot promise what the server does not do.
 *
 *     ts_privacy_facts f = {.tls_active = 1, .portrait_active = pc != NULL,
 *                           .gallery_size = pc ? ts_portrait_gallery_size(pc) : 0};
 *     char *html; size_t len;
 *     ts_privacy_render_html(&cfg, &f, &html, &len, &err);
 *     ...serve as text/html; charset=utf-8...
 *     free(html);
 *
 * Configuration text (operator contact) is HTML-escaped. The page loads
 * nothing from anywhere (P8): inline CSS only, no script.
 */
#ifndef TS_PRIVACY_H
#define TS_PRIVACY_H

#include <stddef.h>

#include "ts_config.h"
#include "ts_error.h"

/* What is true at run time beyond the configuration. */
typedef struct ts_privacy_facts {
    int tls_active;      /* the server speaks TLS itself */
    int behind_proxy;    /* trusted proxies configured (TLS may end there) */
    int portrait_active; /* the checker is loaded and in use */
    int gallery_size;    /* protected persons loaded */
} ts_privacy_facts;

/* Renders the page into a malloc'd NUL-terminated buffer (caller frees). */
ts_status ts_privacy_render_html(const ts_config *cfg, const ts_privacy_facts *facts, char **html,
                                 size_t *len, ts_error *err);

#endif
