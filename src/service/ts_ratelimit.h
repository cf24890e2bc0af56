/*
 * ts_ratelimit.h - fair use without remembering who anyone is (POLICY.md
 * P12).
 *
 * Each client gets two token buckets, "expensive" (generation work) and
 * "cheap" (everything else). A client is not its address: it is a keyed
 * BLAKE2b hash of the address under a key that exists only in process memory
 * and rotates (default hourly); at each rotation every bucket keyed under the
 * old key is dropped, so nothing links a client across rotations. IPv6
 * clients are grouped by their /64 (one subscriber usually owns a whole /64).
 * X-Forwarded-For is believed only when the direct peer is in the trusted
 * proxies list; then the rightmost address that is not itself a trusted proxy
 * is the client. The table is bounded: when full, the least recently used
 * bucket is evicted.
 *
 *     ts_ratelimit_options o;
 *     ts_ratelimit_options_default(&o);
 *     o.trusted_proxies = cfg.trusted_proxies;
 *     ts_ratelimit *rl;
 *     ts_ratelimit_create(&o, &rl, &err);
 *
 *     ts_client_id who;
 *     ts_ratelimit_identify(rl, peer_sockaddr, xff_header_or_NULL, &who);
 *     ts_ratelimit_decision d;
 *     ts_ratelimit_take(rl, &who, ts_route_is_expensive(route), 1.0, &d);
 *     if (!d.allowed) reply 429 with "Retry-After: d.retry_after_s";
 *
 *     if (!ts_ratelimit_conn_enter(rl, &who)) reply 429/close;   // per connection
 *     ...
 *     ts_ratelimit_conn_leave(rl, &who);
 *
 * A ts_client_id is opaque bytes: never log it, never put it in a metric.
 * Time comes from ts_clock_now_ms (tests advance it). Thread safety: all
 * functions are thread-safe (one mutex; the work under it is O(1)).
 */
#ifndef TS_RATELIMIT_H
#define TS_RATELIMIT_H

#include <stdint.h>
#include <sys/socket.h>

#include "ts_error.h"

#define TS_RATELIMIT_MAX_PROXIES 32

typedef struct ts_ratelimit_options {
    double expensive_per_minute; /* refill rate of the expensive bucket */
    double expensive_burst;      /* its capacity */
    double cheap_per_minute;
    double cheap_burst;
    int max_conns_per_client;    /* 0: no cap */
    int max_clients;             /* table size; the least recently used is evicted */
    int64_t key_rotation_ms;     /* how long one hash key lives */
    const char *trusted_proxies; /* "10.0.0.0/8,::1/128" or NULL/"" */
} ts_ratelimit_options;

/* expensive 6/min burst 3, cheap 600/min burst 120, 16 connections, 65536
 * clients, hourly rotation, no trusted proxies. */
void ts_ratelimit_options_default(ts_ratelimit_options *o);

/* A client as the limiter knows it: a keyed hash plus the key epoch. */
typedef struct ts_client_id {
    uint8_t hash[16];
    uint64_t epoch;
} ts_client_id;

typedef struct ts_ratelimit_decision {
    int allowed;
    int retry_after_s; /* when denied: whole seconds until cost is available (>= 1) */
    double remaining;  /* tokens left in the bucket after this call */
} ts_ratelimit_decision;

typedef struct ts_ratelimit ts_ratelimit;

/* TS_ERR_ARG when trusted_proxies does not parse (the message names the bad
 * entry) or a rate is not positive. */
ts_status ts_ratelimit_create(const ts_ratelimit_options *opts, ts_ratelimit **out, ts_error *err);
void ts_ratelimit_destroy(ts_ratelimit *rl); /* wipes the key */

/* Derives the client from the direct peer and the X-Forwarded-For value
 * (NULL when absent). Rotates the key first when its time is up. */
void ts_ratelimit_identify(ts_ratelimit *rl, const struct sockaddr *peer, const char *xff,
                           ts_client_id *out);

/* 1 when the direct peer is in the trusted proxies list, so headers that
 * proxy sets (X-Forwarded-For, X-Forwarded-Proto) may be believed; else 0.
 * The list is fixed at creation: no lock is taken. */
int ts_ratelimit_peer_trusted(const ts_ratelimit *rl, const struct sockaddr *peer);

/* Same, from a textual peer address ("192.0.2.7", "2001:db8::1"); for tests
 * and for servers that only have text. TS_ERR_ARG when it does not parse. */
ts_status ts_ratelimit_identify_text(ts_ratelimit *rl, const char *peer, const char *xff,
                                     ts_client_id *out);

/* Takes cost tokens from the client's expensive (expensive != 0) or cheap
 * bucket. A cost larger than the burst is never allowed (retry_after_s then
 * says when a full bucket would be there; callers should cap cost). */
void ts_ratelimit_take(ts_ratelimit *rl, const ts_client_id *who, int expensive, double cost,
                       ts_ratelimit_decision *d);

/* Counts a connection; returns 0 (and counts nothing) when the client is at
 * max_conns_per_client. Every successful enter needs one leave. */
int ts_ratelimit_conn_enter(ts_ratelimit *rl, const ts_client_id *who);
void ts_ratelimit_conn_leave(ts_ratelimit *rl, const ts_client_id *who);

/* Clients in the table now, and the current key epoch (tests). */
int ts_ratelimit_clients(ts_ratelimit *rl);
uint64_t ts_ratelimit_epoch(ts_ratelimit *rl);

/* Parses a CIDR list; TS_ERR_ARG naming the bad entry. Used by config
 * validation. */
ts_status ts_ratelimit_check_cidrs(const char *list, ts_error *err);

#endif
