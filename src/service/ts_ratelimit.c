/*
 * ts_ratelimit.c - per-client token buckets under a rotating keyed hash.
 *
 * The table is an open-addressing hash of fixed size (2 * max_clients slots,
 * linear probing, so at most half full) threaded by a doubly linked
 * recency list; when it holds max_clients entries, the least recently used
 * one is evicted and its probe cluster repaired by backward shifting. Every
 * operation is O(1) on average, also under a flood of new addresses. At key
 * rotation the whole table is cleared: buckets keyed under the old key could
 * never be found again anyway.
 */
#include "ts_ratelimit.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_clock.h"

typedef struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
} cidr;

typedef struct bucket_pair {
    int used;
    uint8_t hash[16];
    double tokens[2]; /* [0] cheap, [1] expensive */
    int64_t stamp_ms[2];
    int conns;
    int newer, older; /* recency list neighbours (slot indices), -1 at the ends */
} bucket_pair;

struct ts_ratelimit {
    pthread_mutex_t lock;
    ts_ratelimit_options opts;
    cidr proxies[TS_RATELIMIT_MAX_PROXIES];
    int n_proxies;
    uint8_t *key; /* crypto_generichash_KEYBYTES, sodium_malloc'd */
    uint64_t epoch;
    int64_t key_born_ms;
    bucket_pair *slots;
    int n_slots;
    int n_used;
    int newest, oldest; /* ends of the recency list, -1 when empty */
};

void ts_ratelimit_options_default(ts_ratelimit_options *o)
{
    memset(o, 0, sizeof *o);
    o->expensive_per_minute = 6;
    o->expensive_burst = 3;
    o->cheap_per_minute = 600;
    o->cheap_burst = 120;
    o->max_conns_per_client = 16;
    o->max_clients = 65536;
    o->key_rotation_ms = 3600 * 1000;
}

/* ------------------------------------------------------------ addresses */

/* Parses "a.b.c.d", "v6addr", optionally "/prefix". */
static int parse_cidr(const char *s, size_t n, cidr *out)
{
    char buf[64];
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    int prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || p < 0)
            return -1;
        prefix = (int)p;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix > 32)
            return -1;
        out->prefix = prefix < 0 ? 32 : prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix > 128)
            return -1;
        out->prefix = prefix < 0 ? 128 : prefix;
    } else {
        return -1;
    }
    return 0;
}

/* Folds IPv4-mapped IPv6 (::ffff:a.b.c.d) into plain IPv4. */
static void normalise(cidr *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->family == AF_INET6 && memcmp(a->addr, mapped, 12) == 0) {
        memmove(a->addr, a->addr + 12, 4);
        memset(a->addr + 4, 0, 12);
        a->family = AF_INET;
        a->prefix = a->prefix >= 96 ? a->prefix - 96 : 0;
    }
}

static int cidr_contains(const cidr *net, const cidr *a)
{
    if (net->family != a->family)
        return 0;
    int bits = net->prefix;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        if ((net->addr[i] & mask) != (a->addr[i] & mask))
            return 0;
    }
    return 1;
}

static int parse_list(const char *list, cidr *out, int max, int *count, ts_error *err)
{
    *count = 0;
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int blank = 1;
        for (size_t i = 0; i < n; i++)
            blank &= isspace((unsigned char)p[i]) != 0;
        if (!blank) {
            cidr c;
            if (parse_cidr(p, n, &c) != 0) {
                ts_error_set(err, TS_ERR_ARG,
                             "trusted proxy '%.*s' is not an address or CIDR (like 10.0.0.0/8 "
                             "or ::1/128)",
                             (int)(n > 60 ? 60 : n), p);
                return -1;
            }
            if (*count == max) {
                ts_error_set(err, TS_ERR_ARG, "more than %d trusted proxies", max);
                return -1;
            }
            normalise(&c);
            out[(*count)++] = c;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

ts_status ts_ratelimit_check_cidrs(const char *list, ts_error *err)
{
    cidr tmp[TS_RATELIMIT_MAX_PROXIES];
    int n;
    return parse_list(list, tmp, TS_RATELIMIT_MAX_PROXIES, &n, err) == 0 ? TS_OK : TS_ERR_ARG;
}

static int is_trusted(const ts_ratelimit *rl, const cidr *a)
{
    for (int i = 0; i < rl->n_proxies; i++)
        if (cidr_contains(&rl->proxies[i], a))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- table */

static void rotate_if_due(ts_ratelimit *rl, int64_t now)
{
    if (now - rl->key_born_ms < rl->opts.key_rotation_ms && now >= rl->key_born_ms)
        return;
    crypto_generichash_keygen(rl->key);
    rl->key_born_ms = now;
    rl->epoch++;
    sodium_memzero(rl->slots, (size_t)rl->n_slots * sizeof *rl->slots);
    rl->n_used = 0;
    rl->newest = rl->oldest = -1;
}

static void hash_client(ts_ratelimit *rl, const cidr *client, ts_client_id *out)
{
    /* The hashed input is the family and the grouped address: a whole IPv6
     * /64 is one client. */
    uint8_t input[17] = {0};
    input[0] = (uint8_t)client->family;
    if (client->family == AF_INET)
        memcpy(input + 1, client->addr, 4);
    else
        memcpy(input + 1, client->addr, 8);
    crypto_generichash(out->hash, sizeof out->hash, input, sizeof input, rl->key,
                       crypto_generichash_KEYBYTES);
    out->epoch = rl->epoch;
    sodium_memzero(input, sizeof input);
}

static int home_slot(const ts_ratelimit *rl, const uint8_t hash[16])
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (int)(h % (uint64_t)rl->n_slots);
}

static void recency_unlink(ts_ratelimit *rl, int i)
{
    bucket_pair *b = &rl->slots[i];
    if (b->newer >= 0)
        rl->slots[b->newer].older = b->older;
    else
        rl->newest = b->older;
    if (b->older >= 0)
        rl->slots[b->older].newer = b->newer;
    else
        rl->oldest = b->newer;
    b->newer = b->older = -1;
}

static void recency_push(ts_ratelimit *rl, int i)
{
    bucket_pair *b = &rl->slots[i];
    b->newer = -1;
    b->older = rl->newest;
    if (rl->newest >= 0)
        rl->slots[rl->newest].newer = i;
    rl->newest = i;
    if (rl->oldest < 0)
        rl->oldest = i;
}

/* Moves the entry in slot from to the empty slot to, keeping the recency
 * list pointing at it. */
static void move_slot(ts_ratelimit *rl, int from, int to)
{
    bucket_pair *b = &rl->slots[from];
    if (b->newer >= 0)
        rl->slots[b->newer].older = to;
    else
        rl->newest = to;
    if (b->older >= 0)
        rl->slots[b->older].newer = to;
    else
        rl->oldest = to;
    rl->slots[to] = *b;
    memset(b, 0, sizeof *b);
}

/* Deletes slot i and repairs its probe cluster (backward shift): every later
 * entry of the cluster whose home is not between the hole and itself moves
 * into the hole. */
static void delete_slot(ts_ratelimit *rl, int i)
{
    recency_unlink(rl, i);
    sodium_memzero(&rl->slots[i], sizeof rl->slots[i]);
    rl->n_used--;
    int hole = i;
    for (int k = (i + 1) % rl->n_slots; rl->slots[k].used; k = (k + 1) % rl->n_slots) {
        int home = home_slot(rl, rl->slots[k].hash);
        int stays = hole <= k ? (hole < home && home <= k) : (hole < home || home <= k);
        if (stays)
            continue;
        move_slot(rl, k, hole);
        hole = k;
    }
}

static bucket_pair *lookup(ts_ratelimit *rl, const ts_client_id *who, int create, int64_t now)
{
    if (who->epoch != rl->epoch)
        return NULL; /* minted under an old key: that client's state is gone */
    int i = home_slot(rl, who->hash);
    for (; rl->slots[i].used; i = (i + 1) % rl->n_slots)
        if (memcmp(rl->slots[i].hash, who->hash, sizeof who->hash) == 0) {
            recency_unlink(rl, i);
            recency_push(rl, i);
            return &rl->slots[i];
        }
    if (!create)
        return NULL;

    if (rl->n_used >= rl->opts.max_clients) {
        delete_slot(rl, rl->oldest);
        /* The shift may have moved entries; find the free slot again. */
        i = home_slot(rl, who->hash);
        while (rl->slots[i].used)
            i = (i + 1) % rl->n_slots;
    }
    bucket_pair *b = &rl->slots[i];
    memset(b, 0, sizeof *b);
    b->used = 1;
    memcpy(b->hash, who->hash, sizeof b->hash);
    b->tokens[0] = rl->opts.cheap_burst;
    b->tokens[1] = rl->opts.expensive_burst;
    b->stamp_ms[0] = b->stamp_ms[1] = now;
    recency_push(rl, i);
    rl->n_used++;
    return b;
}

/* ---------------------------------------------------------------- public */

ts_status ts_ratelimit_create(const ts_ratelimit_options *opts, ts_ratelimit **out, ts_error *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return ts_error_set(err, TS_ERR_INTERNAL, "libsodium failed to initialise");
    if (!(opts->expensive_per_minute > 0) || !(opts->cheap_per_minute > 0) ||
        !(opts->expensive_burst >= 1) || !(opts->cheap_burst >= 1))
        return ts_error_set(err, TS_ERR_ARG,
                            "rate limits need positive rates and bursts of at least 1");
    if (opts->max_clients < 1 || opts->max_clients > 10000000)
        return ts_error_set(err, TS_ERR_ARG, "max clients must be 1 to 10000000");
    if (opts->key_rotation_ms < 1000)
        return ts_error_set(err, TS_ERR_ARG, "the key rotation period must be at least 1s");

    ts_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    rl->opts = *opts;
    rl->opts.trusted_proxies = NULL; /* parsed below; the string is not kept */
    if (parse_list(opts->trusted_proxies, rl->proxies, TS_RATELIMIT_MAX_PROXIES, &rl->n_proxies,
                   err) != 0) {
        free(rl);
        return TS_ERR_ARG;
    }
    rl->n_slots = opts->max_clients * 2;
    rl->slots = calloc((size_t)rl->n_slots, sizeof *rl->slots);
    rl->key = sodium_malloc(crypto_generichash_KEYBYTES); /* locked, not dumpable */
    if (!rl->slots || !rl->key) {
        free(rl->slots);
        if (rl->key)
            sodium_free(rl->key);
        free(rl);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for %d clients", opts->max_clients);
    }
    pthread_mutex_init(&rl->lock, NULL);
    rl->key_born_ms = ts_clock_now_ms() - opts->key_rotation_ms; /* rotates on first use */
    pthread_mutex_lock(&rl->lock);
    rotate_if_due(rl, ts_clock_now_ms());
    pthread_mutex_unlock(&rl->lock);
    *out = rl;
    return TS_OK;
}

void ts_ratelimit_destroy(ts_ratelimit *rl)
{
    if (!rl)
        return;
    sodium_free(rl->key);
    sodium_memzero(rl->slots, (size_t)rl->n_slots * sizeof *rl->slots);
    free(rl->slots);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

/* The client behind an X-Forwarded-For chain: walk from the right (the
 * entry our trusted proxy appended) and take the first address that is not
 * itself a trusted proxy. Garbage stops the walk at the last good hop. */
static void client_from_xff(const ts_ratelimit *rl, const char *xff, cidr *client)
{
    size_t end = strlen(xff);
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        cidr hop;
        if (parse_cidr(xff + start, end - start, &hop) != 0 ||
            hop.prefix != (hop.family == AF_INET ? 32 : 128))
            return;
        normalise(&hop);
        *client = hop;
        if (!is_trusted(rl, &hop))
            return;
        end = start > 0 ? start - 1 : 0;
    }
}

static void identify(ts_ratelimit *rl, cidr *peer, const char *xff, ts_client_id *out)
{
    normalise(peer);
    cidr client = *peer;
    if (xff && xff[0] && is_trusted(rl, peer))
        client_from_xff(rl, xff, &client);
    pthread_mutex_lock(&rl->lock);
    rotate_if_due(rl, ts_clock_now_ms());
    hash_client(rl, &client, out);
    pthread_mutex_unlock(&rl->lock);
    sodium_memzero(&client, sizeof client);
}

static cidr from_sockaddr(const struct sockaddr *peer)
{
    cidr a = {0};
    if (peer && peer->sa_family == AF_INET) {
        a.family = AF_INET;
        memcpy(a.addr, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
        a.prefix = 32;
    } else if (peer && peer->sa_family == AF_INET6) {
        a.family = AF_INET6;
        memcpy(a.addr, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, 16);
        a.prefix = 128;
    } else {
        a.family = AF_UNIX; /* all local-socket clients are one client */
    }
    return a;
}

void ts_ratelimit_identify(ts_ratelimit *rl, const struct sockaddr *peer, const char *xff,
                           ts_client_id *out)
{
    cidr a = from_sockaddr(peer);
    identify(rl, &a, xff, out);
}

int ts_ratelimit_peer_trusted(const ts_ratelimit *rl, const struct sockaddr *peer)
{
    cidr a = from_sockaddr(peer);
    normalise(&a);
    int trusted = a.family != AF_UNIX && is_trusted(rl, &a);
    sodium_memzero(&a, sizeof a);
    return trusted;
}

ts_status ts_ratelimit_identify_text(ts_ratelimit *rl, const char *peer, const char *xff,
                                     ts_client_id *out)
{
    cidr a;
    if (!peer || parse_cidr(peer, strlen(peer), &a) != 0 || strchr(peer, '/'))
        return TS_ERR_ARG;
    identify(rl, &a, xff, out);
    return TS_OK;
}

void ts_ratelimit_take(ts_ratelimit *rl, const ts_client_id *who, int expensive, double cost,
                       ts_ratelimit_decision *d)
{
    int k = expensive ? 1 : 0;
    double rate_ms =
        (expensive ? rl->opts.expensive_per_minute : rl->opts.cheap_per_minute) / 60000.0;
    double burst = expensive ? rl->opts.expensive_burst : rl->opts.cheap_burst;
    if (!(cost >= 0))
        cost = 1;

    pthread_mutex_lock(&rl->lock);
    int64_t now = ts_clock_now_ms();
    rotate_if_due(rl, now);
    ts_client_id current = *who;
    current.epoch = rl->epoch; /* a stale id counts as a fresh client */
    bucket_pair *b = lookup(rl, &current, 1, now);
    int64_t elapsed = now - b->stamp_ms[k];
    if (elapsed > 0) {
        b->tokens[k] = fmin(burst, b->tokens[k] + (double)elapsed * rate_ms);
        b->stamp_ms[k] = now;
    }
    if (cost <= b->tokens[k]) {
        b->tokens[k] -= cost;
        d->allowed = 1;
        d->retry_after_s = 0;
    } else {
        /* Time until the bucket holds the cost (or is full, for a cost no
         * bucket can ever hold). */
        double need = fmax(fmin(cost, burst) - b->tokens[k], 0.0);
        double wait_s = need / rate_ms / 1000.0;
        int ra = (int)ceil(wait_s);
        d->allowed = 0;
        d->retry_after_s = ra < 1 ? 1 : ra;
    }
    d->remaining = b->tokens[k];
    pthread_mutex_unlock(&rl->lock);
}

int ts_ratelimit_conn_enter(ts_ratelimit *rl, const ts_client_id *who)
{
    pthread_mutex_lock(&rl->lock);
    int64_t now = ts_clock_now_ms();
    rotate_if_due(rl, now);
    int ok = 0;
    bucket_pair *b = lookup(rl, who, 1, now);
    if (b && (rl->opts.max_conns_per_client <= 0 || b->conns < rl->opts.max_conns_per_client)) {
        b->conns++;
        ok = 1;
    } else if (!b) {
        ok = 1; /* an id from before a rotation: its counts are gone; let it in */
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

void ts_ratelimit_conn_leave(ts_ratelimit *rl, const ts_client_id *who)
{
    pthread_mutex_lock(&rl->lock);
    bucket_pair *b = lookup(rl, who, 0, ts_clock_now_ms());
    if (b && b->conns > 0)
        b->conns--;
    pthread_mutex_unlock(&rl->lock);
}

int ts_ratelimit_clients(ts_ratelimit *rl)
{
    pthread_mutex_lock(&rl->lock);
    int n = rl->n_used;
    pthread_mutex_unlock(&rl->lock);
    return n;
}

uint64_t ts_ratelimit_epoch(ts_ratelimit *rl)
{
    pthread_mutex_lock(&rl->lock);
    uint64_t e = rl->epoch;
    pthread_mutex_unlock(&rl->lock);
    return e;
}
