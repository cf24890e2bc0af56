/* redis_test.c - the Redis backend against a real redis-server started here
 * on a random loopback port with persistence off: Redis holds only sealed
 * bytes, items carry an expiry, a job message goes to exactly one worker,
 * and a server that persists to disk is refused. */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ts_redis.h"
#include "ts_test.h"

static const char marker[] = "SEALED-MARKER-c0ffee";
static char tmp_dir[256];

/* A port that was free a moment ago on 127.0.0.1. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts redis-server on loopback; save is "" (off) or a save rule. */
static pid_t start_redis(int port, const char *save)
{
    char port_s[16], log_path[300];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(log_path, sizeof log_path, "%s/redis.log", tmp_dir);
    pid_t pid = fork();
    if (pid == 0) {
        execl(TS_REDIS_SERVER, TS_REDIS_SERVER, "--port", port_s, "--bind", "127.0.0.1", "--save",
              save, "--appendonly", "no", "--dir", tmp_dir, "--loglevel", "warning", "--logfile",
              log_path, (char *)NULL);
        _exit(127);
    }
    /* Wait until it answers (bounded; a readiness wait, not a time check). */
    for (int i = 0; i < 200; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return pid;
        } else if (c) {
            redisFree(c);
        }
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_redis(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static int port;
static uint8_t cluster_key[TS_REDIS_KEY_BYTES];

static ts_redis *node(const uint8_t *key)
{
    ts_redis_options o = {
        .host = "127.0.0.1", .port = port, .prefix = "tstest", .cluster_key = key};
    ts_redis *r = NULL;
    ts_error err;
    if (ts_redis_connect(&o, &r, &err) != TS_OK)
        fprintf(stderr, "connect: %s\n", err.message);
    return r;
}

static void test_items(void)
{
    ts_redis *r = node(cluster_key);
    TS_CHECK(r != NULL);
    if (!r)
        return;
    ts_error err;
    char payload[4000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = marker[i % (sizeof marker - 1)];
    char id[TS_REDIS_ID_SIZE];
    uint8_t key[TS_REDIS_KEY_BYTES];
    TS_CHECK_INT_EQ(ts_redis_item_put(r, payload, sizeof payload, 3600000, id, key, &err), TS_OK);

    /* What Redis holds: no plaintext, and an expiry. */
    redisContext *raw = redisConnect("127.0.0.1", port);
    redisReply *rep = redisCommand(raw, "GET tstest:item:%s", id);
    TS_CHECK(rep && rep->type == REDIS_REPLY_STRING);
    TS_CHECK(rep && !contains(rep->str, rep->len, marker));
    TS_CHECK(rep && !contains(rep->str, rep->len, "SEALED"));
    int64_t ttl = ts_redis_item_ttl_ms(r, id);
    TS_CHECK(ttl > 0 && ttl <= 3600000);

    void *data;
    size_t len;
    TS_CHECK_INT_EQ(ts_redis_item_get(r, id, key, &data, &len, &err), TS_OK);
    TS_CHECK(len == sizeof payload && memcmp(data, payload, len) == 0);
    free(data);

    /* A wrong key, or the same bytes under another id, do not open. */
    uint8_t wrong[TS_REDIS_KEY_BYTES];
    memcpy(wrong, key, sizeof wrong);
    wrong[0] ^= 1;
    TS_CHECK_INT_EQ(ts_redis_item_get(r, id, wrong, &data, &len, &err), TS_ERR_FORMAT);
    const char *other = "0123456789abcdef0123456789abcdef";
    redisReply *set =
        redisCommand(raw, "SET tstest:item:%s %b PX 60000", other, rep->str, (size_t)rep->len);
    freeReplyObject(set);
    TS_CHECK_INT_EQ(ts_redis_item_get(r, other, key, &data, &len, &err), TS_ERR_FORMAT);
    freeReplyObject(rep);

    TS_CHECK_INT_EQ(ts_redis_item_destroy(r, id, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_redis_item_get(r, id, key, &data, &len, &err), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_redis_item_destroy(r, id, &err), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_redis_item_ttl_ms(r, id), -1);
    TS_CHECK_INT_EQ(ts_redis_item_get(r, "../../etc", key, &data, &len, &err), TS_ERR_NOT_FOUND);

    /* Lifetimes past 24 hours are refused. */
    TS_CHECK_INT_EQ(ts_redis_item_put(r, "x", 1, 25LL * 3600000, id, key, &err), TS_ERR_ARG);
    redisFree(raw);
    ts_redis_close(r);
}

static void test_queue(void)
{
    ts_redis *api = node(cluster_key), *w1 = node(cluster_key), *w2 = node(cluster_key);
    TS_CHECK(api && w1 && w2);
    if (!api || !w1 || !w2)
        return;
    ts_error err;
    char entry[TS_REDIS_ENTRY_SIZE];
    char msg[64];
    for (int i = 0; i < 3; i++) {
        snprintf(msg, sizeof msg, "%s job %d", marker, i);
        TS_CHECK_INT_EQ(ts_redis_queue_push(api, msg, strlen(msg) + 1, entry, &err), TS_OK);
    }
    TS_CHECK_INT_EQ(ts_redis_queue_length(api), 3);

    /* The stream holds sealed bytes only. */
    redisContext *raw = redisConnect("127.0.0.1", port);
    redisReply *rep = redisCommand(raw, "XRANGE tstest:jobs - +");
    TS_CHECK(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3);
    for (size_t i = 0; rep && i < rep->elements; i++) {
        redisReply *v = rep->element[i]->element[1]->element[1];
        TS_CHECK(!contains(v->str, v->len, "SEALED"));
    }
    freeReplyObject(rep);

    /* Each message goes to exactly one worker, in order. */
    void *m;
    size_t len;
    char e1[TS_REDIS_ENTRY_SIZE], e2[TS_REDIS_ENTRY_SIZE];
    TS_CHECK_INT_EQ(ts_redis_queue_claim(w1, "w1", 0, &m, &len, e1, &err), TS_OK);
    TS_CHECK(m && strstr(m, "job 0") != NULL);
    free(m);
    TS_CHECK_INT_EQ(ts_redis_queue_claim(w2, "w2", 0, &m, &len, e2, &err), TS_OK);
    TS_CHECK(m && strstr(m, "job 1") != NULL);
    free(m);
    TS_CHECK(strcmp(e1, e2) != 0);
    TS_CHECK_INT_EQ(ts_redis_queue_ack(w1, e1, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_redis_queue_ack(w2, e2, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_redis_queue_length(api), 1);
    TS_CHECK_INT_EQ(ts_redis_queue_claim(w1, "w1", 100, &m, &len, e1, &err), TS_OK);
    TS_CHECK(m && strstr(m, "job 2") != NULL);
    free(m);
    ts_redis_queue_ack(w1, e1, &err);
    TS_CHECK_INT_EQ(ts_redis_queue_claim(w2, "w2", 0, &m, &len, e2, &err), TS_ERR_BUSY);
    TS_CHECK_INT_EQ(ts_redis_queue_length(api), 0);

    /* A node with another cluster key cannot read the jobs: the message is
     * refused and dropped, not handed out in the clear. */
    uint8_t other_key[TS_REDIS_KEY_BYTES];
    memset(other_key, 7, sizeof other_key);
    ts_redis *stranger = node(other_key);
    TS_CHECK_INT_EQ(ts_redis_queue_push(stranger, "hello", 6, entry, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_redis_queue_claim(w1, "w1", 0, &m, &len, e1, &err), TS_ERR_FORMAT);
    TS_CHECK(m == NULL);
    TS_CHECK_INT_EQ(ts_redis_queue_length(api), 0);
    ts_redis_close(stranger);
    redisFree(raw);
    ts_redis_close(api);
    ts_redis_close(w1);
    ts_redis_close(w2);
}

static void test_persistence_refused(void)
{
    ts_error err;
    /* Append-only switched on at run time: refused. */
    redisContext *raw = redisConnect("127.0.0.1", port);
    freeReplyObject(redisCommand(raw, "CONFIG SET appendonly yes"));
    ts_redis_options o = {
        .host = "127.0.0.1", .port = port, .prefix = "tstest", .cluster_key = cluster_key};
    ts_redis *r = NULL;
    TS_CHECK_INT_EQ(ts_redis_connect(&o, &r, &err), TS_ERR_REFUSED);
    TS_CHECK(strstr(err.message, "appendonly no") != NULL);
    freeReplyObject(redisCommand(raw, "CONFIG SET appendonly no"));
    /* Snapshots configured: refused. */
    freeReplyObject(redisCommand(raw, "CONFIG SET save %s", "3600 1"));
    TS_CHECK_INT_EQ(ts_redis_connect(&o, &r, &err), TS_ERR_REFUSED);
    TS_CHECK(strstr(err.message, "--save ''") != NULL);
    freeReplyObject(redisCommand(raw, "CONFIG SET save %s", ""));
    TS_CHECK_INT_EQ(ts_redis_connect(&o, &r, &err), TS_OK);
    ts_redis_close(r);
    redisFree(raw);

    /* Nothing listening: a clear I/O error. */
    o.port = free_port();
    TS_CHECK_INT_EQ(ts_redis_connect(&o, &r, &err), TS_ERR_IO);
    o.port = port;
    o.prefix = "bad prefix";
    TS_CHECK_INT_EQ(ts_redis_connect(&o, &r, &err), TS_ERR_ARG);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ts-redis-test-XXXXXX");
    if (!mkdtemp(tmp_dir))
        return 1;
    pid_t pid = -1;
    for (int attempt = 0; attempt < 3 && pid < 0; attempt++) {
        port = free_port();
        pid = start_redis(port, "");
    }
    TS_CHECK(pid > 0);
    if (pid > 0) {
        memset(cluster_key, 42, sizeof cluster_key);
        TS_RUN(test_items);
        TS_RUN(test_queue);
        TS_RUN(test_persistence_refused);
        stop_redis(pid);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return ts_test_finish();
}
