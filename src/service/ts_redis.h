/*
 * ts_redis.h - the shared backend for running past one machine: encrypted
 * ephemeral items as Redis keys with expiry, and a job stream with a
 * consumer group, so API nodes and worker nodes share jobs (DESIGN.md
 * "Scaling past one machine").
 *
 * Design note - what Redis ever sees, and why that keeps POLICY.md P1-P5:
 *  - Only ciphertext. An item is sealed with XChaCha20-Poly1305 under its own
 *    random key (the item id is the associated data, so a ciphertext cannot
 *    be moved to another id); the key goes back to the caller, who keeps it
 *    in memory or puts it inside a job message.
 *  - Job messages (which carry the prompt and the item keys) are sealed
 *    under a cluster key that every node receives at start (from the
 *    operator, never stored in Redis) and that lives in locked memory.
 *  - Every item key in Redis has an expiry (PEXPIRE) of at most 24h; Redis
 *    drops it without our help, also if every node crashed (P2, P3).
 *  - Redis must not persist: ts_redis_connect refuses a server whose
 *    CONFIG says `save` is set or `appendonly` is on, so nothing reaches a
 *    disk (P4, P5). A server that refuses CONFIG GET is refused too.
 *
 *     ts_redis *r;
 *     ts_redis_connect(&(ts_redis_options){.host = "127.0.0.1", .port = 6379,
 *                      .prefix = "ts", .cluster_key = key}, &r, &err);
 *     char id[TS_REDIS_ID_SIZE]; uint8_t k[TS_REDIS_KEY_BYTES];
 *     ts_redis_item_put(r, bytes, len, 3600000, id, k, &err);
 *     ts_redis_queue_push(r, msg, msg_len, entry, &err);          // API node
 *     ts_redis_queue_claim(r, "worker-1", 1000, &m, &m_len, entry, &err);  // worker
 *     ts_redis_item_get(r, id, k, &data, &n, &err);
 *     ts_redis_queue_ack(r, entry, &err);
 *     ts_redis_close(r);
 *
 * Scope, stated plainly: this module is the transport (items, stream,
 * persistence check, sealing); `serve` does not yet split into API and
 * worker roles over it, and a claimed message whose worker dies stays
 * pending in the group (no XAUTOCLAIM hand-over yet).
 *
 * Thread safety: one connection per ts_redis; use one per thread.
 */
#ifndef TS_REDIS_H
#define TS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#define TS_REDIS_ID_SIZE    33 /* 32 hex characters + NUL */
#define TS_REDIS_KEY_BYTES  32
#define TS_REDIS_ENTRY_SIZE 64 /* stream entry id "1700000000000-0" + NUL */
#define TS_REDIS_MAX_ITEM   (256u * 1024 * 1024)

typedef struct ts_redis_options {
    const char *host; /* the Redis server */
    int port;
    const char *prefix;         /* key namespace, e.g. "ts"; letters, digits, '_' and '-' */
    const uint8_t *cluster_key; /* TS_REDIS_KEY_BYTES shared by all nodes; copied */
    int timeout_ms;             /* connect and command timeout; 0: 2000 */
} ts_redis_options;

typedef struct ts_redis ts_redis;

/* Connects, checks that the server does not persist, and creates the job
 * stream's consumer group if needed. TS_ERR_IO when unreachable,
 * TS_ERR_REFUSED when the server persists to disk (the message says which
 * setting), TS_ERR_ARG for bad options. */
ts_status ts_redis_connect(const ts_redis_options *opts, ts_redis **out, ts_error *err);

/* Closes the connection and wipes the cluster key. */
void ts_redis_close(ts_redis *r);

/* ------------------------------------------------------------- items */

/* Seals len bytes under a fresh key and stores them with an expiry of ttl_ms
 * (1 ms .. 24 h). Writes the new id and the key (which the caller must keep
 * in memory only, or seal into a job message). */
ts_status ts_redis_item_put(ts_redis *r, const void *data, size_t len, int64_t ttl_ms,
                            char id_out[TS_REDIS_ID_SIZE], uint8_t key_out[TS_REDIS_KEY_BYTES],
                            ts_error *err);

/* Opens an item into a malloc'd buffer (release with ts_secure_free).
 * TS_ERR_NOT_FOUND when it expired or was destroyed; TS_ERR_FORMAT when the
 * key is wrong or the ciphertext was altered. */
ts_status ts_redis_item_get(ts_redis *r, const char *id, const uint8_t key[TS_REDIS_KEY_BYTES],
                            void **data, size_t *len, ts_error *err);

/* Milliseconds the item has left; -1 when it does not exist. */
int64_t ts_redis_item_ttl_ms(ts_redis *r, const char *id);

/* Deletes the item now. TS_ERR_NOT_FOUND when there was none. */
ts_status ts_redis_item_destroy(ts_redis *r, const char *id, ts_error *err);

/* ------------------------------------------------------------- queue */

/* Seals msg under the cluster key and appends it to the job stream. */
ts_status ts_redis_queue_push(ts_redis *r, const void *msg, size_t len,
                              char entry_out[TS_REDIS_ENTRY_SIZE], ts_error *err);

/* Claims the next unclaimed message for this consumer, waiting up to
 * block_ms (0: do not wait). TS_OK: *msg (malloc'd, release with
 * ts_secure_free) and entry are set. TS_ERR_BUSY: nothing to claim.
 * TS_ERR_FORMAT: a message did not open under the cluster key (it is
 * acknowledged and dropped). */
ts_status ts_redis_queue_claim(ts_redis *r, const char *consumer, int block_ms, void **msg,
                               size_t *len, char entry[TS_REDIS_ENTRY_SIZE], ts_error *err);

/* Acknowledges and deletes a finished message (its sealed prompt is gone
 * from Redis at once). */
ts_status ts_redis_queue_ack(ts_redis *r, const char *entry, ts_error *err);

/* Messages in the stream (claimed or not). -1 on error. */
long ts_redis_queue_length(ts_redis *r);

#endif
