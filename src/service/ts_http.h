/*
 * ts_http.h - the HTTP server: libmicrohttpd (thread pool over epoll) with
 * optional TLS through GnuTLS, a small router, one error path, security
 * headers on every response, and one access line per request.
 *
 *     ts_http_options o;
 *     ts_http_options_default(&o);
 *     o.listen = "127.0.0.1:8080";
 *     ts_http_server *srv;
 *     ts_http_server_create(&o, &srv, &err);
 *     ts_http_route_add(srv, "GET", "/v1/jobs/:id", on_job, app, 0);
 *     ts_http_server_start(srv, &err);
 *     ...
 *     ts_http_server_destroy(srv);   // resumes and closes every connection
 *
 * A handler receives a ts_http_request and answers it with exactly one of the
 * ts_http_respond_* calls, or parks it with ts_http_suspend() and answers
 * later: another thread calls ts_http_resume(), and the handler is called
 * again with the same request (and the state it attached to it).
 *
 * Design notes and invariants:
 *  - The request body is read into a buffer bounded by the route's limit
 *    while it streams in; the first byte past the limit (or a Content-Length
 *    above it) answers 413 at once and the connection is closed, so nothing
 *    past the limit is ever buffered. The buffer is wiped when released
 *    (bodies carry prompts and photos: POLICY.md P1, P2).
 *  - Every response carries the security headers (CSP, nosniff, no-referrer,
 *    frame denial, HSTS under TLS) and never a Set-Cookie (P6).
 *  - The access line names the route template ("GET /v1/jobs/:id"), status
 *    and duration, never the raw path, query, client address, user agent or
 *    any token (P7).
 *  - Errors have one shape, OpenAI's: {"error":{"message","type","param",
 *    "code"}}, mapped from ts_status by ts_http_status_for().
 *
 * Limits: libmicrohttpd answers a few protocol errors itself (malformed
 * request line, headers over the per-connection memory limit); those
 * responses do not carry our headers or JSON body. Connection timeouts are
 * idle timeouts; a request that trickles its headers or its body is cut off
 * by max_request_s (headers: counted from the connection's start or the end
 * of its previous request; a watchdog checks once a second).
 */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "ts_error.h"

typedef struct ts_http_server ts_http_server;
typedef struct ts_http_request ts_http_request;

typedef struct ts_http_options {
    const char *listen;        /* "ADDR:PORT", "[V6ADDR]:PORT"; port 0 picks a free one */
    const char *tls_cert_path; /* PEM; both or neither */
    const char *tls_key_path;
    unsigned threads;         /* thread-pool size; 0: 4 */
    unsigned max_connections; /* whole server */
    unsigned per_ip_connections;
    unsigned idle_timeout_s;   /* drop a connection idle this long */
    unsigned max_request_s;    /* a request must have arrived completely within this */
    size_t default_body_limit; /* bytes, for routes that pass 0 */
} ts_http_options;

void ts_http_options_default(ts_http_options *o);

/* Handler for one route. user is what was given to ts_http_route_add. */
typedef void (*ts_http_handler_fn)(ts_http_request *req, void *user);

/* ---------------------------------------------------------- lifecycle */

ts_status ts_http_server_create(const ts_http_options *opts, ts_http_server **out, ts_error *err);

/* Adds a route before start. pattern segments starting with ':' capture
 * (read them with ts_http_param). method "*" matches any; "GET" also
 * answers HEAD. body_limit 0: the server default. At most 48 routes. */
ts_status ts_http_route_add(ts_http_server *srv, const char *method, const char *pattern,
                            ts_http_handler_fn fn, void *user, size_t body_limit);

/* Called once per finished request with the route template ("GET /v1/jobs/:id"
 * or "(no route)"), the status and the duration: the hook for aggregate
 * metrics. Set before start. */
void ts_http_server_set_observer(ts_http_server *srv,
                                 void (*fn)(void *user, const char *route, int status, double ms),
                                 void *user);

ts_status ts_http_server_start(ts_http_server *srv, ts_error *err);

/* The bound port (after start) and whether TLS is on. */
int ts_http_server_port(const ts_http_server *srv);
int ts_http_server_tls(const ts_http_server *srv);

/* Wakes every suspended request (handlers then see ts_http_stopping()),
 * stops the daemon and frees everything. */
void ts_http_server_destroy(ts_http_server *srv);

/* ----------------------------------------------------------- requests */

const char *ts_http_method(const ts_http_request *req);
const char *ts_http_route(const ts_http_request *req); /* the template, for logs */
const char *ts_http_param(const ts_http_request *req, const char *name);
const char *ts_http_header(const ts_http_request *req, const char *name);
const char *ts_http_query(const ts_http_request *req, const char *name);
const uint8_t *ts_http_body(const ts_http_request *req, size_t *len);
const struct sockaddr *ts_http_client_addr(const ts_http_request *req);
int ts_http_client_is_loopback(const ts_http_request *req);
int ts_http_is_tls(const ts_http_request *req);
int ts_http_stopping(const ts_http_request *req);

/* The scheme and host the client used ("http://127.0.0.1:8080"), for
 * absolute URLs in answers. Falls back to the listen address when the Host
 * header is missing or not a plain host[:port]. */
void ts_http_base_url(const ts_http_request *req, char *out, size_t cap);

/* Per-request state for handlers that suspend; free_fn runs when the
 * request ends (also when the client went away). */
void ts_http_set_state(ts_http_request *req, void *state, void (*free_fn)(void *));
void *ts_http_state(const ts_http_request *req);

/* Parks the request. Returns 1 when parked (the handler must return now),
 * or 0 when a wake-up already arrived since the last call, in which case
 * the handler re-checks its condition at once. */
int ts_http_suspend(ts_http_request *req);

/* Wakes a parked request; safe from any thread, and safe before the
 * matching ts_http_suspend (the wake is remembered). The caller must know
 * the request is still alive: it is, until its free_fn state callback ran. */
void ts_http_resume(ts_http_request *req);

/* ---------------------------------------------------------- responses */

/* Response flags. */
enum {
    TS_HTTP_NO_STORE = 1, /* Cache-Control: no-store (API and image answers) */
};

/* Copies data. */
void ts_http_respond(ts_http_request *req, int status, const char *content_type, const void *data,
                     size_t len, int flags);

/* Serves static bytes that outlive the server (embedded files); no copy. */
void ts_http_respond_static(ts_http_request *req, int status, const char *content_type,
                            const void *data, size_t len, int flags);

/* Frees text made by json_dumps through jansson's current free function
 * (which may be the wiping allocator), falling back to free(). */
void ts_http_json_text_free(char *text);

/* Serialises and releases json (steals the reference). Always no-store. */
void ts_http_respond_json(ts_http_request *req, int status, json_t *json);

/* Adds one extra header to the next response of this request (at most 4). */
void ts_http_add_header(ts_http_request *req, const char *name, const char *value);

/* The one error path. status picks the HTTP code and type; message is a
 * sentence for a person; param names the field at fault or is NULL. */
void ts_http_respond_error(ts_http_request *req, ts_status status, const char *message,
                           const char *param);

/* Like ts_http_respond_error with an explicit HTTP code and OpenAI "code". */
void ts_http_respond_error_code(ts_http_request *req, int http_status, const char *type,
                                const char *code, const char *message, const char *param);

/* Streaming answer (server-sent events). read() follows libmicrohttpd's
 * content-reader contract: bytes written, 0 after ts_http_stream_wait()
 * parked the connection, -1 at the end. */
typedef long (*ts_http_stream_read_fn)(void *ctx, char *buf, size_t max);
void ts_http_respond_stream(ts_http_request *req, const char *content_type,
                            ts_http_stream_read_fn read, void *ctx, void (*free_fn)(void *));

/* From inside a stream's read(): parks the connection until
 * ts_http_resume(req) (the request stays valid while its stream lives).
 * Returns 1 when parked (read() then returns 0), 0 when a wake-up arrived
 * already (read() tries again). */
int ts_http_stream_wait(ts_http_request *req);

/* HTTP code and OpenAI error type for a status. */
int ts_http_status_for(ts_status status);
const char *ts_http_error_type(ts_status status);

/* The security headers every response carries; exposed for tests. */
extern const char ts_http_csp[];

#endif
