/* http_test.c - ts_http in process: a server on a loopback port and a plain
 * socket client. Checks routing, the error shape, security headers, body
 * limits, the access line, and the park/wake machinery (suspend from a
 * handler, wake from another thread, wake before park, streams, shutdown
 * with parked requests), which is where races and leaks would hide. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ts_http.h"
#include "ts_log.h"
#include "ts_test.h"

static int port;

/* ------------------------------------------------------------ the client */

/* Sends raw bytes and reads until the server closes (requests say
 * Connection: close). Returns a malloc'd NUL-terminated response. */
static char *roundtrip(const char *raw, size_t raw_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return strdup("");
    }
    size_t off = 0;
    while (off < raw_len) {
        ssize_t n = send(fd, raw + off, raw_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static char *get(const char *path)
{
    char req[512];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    return roundtrip(req, (size_t)n);
}

static int status_of(const char *resp)
{
    int code = 0;
    sscanf(resp, "HTTP/1.1 %d", &code);
    return code;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* ------------------------------------------------------------ log capture */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

static void capture(void *user, ts_log_level level, const char *line)
{
    (void)user;
    (void)level;
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}

/* ------------------------------------------------------------ handlers */

static void on_hello(ts_http_request *req, void *user)
{
    (void)user;
    ts_http_respond(req, 200, "text/plain", "hello", 5, 0);
}

static void on_item(ts_http_request *req, void *user)
{
    (void)user;
    char out[128];
    int n = snprintf(out, sizeof out, "item=%s", ts_http_param(req, "id"));
    ts_http_respond(req, 200, "text/plain", out, (size_t)n, TS_HTTP_NO_STORE);
}

static void on_echo(ts_http_request *req, void *user)
{
    (void)user;
    size_t len;
    const uint8_t *b = ts_http_body(req, &len);
    ts_http_respond(req, 200, "application/octet-stream", b, len, 0);
}

static void on_fail(ts_http_request *req, void *user)
{
    (void)user;
    ts_http_respond_error(req, TS_ERR_BUSY, "the queue is \"full\"", "n");
}

/* Parks until another thread wakes it; `early` wakes before the park. */
typedef struct waiter {
    ts_http_request *req;
    int delay_ms;
    pthread_t thread;
} waiter;

static atomic_int parked_now;

static void *wake_later(void *arg)
{
    waiter *w = arg;
    usleep((useconds_t)w->delay_ms * 1000);
    ts_http_resume(w->req);
    return NULL;
}

static void waiter_free(void *p)
{
    waiter *w = p;
    pthread_join(w->thread, NULL);
    free(w);
}

static void on_park(ts_http_request *req, void *user)
{
    int early = user != NULL;
    waiter *w = ts_http_state(req);
    if (w) {
        ts_http_respond(req, 200, "text/plain", "woken", 5, 0);
        return;
    }
    w = calloc(1, sizeof *w);
    w->req = req;
    w->delay_ms = early ? 0 : 50;
    ts_http_set_state(req, w, waiter_free);
    pthread_create(&w->thread, NULL, wake_later, w);
    if (early)
        usleep(20000); /* the wake lands before the park */
    if (!ts_http_suspend(req))
        ts_http_respond(req, 200, "text/plain", "woken", 5, 0);
}

/* Parks forever: only shutdown wakes it. */
static void on_park_forever(ts_http_request *req, void *user)
{
    (void)user;
    if (!ts_http_state(req)) {
        ts_http_set_state(req, malloc(1), free);
        atomic_fetch_add(&parked_now, 1);
    }
    /* Like the real handlers: park again whenever woken; during shutdown
     * the park itself answers 503. */
    if (!ts_http_suspend(req))
        ts_http_respond(req, 200, "text/plain", "unexpected", 10, 0);
}

typedef struct ticker {
    ts_http_request *req;
    int sent;
    atomic_int stop;
    pthread_t thread;
} ticker;

static void *tick(void *arg)
{
    ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        usleep(10000);
        ts_http_resume(t->req);
    }
    return NULL;
}

static long stream_read(void *ctx, char *buf, size_t max)
{
    ticker *t = ctx;
    if (t->sent == 3)
        return -1;
    /* Every other call waits for a wake from the ticker thread. */
    static _Thread_local int flip;
    if ((flip ^= 1)) {
        int w = ts_http_stream_wait(t->req);
        if (w < 0)
            return -1;
        if (w == 1)
            return 0;
    }
    int n = snprintf(buf, max, "data: %d\n\n", t->sent++);
    return n;
}

static void stream_free(void *ctx)
{
    ticker *t = ctx;
    atomic_store(&t->stop, 1);
    pthread_join(t->thread, NULL);
    free(t);
}

static void on_stream(ts_http_request *req, void *user)
{
    (void)user;
    ticker *t = calloc(1, sizeof *t);
    t->req = req;
    pthread_create(&t->thread, NULL, tick, t);
    ts_http_respond_stream(req, "text/event-stream", stream_read, t, stream_free);
}

/* ------------------------------------------------------------ tests */

static void test_routes_headers_errors(void)
{
    char *r = get("/hello?secret=TOPSECRET");
    TS_CHECK_INT_EQ(status_of(r), 200);
    TS_CHECK_STR_EQ(body_of(r), "hello");
    TS_CHECK(strstr(r, "Content-Security-Policy: default-src 'self'") != NULL);
    TS_CHECK(strstr(r, "X-Content-Type-Options: nosniff") != NULL);
    TS_CHECK(strstr(r, "Referrer-Policy: no-referrer") != NULL);
    TS_CHECK(strstr(r, "X-Frame-Options: DENY") != NULL);
    TS_CHECK(strstr(r, "frame-ancestors 'none'") != NULL);
    TS_CHECK(strstr(r, "Strict-Transport-Security") == NULL); /* plain HTTP */
    TS_CHECK(strcasestr(r, "Set-Cookie") == NULL);
    free(r);

    r = get("/items/abc123");
    TS_CHECK_INT_EQ(status_of(r), 200);
    TS_CHECK_STR_EQ(body_of(r), "item=abc123");
    TS_CHECK(strstr(r, "Cache-Control: no-store") != NULL);
    free(r);

    r = get("/nothing/here");
    TS_CHECK_INT_EQ(status_of(r), 404);
    TS_CHECK(strstr(body_of(r), "\"error\":{") != NULL);
    TS_CHECK(strstr(body_of(r), "\"type\":\"invalid_request_error\"") != NULL);
    TS_CHECK(strstr(r, "X-Content-Type-Options: nosniff") != NULL);
    free(r);

    const char post[] = "POST /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                        "Content-Length: 0\r\n\r\n";
    r = roundtrip(post, sizeof post - 1);
    TS_CHECK_INT_EQ(status_of(r), 405);
    free(r);

    r = get("/fail");
    TS_CHECK_INT_EQ(status_of(r), 429);
    TS_CHECK(strstr(r, "Retry-After: ") != NULL);
    /* The message is JSON-escaped, the param and code are there. */
    TS_CHECK(strstr(body_of(r), "\"message\":\"the queue is \\\"full\\\"\"") != NULL);
    TS_CHECK(strstr(body_of(r), "\"param\":\"n\"") != NULL);
    TS_CHECK(strstr(body_of(r), "\"code\":\"busy\"") != NULL);
    free(r);

    /* The access line: template, status; no query, no raw id. */
    usleep(50000);
    pthread_mutex_lock(&log_lock);
    TS_CHECK(strstr(log_text, "GET /hello 200") != NULL);
    TS_CHECK(strstr(log_text, "GET /items/:id 200") != NULL);
    TS_CHECK(strstr(log_text, "GET (no route) 404") != NULL);
    TS_CHECK(strstr(log_text, "TOPSECRET") == NULL);
    TS_CHECK(strstr(log_text, "abc123") == NULL);
    TS_CHECK(strstr(log_text, "127.0.0.1") == NULL);
    pthread_mutex_unlock(&log_lock);
}

static void test_body_limits(void)
{
    /* Within the limit: echoed back whole. */
    char req[4096];
    char body[1000];
    memset(body, 'b', sizeof body);
    int n = snprintf(req, sizeof req,
                     "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     sizeof body);
    memcpy(req + n, body, sizeof body);
    char *r = roundtrip(req, (size_t)n + sizeof body);
    TS_CHECK_INT_EQ(status_of(r), 200);
    TS_CHECK_INT_EQ(strlen(body_of(r)), sizeof body);
    free(r);

    /* Declared past the limit: 413 from the headers alone. */
    const char big[] = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       "Content-Length: 5000000\r\n\r\n";
    r = roundtrip(big, sizeof big - 1);
    TS_CHECK_INT_EQ(status_of(r), 413);
    TS_CHECK(strstr(body_of(r), "larger than this endpoint accepts") != NULL);
    free(r);

    /* Chunked past the limit: cut off once the limit is crossed. */
    size_t cap = 8192 + 64 * 1100;
    char *chunked = malloc(cap);
    size_t len = (size_t)snprintf(chunked, cap,
                                  "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 64; i++) {
        len += (size_t)snprintf(chunked + len, cap - len, "400\r\n");
        memset(chunked + len, 'c', 1024);
        len += 1024;
        len += (size_t)snprintf(chunked + len, cap - len, "\r\n");
    }
    len += (size_t)snprintf(chunked + len, cap - len, "0\r\n\r\n");
    r = roundtrip(chunked, len);
    TS_CHECK_INT_EQ(status_of(r), 413);
    free(r);
    free(chunked);
}

static void test_park_and_wake(void)
{
    for (int i = 0; i < 20; i++) {
        char *r = get(i % 2 ? "/park" : "/park-early");
        TS_CHECK_INT_EQ(status_of(r), 200);
        TS_CHECK_STR_EQ(body_of(r), "woken");
        free(r);
    }
}

static void test_stream(void)
{
    char *r = get("/stream");
    TS_CHECK_INT_EQ(status_of(r), 200);
    TS_CHECK(strstr(r, "Content-Type: text/event-stream") != NULL);
    TS_CHECK(strstr(r, "data: 0") != NULL);
    TS_CHECK(strstr(r, "data: 1") != NULL);
    TS_CHECK(strstr(r, "data: 2") != NULL);
    free(r);
}

static void *get_forever(void *arg)
{
    (void)arg;
    return get("/forever");
}

int main(void)
{
    ts_log_set_sink(capture, NULL);

    ts_http_options o;
    ts_http_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    ts_http_server *srv = NULL;
    ts_error err;
    ts_error_clear(&err);
    TS_CHECK_INT_EQ(ts_http_server_create(&o, &srv, &err), TS_OK);
    ts_http_route_add(srv, "GET", "/hello", on_hello, NULL, 0);
    ts_http_route_add(srv, "GET", "/items/:id", on_item, NULL, 0);
    ts_http_route_add(srv, "POST", "/echo", on_echo, NULL, 4096);
    ts_http_route_add(srv, "GET", "/fail", on_fail, NULL, 0);
    ts_http_route_add(srv, "GET", "/park", on_park, NULL, 0);
    ts_http_route_add(srv, "GET", "/park-early", on_park, (void *)1, 0);
    ts_http_route_add(srv, "GET", "/forever", on_park_forever, NULL, 0);
    ts_http_route_add(srv, "GET", "/stream", on_stream, NULL, 0);
    TS_CHECK_INT_EQ(ts_http_server_start(srv, &err), TS_OK);
    port = ts_http_server_port(srv);
    TS_CHECK(port > 0);

    TS_RUN(test_routes_headers_errors);
    TS_RUN(test_body_limits);
    TS_RUN(test_park_and_wake);
    TS_RUN(test_stream);

    /* Shutdown with requests parked that nothing else will wake: they are
     * woken, answered 503, and the server stops without hanging or leaking. */
    pthread_t clients[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&clients[i], NULL, get_forever, NULL);
    for (int spin = 0; spin < 500 && atomic_load(&parked_now) < 3; spin++)
        usleep(10000);
    TS_CHECK_INT_EQ(atomic_load(&parked_now), 3);
    ts_http_server_destroy(srv);
    for (int i = 0; i < 3; i++) {
        char *r = NULL;
        pthread_join(clients[i], (void **)&r);
        TS_CHECK_INT_EQ(status_of(r), 503);
        TS_CHECK(strstr(r, "shutting down") != NULL);
        free(r);
    }
    ts_log_set_sink(NULL, NULL);
    return ts_test_finish();
}
