/*
 * ts_redis.c - sealed items and a sealed job stream on Redis (see
 * ts_redis.h for what Redis may and may not see).
 *
 * Wire layout of a sealed value: nonce (24 bytes) | ciphertext | tag (16),
 * XChaCha20-Poly1305 (IETF AEAD). Items use their id as associated data;
 * job messages use the fixed string "ts-job" and the cluster key.
 */
#include "ts_redis.h"

#include <hiredis/hiredis.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ts_config.h"

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define JOB_AD      "ts-job"
#define GROUP       "workers"

struct ts_redis {
    redisContext *c;
    char prefix[64];
    char stream[96];
    uint8_t *cluster_key; /* sodium_malloc'd: locked, not dumpable */
};

/* ------------------------------------------------------------ helpers */

static ts_status reply_error(ts_redis *r, redisReply *reply, const char *what, ts_error *err)
{
    ts_status st;
    if (!reply)
        st = ts_error_set(err, TS_ERR_IO, "redis %s failed: %s", what,
                          r->c->errstr[0] ? r->c->errstr : "no reply");
    else
        st = ts_error_set(err, TS_ERR_IO, "redis %s failed: %.120s", what,
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    if (reply)
        freeReplyObject(reply);
    return st;
}

static int valid_prefix(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-'))
            return 0;
    return 1;
}

static int valid_id(const char *id)
{
    if (!id || strlen(id) != TS_REDIS_ID_SIZE - 1)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void item_key(const ts_redis *r, const char *id, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:item:%s", r->prefix, id);
}

/* Seals plain into a new buffer nonce | ciphertext | tag. */
static uint8_t *seal(const uint8_t *key, const void *plain, size_t len, const char *ad,
                     size_t *out_len)
{
    uint8_t *out = malloc(NONCE_BYTES + len + TAG_BYTES);
    if (!out)
        return NULL;
    randombytes_buf(out, NONCE_BYTES);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_BYTES, &clen, plain, len,
                                               (const uint8_t *)ad, strlen(ad), NULL, out, key);
    *out_len = NONCE_BYTES + (size_t)clen;
    return out;
}

/* Opens a sealed value into a new buffer; NULL when it does not
 * authenticate. */
static uint8_t *open_sealed(const uint8_t *key, const uint8_t *sealed, size_t len, const char *ad,
                            size_t *out_len)
{
    if (len < NONCE_BYTES + TAG_BYTES)
        return NULL;
    size_t plain_len = len - NONCE_BYTES - TAG_BYTES;
    uint8_t *out = malloc(plain_len ? plain_len : 1);
    if (!out)
        return NULL;
    unsigned long long mlen;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, sealed + NONCE_BYTES,
                                                   len - NONCE_BYTES, (const uint8_t *)ad,
                                                   strlen(ad), sealed, key) != 0) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)mlen;
    return out;
}

/* Reads one CONFIG value; returns 0 and fills value, -1 on failure. */
static int config_get(ts_redis *r, const char *name, char *value, size_t cap)
{
    redisReply *reply = redisCommand(r->c, "CONFIG GET %s", name);
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
             reply->element[1]->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(value, cap, "%s", reply->element[1]->str);
    if (reply)
        freeReplyObject(reply);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------- connect */

ts_status ts_redis_connect(const ts_redis_options *opts, ts_redis **out, ts_error *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return ts_error_set(err, TS_ERR_INTERNAL, "libsodium failed to initialise");
    if (!opts->host || opts->port <= 0 || opts->port > 65535)
        return ts_error_set(err, TS_ERR_ARG, "redis needs a host and a port");
    if (!valid_prefix(opts->prefix))
        return ts_error_set(err, TS_ERR_ARG,
                            "the redis key prefix must be 1-32 letters, digits, '_' or '-'");
    if (!opts->cluster_key)
        return ts_error_set(err, TS_ERR_ARG, "redis mode needs the cluster key");

    ts_redis *r = calloc(1, sizeof *r);
    if (!r)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    ts_status st = TS_OK;
    snprintf(r->prefix, sizeof r->prefix, "%s", opts->prefix);
    snprintf(r->stream, sizeof r->stream, "%s:jobs", opts->prefix);
    r->cluster_key = sodium_malloc(TS_REDIS_KEY_BYTES);
    if (!r->cluster_key) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(r->cluster_key, opts->cluster_key, TS_REDIS_KEY_BYTES);

    int ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    r->c = redisConnectWithTimeout(opts->host, opts->port, tv);
    if (!r->c || r->c->err) {
        st = ts_error_set(err, TS_ERR_IO, "cannot reach redis at %.100s:%d: %s", opts->host,
                          opts->port, r->c ? r->c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(r->c, tv);

    /* Nothing may reach a disk: no RDB snapshots, no append-only file. */
    char save[256], aof[32];
    if (config_get(r, "save", save, sizeof save) != 0 ||
        config_get(r, "appendonly", aof, sizeof aof) != 0) {
        st = ts_error_set(err, TS_ERR_REFUSED,
                          "redis refused CONFIG GET, so its persistence cannot be checked; "
                          "TogetherShot needs a server with save \"\" and appendonly no");
        goto fail;
    }
    if (save[0] != '\0') {
        st = ts_error_set(err, TS_ERR_REFUSED,
                          "redis saves snapshots to disk (save \"%.60s\"); run it with "
                          "--save '' so no user content reaches a disk",
                          save);
        goto fail;
    }
    if (strcmp(aof, "no") != 0) {
        st = ts_error_set(err, TS_ERR_REFUSED,
                          "redis writes an append-only file; run it with --appendonly no so "
                          "no user content reaches a disk");
        goto fail;
    }

    redisReply *reply = redisCommand(r->c, "XGROUP CREATE %s %s $ MKSTREAM", r->stream, GROUP);
    if (!reply || (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0)) {
        st = reply_error(r, reply, "XGROUP CREATE", err);
        goto fail;
    }
    freeReplyObject(reply);
    *out = r;
    return TS_OK;

fail:
    ts_redis_close(r);
    return st;
}

void ts_redis_close(ts_redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    if (r->cluster_key)
        sodium_free(r->cluster_key);
    free(r);
}

/* --------------------------------------------------------------- items */

ts_status ts_redis_item_put(ts_redis *r, const void *data, size_t len, int64_t ttl_ms,
                            char id_out[TS_REDIS_ID_SIZE], uint8_t key_out[TS_REDIS_KEY_BYTES],
                            ts_error *err)
{
    if (ttl_ms < 1 || ttl_ms > TS_RETENTION_MAX_MS)
        return ts_error_set(err, TS_ERR_ARG, "an item's lifetime must be 1 ms to 24 hours");
    if (len > TS_REDIS_MAX_ITEM || (!data && len))
        return ts_error_set(err, TS_ERR_LIMIT, "item of %zu bytes is too large", len);
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(id_out, TS_REDIS_ID_SIZE, raw, sizeof raw);
    crypto_aead_xchacha20poly1305_ietf_keygen(key_out);

    size_t sealed_len;
    uint8_t *sealed = seal(key_out, data, len, id_out, &sealed_len);
    if (!sealed)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory sealing an item");
    char key[128];
    item_key(r, id_out, key, sizeof key);
    redisReply *reply =
        redisCommand(r->c, "SET %s %b PX %lld NX", key, sealed, sealed_len, (long long)ttl_ms);
    free(sealed); /* ciphertext only */
    if (!reply || reply->type != REDIS_REPLY_STATUS) {
        sodium_memzero(key_out, TS_REDIS_KEY_BYTES);
        return reply_error(r, reply, "SET", err);
    }
    freeReplyObject(reply);
    return TS_OK;
}

ts_status ts_redis_item_get(ts_redis *r, const char *id, const uint8_t key[TS_REDIS_KEY_BYTES],
                            void **data, size_t *len, ts_error *err)
{
    *data = NULL;
    *len = 0;
    if (!valid_id(id))
        return ts_error_set(err, TS_ERR_NOT_FOUND, "no such item");
    char name[128];
    item_key(r, id, name, sizeof name);
    redisReply *reply = redisCommand(r->c, "GET %s", name);
    if (reply && reply->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        return ts_error_set(err, TS_ERR_NOT_FOUND, "no such item");
    }
    if (!reply || reply->type != REDIS_REPLY_STRING)
        return reply_error(r, reply, "GET", err);
    uint8_t *plain = open_sealed(key, (const uint8_t *)reply->str, reply->len, id, len);
    freeReplyObject(reply);
    if (!plain)
        return ts_error_set(err, TS_ERR_FORMAT, "stored item failed authentication");
    *data = plain;
    return TS_OK;
}

int64_t ts_redis_item_ttl_ms(ts_redis *r, const char *id)
{
    if (!valid_id(id))
        return -1;
    char name[128];
    item_key(r, id, name, sizeof name);
    redisReply *reply = redisCommand(r->c, "PTTL %s", name);
    int64_t ttl = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0
                      ? (int64_t)reply->integer
                      : -1;
    if (reply)
        freeReplyObject(reply);
    return ttl;
}

ts_status ts_redis_item_destroy(ts_redis *r, const char *id, ts_error *err)
{
    if (!valid_id(id))
        return ts_error_set(err, TS_ERR_NOT_FOUND, "no such item");
    char name[128];
    item_key(r, id, name, sizeof name);
    redisReply *reply = redisCommand(r->c, "DEL %s", name);
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return reply_error(r, reply, "DEL", err);
    long long n = reply->integer;
    freeReplyObject(reply);
    return n == 1 ? TS_OK : ts_error_set(err, TS_ERR_NOT_FOUND, "no such item");
}

/* --------------------------------------------------------------- queue */

ts_status ts_redis_queue_push(ts_redis *r, const void *msg, size_t len,
                              char entry_out[TS_REDIS_ENTRY_SIZE], ts_error *err)
{
    if (len > TS_REDIS_MAX_ITEM)
        return ts_error_set(err, TS_ERR_LIMIT, "job message of %zu bytes is too large", len);
    size_t sealed_len;
    uint8_t *sealed = seal(r->cluster_key, msg, len, JOB_AD, &sealed_len);
    if (!sealed)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory sealing a job");
    redisReply *reply = redisCommand(r->c, "XADD %s * m %b", r->stream, sealed, sealed_len);
    free(sealed);
    if (!reply || reply->type != REDIS_REPLY_STRING || reply->len >= TS_REDIS_ENTRY_SIZE)
        return reply_error(r, reply, "XADD", err);
    memcpy(entry_out, reply->str, reply->len + 1);
    freeReplyObject(reply);
    return TS_OK;
}

ts_status ts_redis_queue_claim(ts_redis *r, const char *consumer, int block_ms, void **msg,
                               size_t *len, char entry[TS_REDIS_ENTRY_SIZE], ts_error *err)
{
    *msg = NULL;
    *len = 0;
    if (!valid_prefix(consumer))
        return ts_error_set(err, TS_ERR_ARG, "bad consumer name");
    redisReply *reply;
    if (block_ms > 0)
        reply = redisCommand(r->c, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %d STREAMS %s >", GROUP,
                             consumer, block_ms, r->stream);
    else
        reply = redisCommand(r->c, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s >", GROUP, consumer,
                             r->stream);
    if (reply && reply->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        return TS_ERR_BUSY;
    }
    /* [[stream, [[id, [field, value]]]]] */
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return reply_error(r, reply, "XREADGROUP", err);
    redisReply *s = reply->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY || s->element[1]->elements < 1)
        return reply_error(r, reply, "XREADGROUP", err);
    redisReply *e = s->element[1]->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= TS_REDIS_ENTRY_SIZE ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements != 2 ||
        e->element[1]->element[1]->type != REDIS_REPLY_STRING)
        return reply_error(r, reply, "XREADGROUP", err);
    memcpy(entry, e->element[0]->str, e->element[0]->len + 1);
    redisReply *v = e->element[1]->element[1];
    uint8_t *plain = open_sealed(r->cluster_key, (const uint8_t *)v->str, v->len, JOB_AD, len);
    freeReplyObject(reply);
    if (!plain) {
        /* Not ours (another cluster key) or altered: drop it, say so. */
        ts_redis_queue_ack(r, entry, NULL);
        return ts_error_set(err, TS_ERR_FORMAT,
                            "a job message did not open under this node's cluster key; dropped");
    }
    *msg = plain;
    return TS_OK;
}

ts_status ts_redis_queue_ack(ts_redis *r, const char *entry, ts_error *err)
{
    redisReply *reply = redisCommand(r->c, "XACK %s %s %s", r->stream, GROUP, entry);
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return reply_error(r, reply, "XACK", err);
    freeReplyObject(reply);
    reply = redisCommand(r->c, "XDEL %s %s", r->stream, entry);
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return reply_error(r, reply, "XDEL", err);
    freeReplyObject(reply);
    return TS_OK;
}

long ts_redis_queue_length(ts_redis *r)
{
    redisReply *reply = redisCommand(r->c, "XLEN %s", r->stream);
    long n = reply && reply->type == REDIS_REPLY_INTEGER ? (long)reply->integer : -1;
    if (reply)
        freeReplyObject(reply);
    return n;
}
