/*
 * ts_web.h - the single web page, embedded in the binary at build time.
 *
 * The files of web/ (index.html, app.js, style.css, favicon.ico) are turned
 * into byte arrays by ts_web_embed.cmake; ts_web_register serves them at "/"
 * (the page), "/app.js", "/style.css" and "/favicon.ico". The page loads nothing from any other
 * origin, runs no inline script (the Content-Security-Policy forbids it) and
 * stores nothing in the browser: no cookie, no local or session storage
 * (POLICY.md P6, P8).
 */
#ifndef TS_WEB_H
#define TS_WEB_H

#include <stddef.h>

#include "ts_error.h"

typedef struct ts_web_asset {
    const char *path; /* "/index.html", "/app.js", ... */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} ts_web_asset;

/* Terminated by an entry with path NULL. */
extern const ts_web_asset ts_web_assets[];

/* The asset at path ("/" means "/index.html"), or NULL. */
const ts_web_asset *ts_web_find(const char *path);

typedef struct ts_http_server ts_http_server;
typedef struct ts_api ts_api;

/* Adds GET /, /index.html, /app.js, /style.css and /favicon.ico
 * (rate-limited as cheap). */
ts_status ts_web_register(ts_api *api, ts_http_server *srv, ts_error *err);

#endif
