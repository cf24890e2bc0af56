/* ts_http.c - libmicrohttpd server, router, headers, error path, access log.
 *
 * Request lifetime: libmicrohttpd calls on_access() first with headers only
 * (we allocate the ts_http_request and match the route), then once per body
 * chunk (appended to a bounded buffer), then once more with no data (the
 * handler runs). A suspended request is called again after ts_http_resume().
 * on_completed() writes the access line and drops the connection's reference;
 * a streaming response holds a second reference, so a request outlives the
 * stream that may still wake it.
 */
#include "ts_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <sodium.h>

#include "ts_clock.h"
#include "ts_log.h"
#include "ts_secure.h"

#define MAX_ROUTES       48
#define MAX_PARAMS       4
#define MAX_SEGMENTS     8
#define MAX_EXTRA_HEADER 4
#define TLS_FILE_MAX     (1u << 20)

const char ts_http_csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'";

typedef struct route {
    char method[8];
    char pattern[96];
    char *segments[MAX_SEGMENTS]; /* pointers into seg_buf */
    int n_segments;
    char seg_buf[96];
    ts_http_handler_fn fn;
    void *user;
    size_t body_limit;
} route;

struct ts_http_server {
    ts_http_options opts;
    struct MHD_Daemon *daemon;
    route routes[MAX_ROUTES];
    int n_routes;
    int tls;
    int port;
    char host_fallback[80]; /* "127.0.0.1:8080" for URLs without a Host header */
    char *tls_cert;
    char *tls_key;
    size_t tls_key_len;
    atomic_int stopping;
    pthread_mutex_t lock; /* guards the list of parked requests */
    ts_http_request *parked;
    /* The header deadline (see conn_watch): its own lock, list and thread. */
    pthread_mutex_t watch_lock;
    pthread_cond_t watch_wake;
    struct conn_watch *watching;
    pthread_t watchdog;
    int watchdog_running;
    void (*observer)(void *, const char *, int, double);
    void *observer_user;
};

/* One open connection, for the header deadline. libmicrohttpd's timeout is
 * an idle timeout, and the access handler first runs once the headers are
 * complete: a client sending its headers a byte every few seconds would hold
 * a connection forever. A watchdog thread cuts (shutdown(2)) connections
 * whose current request's headers are not complete max_request_s after the
 * connection opened or its previous request ended. libmicrohttpd reports a
 * connection closed before it closes the socket, and the entry leaves the
 * list under watch_lock then, so the watchdog never touches a reused fd. */
typedef struct conn_watch {
    int fd;
    int64_t since_mono; /* connection opened, or its previous request ended */
    int in_request;     /* headers complete; the body deadline is on_access's */
    int cut;
    struct conn_watch *prev, *next;
} conn_watch;

typedef struct extra_header {
    char name[32];
    char value[96];
} extra_header;

struct ts_http_request {
    ts_http_server *srv;
    struct MHD_Connection *conn;
    const route *route;
    char method[8];
    char route_name[112]; /* "GET /v1/jobs/:id" */
    char id[12];
    char param_names[MAX_PARAMS][16];
    char param_values[MAX_PARAMS][80];
    int n_params;
    int method_mismatch; /* the path exists with another method */
    char allow[64];      /* those methods, for the Allow header of the 405 */

    uint8_t *body;
    size_t body_len, body_cap, body_limit;

    int64_t start_mono;
    int status; /* what was queued; 0 while none */
    int responded;
    int body_over; /* the body went past body_limit; 413 once it has ended */

    int parked;     /* MHD_suspend_connection is in force (guarded by srv->lock) */
    int wake;       /* a wake-up arrived while not parked */
    int in_handler; /* parked from the access handler (else from a stream) */
    int park_calls; /* handler parks, counted by the handler's own thread */
    ts_http_request *next_parked, *prev_parked;

    atomic_int refs;
    void *state;
    void (*state_free)(void *);
    extra_header extra[MAX_EXTRA_HEADER];
    int n_extra;
};

/* ------------------------------------------------------------------ options */

void ts_http_options_default(ts_http_options *o)
{
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    o->threads = 4;
    o->max_connections = 512;
    o->per_ip_connections = 32;
    o->idle_timeout_s = 30;
    o->max_request_s = 120;
    o->default_body_limit = 64 * 1024;
}

void ts_http_server_set_observer(ts_http_server *srv,
                                 void (*fn)(void *user, const char *route, int status, double ms),
                                 void *user)
{
    srv->observer = fn;
    srv->observer_user = user;
}

/* ------------------------------------------------------------ small helpers */

static int parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len, int *v6,
                        ts_error *err)
{
    char host[64];
    const char *port_text;
    if (!text || !*text)
        return ts_error_set(err, TS_ERR_ARG, "the listen address is empty; use ADDR:PORT");
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            return ts_error_set(err, TS_ERR_ARG,
                                "listen address '%.80s' is not [IPV6]:PORT (e.g. [::1]:8080)",
                                text);
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port_text = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host || strchr(text, ':') != colon)
            return ts_error_set(err, TS_ERR_ARG,
                                "listen address '%.80s' is not ADDR:PORT (e.g. 127.0.0.1:8080)",
                                text);
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    char *endp;
    errno = 0;
    long port = strtol(port_text, &endp, 10);
    if (errno || *port_text == '\0' || *endp != '\0' || port < 0 || port > 65535)
        return ts_error_set(err, TS_ERR_ARG, "listen port '%.16s' is not a number from 0 to 65535",
                            port_text);

    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        *v6 = 0;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        *v6 = 1;
    } else {
        return ts_error_set(err, TS_ERR_ARG,
                            "listen host '%.64s' is not a numeric IPv4 or IPv6 address", host);
    }
    return TS_OK;
}

static int addr_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            return a->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

static ts_status read_small_file(const char *path, char **out, size_t *len, ts_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_error_set(err, TS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    char *buf = malloc(TLS_FILE_MAX + 1);
    size_t n = 0;
    ts_status st = TS_OK;
    if (!buf) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory reading '%s'", path);
        goto done;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, TLS_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = ts_error_set(err, TS_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > TLS_FILE_MAX) {
            st = ts_error_set(err, TS_ERR_LIMIT, "'%s' is larger than 1 MiB; is it a PEM file?",
                              path);
            goto done;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    if (buf) {
        sodium_memzero(buf, TLS_FILE_MAX + 1);
        free(buf);
    }
    close(fd);
    return st;
}

/* ------------------------------------------------------------------ routing */

static int split_path(char *buf, char **segs, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(buf, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        segs[n++] = s;
    }
    return n;
}

ts_status ts_http_route_add(ts_http_server *srv, const char *method, const char *pattern,
                            ts_http_handler_fn fn, void *user, size_t body_limit)
{
    if (srv->n_routes == MAX_ROUTES || strlen(method) >= sizeof srv->routes[0].method ||
        strlen(pattern) >= sizeof srv->routes[0].pattern)
        return TS_ERR_LIMIT;
    route *r = &srv->routes[srv->n_routes];
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->pattern, sizeof r->pattern, "%s", pattern);
    snprintf(r->seg_buf, sizeof r->seg_buf, "%s", pattern);
    r->n_segments = split_path(r->seg_buf, r->segments, MAX_SEGMENTS);
    if (r->n_segments < 0)
        return TS_ERR_LIMIT;
    r->fn = fn;
    r->user = user;
    r->body_limit = body_limit ? body_limit : srv->opts.default_body_limit;
    srv->n_routes++;
    return TS_OK;
}

static int method_matches(const route *r, const char *method)
{
    if (strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0)
        return 1;
    return strcmp(r->method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

/* Adds a method to the request's Allow list once ("GET, HEAD, DELETE"). */
static void allow_add(ts_http_request *req, const char *method)
{
    size_t n = strlen(req->allow), m = strlen(method);
    for (const char *p = req->allow; (p = strstr(p, method)) != NULL; p += m)
        if ((p == req->allow || p[-1] == ' ') && (p[m] == ',' || p[m] == '\0'))
            return;
    if (n + m + 3 > sizeof req->allow)
        return;
    snprintf(req->allow + n, sizeof req->allow - n, "%s%s", n ? ", " : "", method);
}

/* Finds the route for method + path and captures its parameters. */
static void route_match(ts_http_request *req, const char *url)
{
    char buf[512];
    char *segs[MAX_SEGMENTS + 1];
    if (strlen(url) >= sizeof buf)
        return;
    snprintf(buf, sizeof buf, "%s", url);
    int n = split_path(buf, segs, MAX_SEGMENTS);
    if (n < 0)
        return;

    for (int i = 0; i < req->srv->n_routes; i++) {
        const route *r = &req->srv->routes[i];
        if (r->n_segments != n)
            continue;
        int ok = 1, np = 0;
        for (int s = 0; s < n && ok; s++) {
            if (r->segments[s][0] == ':') {
                if (np == MAX_PARAMS || strlen(segs[s]) >= sizeof req->param_values[0]) {
                    ok = 0;
                    break;
                }
                snprintf(req->param_names[np], sizeof req->param_names[0], "%s",
                         r->segments[s] + 1);
                snprintf(req->param_values[np], sizeof req->param_values[0], "%s", segs[s]);
                np++;
            } else if (strcmp(r->segments[s], segs[s]) != 0) {
                ok = 0;
            }
        }
        if (!ok)
            continue;
        if (!method_matches(r, req->method)) {
            req->method_mismatch = 1;
            allow_add(req, r->method);
            if (strcmp(r->method, "GET") == 0)
                allow_add(req, "HEAD");
            continue;
        }
        req->route = r;
        req->n_params = np;
        return;
    }
}

/* ---------------------------------------------------------------- responses */

int ts_http_status_for(ts_status status)
{
    switch (status) {
    case TS_OK:
        return 200;
    case TS_ERR_ARG:
    case TS_ERR_FORMAT:
        return 400;
    case TS_ERR_UNSUPPORTED:
        return 415;
    case TS_ERR_LIMIT:
        return 413;
    case TS_ERR_NOT_FOUND:
        return 404;
    case TS_ERR_BUSY:
        return 429;
    case TS_ERR_NOMEM:
        return 503;
    case TS_ERR_CANCELLED:
        return 409;
    case TS_ERR_REFUSED:
        return 422;
    default:
        return 500;
    }
}

const char *ts_http_error_type(ts_status status)
{
    switch (status) {
    case TS_ERR_BUSY:
        return "rate_limit_error";
    case TS_ERR_IO:
    case TS_ERR_NOMEM:
    case TS_ERR_INTERNAL:
        return "server_error";
    default:
        return "invalid_request_error";
    }
}

static void add_common_headers(ts_http_request *req, struct MHD_Response *resp, int flags)
{
    MHD_add_response_header(resp, "Content-Security-Policy", ts_http_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(resp, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
    if (flags & TS_HTTP_NO_STORE)
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (req->srv->tls)
        MHD_add_response_header(resp, "Strict-Transport-Security",
                                "max-age=31536000; includeSubDomains");
    for (int i = 0; i < req->n_extra; i++)
        MHD_add_response_header(resp, req->extra[i].name, req->extra[i].value);
}

static void queue(ts_http_request *req, int status, struct MHD_Response *resp, int flags)
{
    if (!resp) {
        /* Out of memory: let libmicrohttpd close the connection. */
        req->responded = 1;
        req->status = 500;
        return;
    }
    add_common_headers(req, resp, flags);
    if (MHD_queue_response(req->conn, (unsigned)status, resp) == MHD_YES)
        req->status = status;
    else
        req->status = req->status ? req->status : 500;
    req->responded = 1;
    MHD_destroy_response(resp);
}

void ts_http_add_header(ts_http_request *req, const char *name, const char *value)
{
    if (req->n_extra == MAX_EXTRA_HEADER)
        return;
    extra_header *h = &req->extra[req->n_extra++];
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->value, sizeof h->value, "%s", value);
}

void ts_http_respond(ts_http_request *req, int status, const char *content_type, const void *data,
                     size_t len, int flags)
{
    if (req->responded)
        return;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    queue(req, status, resp, flags);
}

void ts_http_respond_static(ts_http_request *req, int status, const char *content_type,
                            const void *data, size_t len, int flags)
{
    if (req->responded)
        return;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (resp && content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    queue(req, status, resp, flags);
}

/* json_dumps text comes from jansson's allocator (which may be the wiping
 * one), so it goes back through jansson's free function. Also used by the
 * event stream in ts_api_jobs.c. */
void ts_http_json_text_free(char *text)
{
    json_free_t free_fn = NULL;
    json_get_alloc_funcs(NULL, &free_fn);
    if (free_fn)
        free_fn(text);
    else
        free(text);
}

void ts_http_respond_json(ts_http_request *req, int status, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (!text) {
        ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory; try again later",
                              NULL);
        return;
    }
    ts_http_respond(req, status, "application/json", text, strlen(text), TS_HTTP_NO_STORE);
    ts_http_json_text_free(text);
}

void ts_http_respond_error_code(ts_http_request *req, int http_status, const char *type,
                                const char *code, const char *message, const char *param)
{
    /* Built with jansson so any character in message or param is escaped. */
    json_t *e = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message",
                          message ? message : "error", "type", type, "param", param, "code", code);
    if (!e) {
        static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                       "\"server_error\",\"param\":null,\"code\":\"nomem\"}}";
        ts_http_respond_static(req, 500, "application/json", fallback, sizeof fallback - 1,
                               TS_HTTP_NO_STORE);
        return;
    }
    ts_http_respond_json(req, http_status, e);
}

void ts_http_respond_error(ts_http_request *req, ts_status status, const char *message,
                           const char *param)
{
    int http = ts_http_status_for(status);
    const char *code = status == TS_ERR_REFUSED ? "portrait_rights" : ts_status_name(status);
    if (status == TS_ERR_BUSY || status == TS_ERR_NOMEM) {
        int have = 0;
        for (int i = 0; i < req->n_extra; i++)
            have |= strcasecmp(req->extra[i].name, "Retry-After") == 0;
        if (!have)
            ts_http_add_header(req, "Retry-After", "5");
    }
    ts_http_respond_error_code(req, http, ts_http_error_type(status), code, message, param);
}

/* ---------------------------------------------------------------- streaming */

typedef struct stream {
    ts_http_request *req;
    ts_http_stream_read_fn read;
    void *ctx;
    void (*free_fn)(void *);
} stream;

static void request_unref(ts_http_request *req);

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *s = cls;
    long n = s->read(s->ctx, buf, max);
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    if (s->free_fn)
        s->free_fn(s->ctx);
    request_unref(s->req);
    free(s);
}

void ts_http_respond_stream(ts_http_request *req, const char *content_type,
                            ts_http_stream_read_fn read, void *ctx, void (*free_fn)(void *))
{
    stream *s = calloc(1, sizeof *s);
    if (!s || req->responded) {
        free(s);
        if (free_fn)
            free_fn(ctx);
        if (!req->responded)
            ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory", NULL);
        return;
    }
    s->req = req;
    s->read = read;
    s->ctx = ctx;
    s->free_fn = free_fn;
    atomic_fetch_add(&req->refs, 1);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory", NULL);
        return;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    queue(req, 200, resp, TS_HTTP_NO_STORE);
}

/* ------------------------------------------------------------ park and wake */

static void park_list_add(ts_http_request *req)
{
    ts_http_server *srv = req->srv;
    req->prev_parked = NULL;
    req->next_parked = srv->parked;
    if (srv->parked)
        srv->parked->prev_parked = req;
    srv->parked = req;
}

static void park_list_remove(ts_http_request *req)
{
    ts_http_server *srv = req->srv;
    if (req->prev_parked)
        req->prev_parked->next_parked = req->next_parked;
    else if (srv->parked == req)
        srv->parked = req->next_parked;
    if (req->next_parked)
        req->next_parked->prev_parked = req->prev_parked;
    req->next_parked = req->prev_parked = NULL;
}

/* Parks unless a wake is pending. One server-wide lock guards every
 * request's parked/wake flags and the parked list, so shutdown can walk the
 * list and resume each entry without racing a concurrent wake. */
static int park(ts_http_request *req, int in_handler)
{
    ts_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->lock);
    if (req->wake || atomic_load(&srv->stopping)) {
        req->wake = 0;
        pthread_mutex_unlock(&srv->lock);
        return 0;
    }
    req->parked = 1;
    req->in_handler = in_handler;
    park_list_add(req);
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&srv->lock);
    return 1;
}

int ts_http_suspend(ts_http_request *req)
{
    if (atomic_load(&req->srv->stopping)) {
        ts_http_add_header(req, "Retry-After", "5");
        ts_http_respond_error_code(req, 503, "server_error", "shutting_down",
                                   "the server is shutting down; try again later", NULL);
        return 1;
    }
    int parked = park(req, 1);
    req->park_calls += parked;
    return parked;
}

int ts_http_stream_wait(ts_http_request *req)
{
    if (atomic_load(&req->srv->stopping))
        return -1;
    return park(req, 0);
}

/* Caller holds srv->lock. */
static void wake_locked(ts_http_request *req)
{
    if (req->parked) {
        req->parked = 0;
        park_list_remove(req);
        MHD_resume_connection(req->conn);
    } else {
        req->wake = 1;
    }
}

void ts_http_resume(ts_http_request *req)
{
    pthread_mutex_lock(&req->srv->lock);
    wake_locked(req);
    pthread_mutex_unlock(&req->srv->lock);
}

/* ------------------------------------------------------------ request access */

const char *ts_http_method(const ts_http_request *req)
{
    return req->method;
}

const char *ts_http_route(const ts_http_request *req)
{
    return req->route_name;
}

const char *ts_http_param(const ts_http_request *req, const char *name)
{
    for (int i = 0; i < req->n_params; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    return NULL;
}

const char *ts_http_header(const ts_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *ts_http_query(const ts_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const uint8_t *ts_http_body(const ts_http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body;
}

const struct sockaddr *ts_http_client_addr(const ts_http_request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

int ts_http_client_is_loopback(const ts_http_request *req)
{
    return addr_is_loopback(ts_http_client_addr(req));
}

int ts_http_is_tls(const ts_http_request *req)
{
    return req->srv->tls;
}

int ts_http_stopping(const ts_http_request *req)
{
    return atomic_load(&req->srv->stopping);
}

void ts_http_set_state(ts_http_request *req, void *state, void (*free_fn)(void *))
{
    req->state = state;
    req->state_free = free_fn;
}

void *ts_http_state(const ts_http_request *req)
{
    return req->state;
}

static int host_is_plain(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 96)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return 0;
    }
    return 1;
}

void ts_http_base_url(const ts_http_request *req, char *out, size_t cap)
{
    const char *host = ts_http_header(req, "Host");
    if (!host || !host_is_plain(host))
        host = req->srv->host_fallback;
    snprintf(out, cap, "%s://%s", req->srv->tls ? "https" : "http", host);
}

/* ----------------------------------------------------------- the lifecycle */

static void request_unref(ts_http_request *req)
{
    if (atomic_fetch_sub(&req->refs, 1) != 1)
        return;
    if (req->body) {
        sodium_memzero(req->body, req->body_cap);
        free(req->body);
    }
    free(req);
}

static const char *known_method(const char *m)
{
    static const char *const methods[] = {"GET",    "HEAD",    "POST", "PUT",
                                          "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(m, methods[i]) == 0)
            return methods[i];
    return "OTHER";
}

static ts_http_request *request_new(ts_http_server *srv, struct MHD_Connection *conn,
                                    const char *url, const char *method)
{
    ts_http_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->srv = srv;
    req->conn = conn;
    req->start_mono = ts_clock_mono_ms();
    atomic_init(&req->refs, 1);
    snprintf(req->method, sizeof req->method, "%s", known_method(method));

    uint8_t rnd[4];
    randombytes_buf(rnd, sizeof rnd);
    snprintf(req->id, sizeof req->id, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);

    route_match(req, url);
    /* The access line shows only the template: ids and tokens in the raw path
     * never reach the log (POLICY.md P7). */
    snprintf(req->route_name, sizeof req->route_name, "%s %s", req->method,
             req->route ? req->route->pattern : "(no route)");
    req->body_limit = req->route ? req->route->body_limit : 0;
    return req;
}

static void respond_too_big(ts_http_request *req)
{
    char msg[160];
    snprintf(msg, sizeof msg, "the request body is larger than this endpoint accepts (%zu bytes)",
             req->body_limit);
    ts_http_respond_error(req, TS_ERR_LIMIT, msg, NULL);
}

static int body_append(ts_http_request *req, const char *data, size_t n)
{
    if (n > req->body_limit - req->body_len) {
        req->body_over = 1; /* answered at the end of the body: see on_access */
        return 0;
    }
    if (req->body_len + n > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 16384;
        while (cap < req->body_len + n)
            cap *= 2;
        if (cap > req->body_limit)
            cap = req->body_limit;
        /* Grown by copy so the old buffer is wiped (the user's photo). */
        uint8_t *nb = ts_secure_regrow(req->body, req->body_len, req->body_cap, cap);
        if (!nb) {
            ts_http_respond_error(req, TS_ERR_NOMEM, "the server is out of memory", NULL);
            return 0;
        }
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    return 1;
}

static void dispatch(ts_http_request *req)
{
    if (!req->route) {
        if (req->method_mismatch) {
            char msg[128];
            int other = strcmp(req->method, "OTHER") == 0; /* never echo unknown text */
            snprintf(msg, sizeof msg, "this path does not accept %s; it accepts %s",
                     other ? "that method" : req->method, req->allow);
            ts_http_add_header(req, "Allow", req->allow);
            ts_http_respond_error_code(req, 405, "invalid_request_error", "method_not_allowed", msg,
                                       NULL);
        } else {
            ts_http_respond_error(req, TS_ERR_NOT_FOUND, "there is nothing at this address", NULL);
        }
        return;
    }
    int parks_before = req->park_calls;
    req->route->fn(req, req->route->user);
    if (!req->responded && req->park_calls == parks_before)
        ts_http_respond_error(req, TS_ERR_INTERNAL, "the server could not answer", NULL);
}

static conn_watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? (conn_watch *)ci->socket_context : NULL;
}

/* in_request 1: the headers of a request are in; 0: it ended, and the next
 * request's headers have max_request_s from now. */
static void watch_set(ts_http_server *srv, struct MHD_Connection *conn, int in_request)
{
    conn_watch *w = watch_of(conn);
    if (!w)
        return;
    pthread_mutex_lock(&srv->watch_lock);
    w->in_request = in_request;
    w->since_mono = ts_clock_mono_ms();
    pthread_mutex_unlock(&srv->watch_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    ts_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *w = calloc(1, sizeof *w);
        if (!w || !ci) {
            free(w); /* not watched: only the idle timeout applies */
            return;
        }
        w->fd = ci->connect_fd;
        w->since_mono = ts_clock_mono_ms();
        pthread_mutex_lock(&srv->watch_lock);
        w->next = srv->watching;
        if (w->next)
            w->next->prev = w;
        srv->watching = w;
        pthread_mutex_unlock(&srv->watch_lock);
        *socket_context = w;
        return;
    }
    conn_watch *w = *socket_context;
    if (!w)
        return;
    pthread_mutex_lock(&srv->watch_lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        srv->watching = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&srv->watch_lock);
    free(w);
    *socket_context = NULL;
}

static void *watchdog_main(void *arg)
{
    ts_http_server *srv = arg;
    int64_t limit_ms = (int64_t)srv->opts.max_request_s * 1000;
    pthread_mutex_lock(&srv->watch_lock);
    while (srv->watchdog_running) {
        int64_t now = ts_clock_mono_ms();
        for (conn_watch *w = srv->watching; w; w = w->next) {
            if (!w->in_request && !w->cut && now - w->since_mono > limit_ms) {
                shutdown(w->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes */
                w->cut = 1;
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&srv->watch_wake, &srv->watch_lock, &until);
    }
    pthread_mutex_unlock(&srv->watch_lock);
    return NULL;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    ts_http_server *srv = cls;
    ts_http_request *req = *con_cls;
    enum MHD_Result ret = MHD_YES;

    if (!req) {
        req = request_new(srv, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        watch_set(srv, conn, 1);
        ts_log_set_request_id(req->id);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
        if (!req->route && (cl || te)) {
            /* Nothing here would read the body: answer now rather than
             * swallow whatever size the client chose to send. */
            dispatch(req);
        } else if (req->route && cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (*end == '\0' && v > req->body_limit)
                respond_too_big(req);
        }
        ts_log_set_request_id(NULL);
        return MHD_YES;
    }

    ts_log_set_request_id(req->id);
    if (req->responded || req->body_over) {
        /* An early answer (413 from Content-Length) is out, or the body went
         * past the limit on the way: the rest is read and dropped. An answer
         * queued in the middle of a chunked body is never sent by
         * libmicrohttpd 0.9.75 (the client waited for the idle timeout), so a
         * body that went over is answered 413 when it ends; one that keeps
         * coming past max_request_s is cut off by closing the connection. */
        if (*upload_data_size) {
            *upload_data_size = 0;
            if (srv->opts.max_request_s &&
                ts_clock_mono_ms() - req->start_mono > (int64_t)srv->opts.max_request_s * 1000) {
                ret = MHD_NO;
            }
            goto out;
        }
        if (!req->responded)
            respond_too_big(req);
        goto out;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!req->route)
            goto out; /* answered 404 once the body is in; nothing is kept */
        if (srv->opts.max_request_s &&
            ts_clock_mono_ms() - req->start_mono > (int64_t)srv->opts.max_request_s * 1000) {
            ts_http_respond_error_code(req, 408, "invalid_request_error", "timeout",
                                       "the request body arrived too slowly", NULL);
            goto out;
        }
        body_append(req, upload_data, n);
        goto out;
    }
    dispatch(req);
out:
    ts_log_set_request_id(NULL);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ts_http_server *srv = cls;
    ts_http_request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    watch_set(srv, conn, 0);

    double ms = (double)(ts_clock_mono_ms() - req->start_mono);
    int status = req->status ? req->status : 499; /* the client went away first */
    ts_log_set_request_id(req->id);
    ts_log_info("http", "%s %d %.0fms%s", req->route_name, status, ms,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (closed early)");
    ts_log_set_request_id(NULL);
    if (srv->observer)
        srv->observer(srv->observer_user, req->route ? req->route_name : "(no route)", status, ms);

    if (req->state_free && req->state)
        req->state_free(req->state);
    req->state = NULL;
    if (req->body) {
        /* The body (prompt, photos) is wiped as soon as the exchange ends. */
        sodium_memzero(req->body, req->body_cap);
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
    }
    request_unref(req);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* libmicrohttpd's own messages can name clients; they are dropped. */
    (void)cls;
    (void)fmt;
    (void)ap;
}

ts_status ts_http_server_create(const ts_http_options *opts, ts_http_server **out, ts_error *err)
{
    ts_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating the server");
    srv->opts = *opts;
    if (!srv->opts.threads)
        srv->opts.threads = 4;
    if (!srv->opts.default_body_limit)
        srv->opts.default_body_limit = 64 * 1024;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->watch_lock, NULL);
    pthread_cond_init(&srv->watch_wake, NULL);
    atomic_init(&srv->stopping, 0);

    if ((opts->tls_cert_path != NULL) != (opts->tls_key_path != NULL)) {
        ts_http_server_destroy(srv);
        return ts_error_set(err, TS_ERR_ARG, "TLS needs both a certificate and a key file");
    }
    if (opts->tls_cert_path) {
        size_t n;
        if (read_small_file(opts->tls_cert_path, &srv->tls_cert, &n, err) != TS_OK ||
            read_small_file(opts->tls_key_path, &srv->tls_key, &srv->tls_key_len, err) != TS_OK) {
            ts_http_server_destroy(srv);
            return err ? err->status : TS_ERR_IO;
        }
        srv->tls = 1;
    }
    *out = srv;
    return TS_OK;
}

/* libmicrohttpd says only that it could not start. To tell the operator why,
 * the TLS pair is tried with GnuTLS first, and after a failed start the bind
 * is tried once more with a plain socket, whose errno names the cause. */
static ts_status tls_pair_check(const ts_http_server *srv, ts_error *err)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory checking the TLS files");
    gnutls_datum_t cert = {(unsigned char *)srv->tls_cert, (unsigned)strlen(srv->tls_cert)};
    gnutls_datum_t key = {(unsigned char *)srv->tls_key, (unsigned)srv->tls_key_len};
    int rc = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0)
        return ts_error_set(err, TS_ERR_ARG,
                            "the TLS certificate (%s) and key (%s) cannot be used together: %s",
                            srv->opts.tls_cert_path, srv->opts.tls_key_path, gnutls_strerror(rc));
    return TS_OK;
}

static const char *bind_failure_reason(const struct sockaddr_storage *ss, socklen_t slen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return strerror(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const char *reason = NULL;
    if (bind(fd, (const struct sockaddr *)ss, slen) != 0)
        reason = strerror(errno);
    close(fd);
    return reason;
}

ts_status ts_http_server_start(ts_http_server *srv, ts_error *err)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    int v6;
    ts_status st = parse_listen(srv->opts.listen, &ss, &slen, &v6, err);
    if (st != TS_OK)
        return st;

    if (srv->tls && (st = tls_pair_check(srv, err)) != TS_OK)
        return st;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (srv->tls)
        flags |= MHD_USE_TLS;

    struct MHD_OptionItem tls_opts[4];
    int nt = 0;
    if (srv->tls) {
        tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
        tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
        /* TLS 1.2 and 1.3 only (POLICY.md P9). */
        tls_opts[nt++] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_PRIORITIES, 0,
            (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"};
    }
    tls_opts[nt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, srv->opts.threads, MHD_OPTION_CONNECTION_LIMIT,
        srv->opts.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->opts.per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, srv->opts.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        NULL, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!srv->daemon) {
        const char *reason = bind_failure_reason(&ss, slen);
        return ts_error_set(err, TS_ERR_IO, "could not listen on %s: %s", srv->opts.listen,
                            reason ? reason : "the HTTP library could not start");
    }

    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    char host[64];
    if (ss.ss_family == AF_INET6) {
        char a[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof a);
        snprintf(host, sizeof host, "[%s]", a);
    } else {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof a);
        snprintf(host, sizeof host, "%s", a);
    }
    snprintf(srv->host_fallback, sizeof srv->host_fallback, "%s:%d", host, srv->port);

    if (!srv->tls && !addr_is_loopback((struct sockaddr *)&ss))
        ts_log_warn("http", "serving plain HTTP on a non-loopback address: connections are not "
                            "encrypted; give --tls-cert/--tls-key or put a TLS proxy in front");
    if (srv->opts.max_request_s) {
        srv->watchdog_running = 1;
        if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
            srv->watchdog_running = 0;
            ts_log_warn("http", "no header deadline: its thread could not start; only the idle "
                                "timeout applies to slow clients");
        }
    }
    return TS_OK;
}

int ts_http_server_port(const ts_http_server *srv)
{
    return srv->port;
}

int ts_http_server_tls(const ts_http_server *srv)
{
    return srv->tls;
}

void ts_http_server_destroy(ts_http_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, 1);
    if (srv->watchdog_running) {
        pthread_mutex_lock(&srv->watch_lock);
        srv->watchdog_running = 0;
        pthread_cond_signal(&srv->watch_wake);
        pthread_mutex_unlock(&srv->watch_lock);
        pthread_join(srv->watchdog, NULL);
    }
    if (srv->daemon) {
        /* Every parked request must be resumed before the daemon stops; once
         * resumed, handlers see ts_http_stopping() and answer or end. */
        MHD_socket lfd = MHD_quiesce_daemon(srv->daemon);
        if (lfd != MHD_INVALID_SOCKET)
            close(lfd);
        /* A resumed handler may not park again (stopping is set), so one pass
         * empties the list; a few more catch requests that were mid-park. */
        for (int round = 0; round < 50; round++) {
            pthread_mutex_lock(&srv->lock);
            int any = srv->parked != NULL;
            while (srv->parked)
                wake_locked(srv->parked);
            pthread_mutex_unlock(&srv->lock);
            if (!any && round > 2)
                break;
            usleep(20000);
        }
        MHD_stop_daemon(srv->daemon);
    }
    if (srv->tls_key) {
        sodium_memzero(srv->tls_key, srv->tls_key_len);
        free(srv->tls_key);
    }
    free(srv->tls_cert);
    pthread_cond_destroy(&srv->watch_wake);
    pthread_mutex_destroy(&srv->watch_lock);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
