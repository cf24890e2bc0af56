/* ts_web.c - serves the embedded page and its two assets. */
#include "ts_web.h"

#include <string.h>

#include "ts_api_jobs.h"
#include "ts_http.h"

const ts_web_asset *ts_web_find(const char *path)
{
    if (!path)
        return NULL;
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (const ts_web_asset *a = ts_web_assets; a->path; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}

static void on_asset(ts_http_request *req, void *user)
{
    ts_api *api = user;
    if (!ts_api_rate_check(api, req, 0))
        return;
    /* The route template is the asset's own path ("GET /app.js"). */
    const char *route = strchr(ts_http_route(req), ' ');
    const ts_web_asset *a = ts_web_find(route ? route + 1 : NULL);
    if (!a) {
        ts_http_respond_error(req, TS_ERR_NOT_FOUND, "there is nothing at this address", NULL);
        return;
    }
    /* no-cache: the page changes with the binary, and revalidation is cheap. */
    ts_http_add_header(req, "Cache-Control", "no-cache");
    ts_http_respond_static(req, 200, a->content_type, a->data, a->len, 0);
}

ts_status ts_web_register(ts_api *api, ts_http_server *srv, ts_error *err)
{
    /* Browsers ask for /favicon.ico on their own: the page's own icon
     * answers, from the binary like the rest (never another origin, P8). */
    static const char *const paths[] = {"/", "/index.html", "/app.js", "/style.css",
                                        "/favicon.ico"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (ts_http_route_add(srv, "GET", paths[i], on_asset, api, 0) != TS_OK)
            return ts_error_set(err, TS_ERR_INTERNAL, "too many routes");
    return TS_OK;
}
