/* ratelimit_test.c - token-bucket arithmetic over injected time, route
 * costs, IPv6 /64 grouping, trusted proxies, key rotation, eviction, and
 * that nothing identifying reaches the log (POLICY.md P7, P12). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ts_clock.h"
#include "ts_log.h"
#include "ts_ratelimit.h"
#include "ts_test.h"

static char log_text[16384];
static size_t log_len;

static void log_sink(void *user, ts_log_level level, const char *line)
{
    size_t n = strlen(line);
    if (log_len + n + 2 < sizeof log_text) {
        memcpy(log_text + log_len, line, n);
        log_len += n;
        log_text[log_len++] = '\n';
        log_text[log_len] = '\0';
    }
}

static ts_ratelimit *make(double exp_per_min, double exp_burst, const char *proxies)
{
    ts_ratelimit_options o;
    ts_ratelimit_options_default(&o);
    o.expensive_per_minute = exp_per_min;
    o.expensive_burst = exp_burst;
    o.cheap_per_minute = 60;
    o.cheap_burst = 10;
    o.trusted_proxies = proxies;
    ts_ratelimit *rl = NULL;
    ts_error err;
    if (ts_ratelimit_create(&o, &rl, &err) != TS_OK)
        fprintf(stderr, "create: %s\n", err.message);
    return rl;
}

static ts_client_id who(ts_ratelimit *rl, const char *addr, const char *xff)
{
    ts_client_id id;
    memset(&id, 0, sizeof id);
    TS_CHECK_INT_EQ(ts_ratelimit_identify_text(rl, addr, xff, &id), TS_OK);
    return id;
}

static int same(const ts_client_id *a, const ts_client_id *b)
{
    return memcmp(a->hash, b->hash, sizeof a->hash) == 0 && a->epoch == b->epoch;
}

static void test_refill_arithmetic(void)
{
    /* 6 per minute = one token every 10 s; burst 3. */
    ts_ratelimit *rl = make(6, 3, NULL);
    ts_client_id c = who(rl, "192.0.2.7", NULL);
    ts_ratelimit_decision d;
    for (int i = 0; i < 3; i++) {
        ts_ratelimit_take(rl, &c, 1, 1.0, &d);
        TS_CHECK_INT_EQ(d.allowed, 1);
    }
    TS_CHECK_NEAR(d.remaining, 0.0, 0.01);
    ts_ratelimit_take(rl, &c, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 0);
    TS_CHECK_INT_EQ(d.retry_after_s, 10);

    /* 4 s later 0.4 tokens: still no, 6 s to go. */
    ts_clock_advance_ms(4000);
    ts_ratelimit_take(rl, &c, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 0);
    TS_CHECK_INT_EQ(d.retry_after_s, 6);
    TS_CHECK_NEAR(d.remaining, 0.4, 0.01);
    ts_clock_advance_ms(6000);
    ts_ratelimit_take(rl, &c, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 1);

    /* Much later the bucket is full, not overfull. (Tolerances allow for the
     * real milliseconds that pass between calls.) */
    ts_clock_advance_ms(100000);
    ts_ratelimit_take(rl, &c, 1, 0.0, &d);
    TS_CHECK_NEAR(d.remaining, 3.0, 0.01);

    /* Costs: a cost of 2 takes two tokens; a cost above the burst is never
     * allowed, and Retry-After says when the bucket would be full. */
    ts_ratelimit_take(rl, &c, 1, 2.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 1);
    TS_CHECK_NEAR(d.remaining, 1.0, 0.01);
    ts_ratelimit_take(rl, &c, 1, 5.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 0);
    TS_CHECK_INT_EQ(d.retry_after_s, 20);

    /* The cheap bucket is separate: 10 at once, one per second after. */
    for (int i = 0; i < 10; i++) {
        ts_ratelimit_take(rl, &c, 0, 1.0, &d);
        TS_CHECK_INT_EQ(d.allowed, 1);
    }
    ts_ratelimit_take(rl, &c, 0, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 0);
    TS_CHECK_INT_EQ(d.retry_after_s, 1);
    ts_ratelimit_destroy(rl);
    ts_clock_advance_ms(-(4000 + 6000 + 100000));
}

static void test_grouping(void)
{
    ts_ratelimit *rl = make(6, 1, NULL);
    ts_client_id a = who(rl, "2001:db8:1:2:aaaa::1", NULL);
    ts_client_id b = who(rl, "2001:db8:1:2:ffff:ffff:ffff:ffff", NULL);
    ts_client_id c = who(rl, "2001:db8:1:3::1", NULL);
    TS_CHECK(same(&a, &b));  /* same /64 */
    TS_CHECK(!same(&a, &c)); /* next /64 */
    ts_client_id v4a = who(rl, "198.51.100.1", NULL);
    ts_client_id v4b = who(rl, "198.51.100.2", NULL);
    ts_client_id mapped = who(rl, "::ffff:198.51.100.1", NULL);
    TS_CHECK(!same(&v4a, &v4b)); /* IPv4 is per address */
    TS_CHECK(same(&v4a, &mapped));

    /* Sharing a /64 means sharing a bucket. */
    ts_ratelimit_decision d;
    ts_ratelimit_take(rl, &a, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 1);
    ts_ratelimit_take(rl, &b, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 0);
    ts_ratelimit_take(rl, &c, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 1);

    /* The sockaddr entry point agrees with the text one. */
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:1:2::99", &sa.sin6_addr);
    ts_client_id s;
    ts_ratelimit_identify(rl, (struct sockaddr *)&sa, NULL, &s);
    TS_CHECK(same(&s, &a));
    ts_ratelimit_destroy(rl);
}

static void test_trusted_proxies(void)
{
    ts_ratelimit *rl = make(6, 1, "127.0.0.1/32, 10.0.0.0/8");
    ts_client_id direct = who(rl, "203.0.113.5", NULL);

    /* From a trusted proxy, the rightmost untrusted hop is the client. */
    ts_client_id via = who(rl, "127.0.0.1", "203.0.113.5");
    TS_CHECK(same(&via, &direct));
    ts_client_id chain = who(rl, "10.1.2.3", "198.51.100.9, 203.0.113.5, 10.0.0.7");
    TS_CHECK(same(&chain, &direct));

    /* From anyone else the header is ignored: a client cannot pick an
     * identity by sending X-Forwarded-For. */
    ts_client_id spoof = who(rl, "198.51.100.20", "203.0.113.5");
    ts_client_id self = who(rl, "198.51.100.20", NULL);
    TS_CHECK(same(&spoof, &self));
    TS_CHECK(!same(&spoof, &direct));

    /* Garbage in the header stops at the last good hop (the proxy). */
    ts_client_id junk = who(rl, "127.0.0.1", "not-an-address");
    ts_client_id proxy = who(rl, "127.0.0.1", NULL);
    TS_CHECK(same(&junk, &proxy));

    /* Whether a peer's forwarded headers may be believed at all, from the
     * socket address (IPv4, IPv6 and IPv4-mapped IPv6). */
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.9.8.7", &v4.sin_addr);
    TS_CHECK(ts_ratelimit_peer_trusted(rl, (struct sockaddr *)&v4));
    inet_pton(AF_INET, "198.51.100.20", &v4.sin_addr);
    TS_CHECK(!ts_ratelimit_peer_trusted(rl, (struct sockaddr *)&v4));
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
    TS_CHECK(ts_ratelimit_peer_trusted(rl, (struct sockaddr *)&v6));
    inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    TS_CHECK(!ts_ratelimit_peer_trusted(rl, (struct sockaddr *)&v6));
    TS_CHECK(!ts_ratelimit_peer_trusted(rl, NULL));
    ts_ratelimit_destroy(rl);

    ts_error err;
    TS_CHECK_INT_EQ(ts_ratelimit_check_cidrs("10.0.0.0/8,::1/128", &err), TS_OK);
    TS_CHECK_INT_EQ(ts_ratelimit_check_cidrs("10.0.0.0/33", &err), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "10.0.0.0/33") != NULL);
    TS_CHECK_INT_EQ(ts_ratelimit_check_cidrs("example.com", &err), TS_ERR_ARG);
}

static void test_rotation(void)
{
    ts_ratelimit *rl = make(6, 1, NULL);
    uint64_t epoch = ts_ratelimit_epoch(rl);
    ts_client_id before = who(rl, "192.0.2.50", NULL);
    ts_ratelimit_decision d;
    ts_ratelimit_take(rl, &before, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 1);
    ts_ratelimit_take(rl, &before, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 0);
    TS_CHECK_INT_EQ(ts_ratelimit_clients(rl), 1);

    ts_clock_advance_ms(3600 * 1000);
    ts_client_id after = who(rl, "192.0.2.50", NULL);
    TS_CHECK_INT_EQ(ts_ratelimit_epoch(rl), epoch + 1);
    /* A new key: the same address hashes to something unrelated, and the
     * old buckets are gone. */
    TS_CHECK(memcmp(before.hash, after.hash, sizeof after.hash) != 0);
    TS_CHECK_INT_EQ(ts_ratelimit_clients(rl), 0);
    ts_ratelimit_take(rl, &after, 1, 1.0, &d);
    TS_CHECK_INT_EQ(d.allowed, 1);
    ts_ratelimit_destroy(rl);
    ts_clock_advance_ms(-3600 * 1000);
}

static void test_connections_and_eviction(void)
{
    ts_ratelimit_options o;
    ts_ratelimit_options_default(&o);
    o.max_conns_per_client = 2;
    o.max_clients = 4;
    o.cheap_per_minute = 1e-6; /* no refill worth measuring during the test */
    ts_ratelimit *rl;
    ts_error err;
    TS_CHECK_INT_EQ(ts_ratelimit_create(&o, &rl, &err), TS_OK);
    ts_client_id c = who(rl, "192.0.2.1", NULL);
    TS_CHECK_INT_EQ(ts_ratelimit_conn_enter(rl, &c), 1);
    TS_CHECK_INT_EQ(ts_ratelimit_conn_enter(rl, &c), 1);
    TS_CHECK_INT_EQ(ts_ratelimit_conn_enter(rl, &c), 0);
    ts_ratelimit_conn_leave(rl, &c);
    TS_CHECK_INT_EQ(ts_ratelimit_conn_enter(rl, &c), 1);

    /* The table holds at most 4 clients; the least recently used goes. */
    char addr[32];
    ts_ratelimit_decision d;
    for (int i = 2; i < 12; i++) {
        snprintf(addr, sizeof addr, "192.0.2.%d", i);
        ts_client_id x = who(rl, addr, NULL);
        ts_ratelimit_take(rl, &x, 0, 1.0, &d);
        TS_CHECK(ts_ratelimit_clients(rl) <= 4);
    }
    TS_CHECK_INT_EQ(ts_ratelimit_clients(rl), 4);
    /* The three most recent clients are still found after evictions shuffled
     * the probe chains: each has one token fewer than a fresh bucket. */
    for (int i = 9; i < 12; i++) {
        snprintf(addr, sizeof addr, "192.0.2.%d", i);
        ts_client_id x = who(rl, addr, NULL);
        ts_ratelimit_take(rl, &x, 0, 0.0, &d);
        TS_CHECK_NEAR(d.remaining, o.cheap_burst - 1, 0.01);
    }
    ts_ratelimit_destroy(rl);

    o.expensive_per_minute = 0;
    TS_CHECK_INT_EQ(ts_ratelimit_create(&o, &rl, &err), TS_ERR_ARG);
    o.expensive_per_minute = 6;
    o.trusted_proxies = "10.0.0.0/8,bogus";
    TS_CHECK_INT_EQ(ts_ratelimit_create(&o, &rl, &err), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "bogus") != NULL);
}

/* A flood of new addresses: the table stays bounded, the most recent
 * clients and a client that keeps coming back are never evicted, and every
 * entry stays findable after thousands of evictions reshuffle the probe
 * clusters. */
static void test_flood(void)
{
    ts_ratelimit_options o;
    ts_ratelimit_options_default(&o);
    o.max_clients = 50;
    o.cheap_per_minute = 1e-6;
    ts_ratelimit *rl;
    ts_error err;
    TS_CHECK_INT_EQ(ts_ratelimit_create(&o, &rl, &err), TS_OK);
    ts_client_id hot = who(rl, "2001:db8:ffff::1", NULL);
    ts_ratelimit_decision d;
    ts_ratelimit_take(rl, &hot, 0, 1.0, &d);
    char addr[48];
    const int total = 5000;
    for (int i = 0; i < total; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        ts_client_id x = who(rl, addr, NULL);
        ts_ratelimit_take(rl, &x, 0, 1.0, &d);
        if (i % 10 == 0)
            ts_ratelimit_take(rl, &hot, 0, 0.0, &d);
    }
    TS_CHECK_INT_EQ(ts_ratelimit_clients(rl), 50);
    ts_ratelimit_take(rl, &hot, 0, 0.0, &d);
    TS_CHECK_NEAR(d.remaining, o.cheap_burst - 1, 0.01); /* never evicted */
    /* The 49 newest clients, oldest first (each lookup makes it the newest,
     * so if all are there nothing is evicted while checking). */
    int missing = 0;
    for (int i = total - 49; i < total; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        ts_client_id x = who(rl, addr, NULL);
        ts_ratelimit_take(rl, &x, 0, 0.0, &d);
        missing += d.remaining > o.cheap_burst - 0.5;
    }
    TS_CHECK_INT_EQ(missing, 0);
    ts_ratelimit_destroy(rl);
}

int main(void)
{
    ts_log_set_sink(log_sink, NULL);
    ts_log_set_level(TS_LOG_DEBUG);
    TS_RUN(test_refill_arithmetic);
    TS_RUN(test_grouping);
    TS_RUN(test_trusted_proxies);
    TS_RUN(test_rotation);
    TS_RUN(test_connections_and_eviction);
    TS_RUN(test_flood);
    ts_log_set_sink(NULL, NULL);
    /* The limiter never logs: no address, hash or key can leak that way. */
    TS_CHECK_INT_EQ(log_len, 0);
    return ts_test_finish();
}
