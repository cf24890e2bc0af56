/*
 * ts_store.c - encrypted ephemeral items (see ts_store.h for the invariants).
 *
 * Layout: a fixed table of max_items slots. Slot i's key lives at keys[i] in
 * one sodium_malloc'd region (locked, not dumpable). An item's ciphertext is
 *
 *     "TSE1" | secretstream header (24 bytes) | chunk 0 | chunk 1 | ...
 *
 * where every chunk holds TS_STORE_CHUNK plaintext bytes (the last one fewer,
 * tagged FINAL) plus the 17-byte authenticator. The plaintext length is kept
 * in memory only; the file says nothing about its content.
 *
 * One mutex guards the table. Encryption, decryption and the reading and
 * writing of item files happen outside it: a put reserves its slot (and its
 * bytes) under the lock, seals and writes without it, and publishes the item
 * under the lock again; a get copies the key (and, in memory, the
 * ciphertext) or opens the file under the lock, then decrypts without it.
 * Destroying stays under the lock (wipe the key, overwrite, unlink), so an
 * item is unreadable the moment its destroy returns.
 */
#include "ts_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_clock.h"
#include "ts_config.h"

#define TS_STORE_CHUNK  (64 * 1024)
#define TS_STORE_MAGIC  "TSE1"
#define TS_STORE_SUFFIX ".tse"
#define KEY_BYTES       crypto_secretstream_xchacha20poly1305_KEYBYTES
#define HEADER_BYTES    crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define AUTH_BYTES      crypto_secretstream_xchacha20poly1305_ABYTES

typedef struct store_item {
    int alive;
    int reserved; /* a put is sealing into this slot (outside the lock) */
    ts_item_kind kind;
    char id[TS_STORE_ID_SIZE];
    char owner[TS_STORE_OWNER_SIZE];
    size_t plain_len;
    size_t cipher_len;
    int64_t created_ms;
    int64_t expires_ms;
    uint8_t *cipher; /* memory-only mode */
} store_item;

struct ts_store {
    pthread_mutex_t lock;
    char dir[TS_CONFIG_PATH_MAX];
    int memory_only;
    int64_t retention_ms;
    int max_items;
    int64_t max_bytes;
    store_item *items;
    uint8_t *keys; /* max_items * KEY_BYTES, sodium_malloc'd */
    ts_store_stats stats;

    pthread_t sweeper;
    int sweeper_running;
    int stopping;
    pthread_cond_t wake;
};

/* ------------------------------------------------------------ helpers */

static size_t cipher_size(size_t plain_len)
{
    size_t chunks = plain_len / TS_STORE_CHUNK + 1; /* the last chunk may be empty */
    return 4 + HEADER_BYTES + plain_len + chunks * AUTH_BYTES;
}

static void item_path(const ts_store *st, const char *id, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s%s", st->dir, id, TS_STORE_SUFFIX);
}

static int is_item_name(const char *name)
{
    size_t n = strlen(name);
    if (n != 32 + strlen(TS_STORE_SUFFIX) && n != 32 + strlen(TS_STORE_SUFFIX) + 4)
        return 0;
    for (int i = 0; i < 32; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return 0;
    if (strncmp(name + 32, TS_STORE_SUFFIX, strlen(TS_STORE_SUFFIX)) != 0)
        return 0;
    return n == 32 + strlen(TS_STORE_SUFFIX) || strcmp(name + n - 4, ".tmp") == 0;
}

static uint8_t *slot_key(ts_store *st, int slot)
{
    return st->keys + (size_t)slot * KEY_BYTES;
}

static int find_slot(ts_store *st, const char *id)
{
    if (!id)
        return -1;
    for (int i = 0; i < st->max_items; i++)
        if (st->items[i].alive && strncmp(st->items[i].id, id, TS_STORE_ID_SIZE) == 0)
            return i;
    return -1;
}

/* Overwrites a file with zeros (best effort: on SSDs and copy-on-write file
 * systems the old blocks may survive, which is why P4 rests on the key, not on
 * this), then unlinks it. */
static void overwrite_and_unlink(const char *path, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        static const uint8_t zeros[4096];
        size_t done = 0;
        while (done < len) {
            size_t n = len - done < sizeof zeros ? len - done : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, n, (off_t)done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        fdatasync(fd);
        close(fd);
    }
    unlink(path);
}

static void destroy_slot(ts_store *st, int slot)
{
    store_item *it = &st->items[slot];
    sodium_memzero(slot_key(st, slot), KEY_BYTES);
    if (st->memory_only) {
        if (it->cipher) {
            sodium_memzero(it->cipher, it->cipher_len);
            free(it->cipher);
        }
    } else {
        char path[TS_CONFIG_PATH_MAX + 64];
        item_path(st, it->id, path, sizeof path);
        overwrite_and_unlink(path, it->cipher_len);
    }
    st->stats.items[it->kind]--;
    st->stats.bytes -= (int64_t)it->cipher_len;
    memset(it, 0, sizeof *it);
}

static ts_status encrypt_item(const uint8_t *key, const uint8_t *plain, size_t len, uint8_t *out,
                              ts_error *err)
{
    crypto_secretstream_xchacha20poly1305_state state;
    memcpy(out, TS_STORE_MAGIC, 4);
    if (crypto_secretstream_xchacha20poly1305_init_push(&state, out + 4, key) != 0)
        return ts_error_set(err, TS_ERR_INTERNAL, "cannot start item encryption");
    uint8_t *c = out + 4 + HEADER_BYTES;
    size_t off = 0;
    for (;;) {
        size_t n = len - off < TS_STORE_CHUNK ? len - off : TS_STORE_CHUNK;
        int last = (len - off) < TS_STORE_CHUNK;
        unsigned char tag = last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0;
        unsigned long long clen;
        crypto_secretstream_xchacha20poly1305_push(&state, c, &clen, plain + off, n, NULL, 0, tag);
        c += clen;
        off += n;
        if (last)
            break;
    }
    sodium_memzero(&state, sizeof state);
    return TS_OK;
}

static ts_status decrypt_item(const uint8_t *key, const uint8_t *cipher, size_t cipher_len,
                              uint8_t *out, size_t len, ts_error *err)
{
    if (cipher_len != cipher_size(len) || memcmp(cipher, TS_STORE_MAGIC, 4) != 0)
        return ts_error_set(err, TS_ERR_FORMAT, "stored item is damaged");
    crypto_secretstream_xchacha20poly1305_state state;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&state, cipher + 4, key) != 0)
        return ts_error_set(err, TS_ERR_FORMAT, "stored item is damaged");
    const uint8_t *c = cipher + 4 + HEADER_BYTES;
    size_t off = 0;
    ts_status st = TS_OK;
    for (;;) {
        size_t n = len - off < TS_STORE_CHUNK ? len - off : TS_STORE_CHUNK;
        int last = (len - off) < TS_STORE_CHUNK;
        unsigned char tag;
        unsigned long long mlen;
        if (crypto_secretstream_xchacha20poly1305_pull(&state, out + off, &mlen, &tag, c,
                                                       n + AUTH_BYTES, NULL, 0) != 0 ||
            mlen != n || (last != (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL))) {
            st = ts_error_set(err, TS_ERR_FORMAT, "stored item failed authentication");
            break;
        }
        c += n + AUTH_BYTES;
        off += n;
        if (last)
            break;
    }
    sodium_memzero(&state, sizeof state);
    if (st != TS_OK)
        sodium_memzero(out, len);
    return st;
}

static ts_status write_file(const char *path, const uint8_t *data, size_t len, ts_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ts_error_set(err, TS_ERR_IO, "cannot create an item file in the data folder: %s",
                            strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return ts_error_set(err, TS_ERR_IO, "cannot write an item file: %s", strerror(e));
        }
        done += (size_t)w;
    }
    close(fd);
    return TS_OK;
}

/* Removes the item files an earlier process left behind; refuses a folder
 * with other regular files in it, so a mistyped --data-dir cannot make us
 * delete someone's files (nor change its mode: it is made 0700 only once
 * accepted). */
static ts_status clean_data_dir(ts_store *st, ts_error *err)
{
    if (mkdir(st->dir, 0700) != 0 && errno != EEXIST)
        return ts_error_set(err, TS_ERR_IO, "cannot create the data folder %s: %s", st->dir,
                            strerror(errno));
    struct stat sb;
    if (lstat(st->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ts_error_set(err, TS_ERR_IO, "the data folder %s is not a folder", st->dir);
    if (access(st->dir, W_OK | X_OK) != 0)
        return ts_error_set(err, TS_ERR_IO, "cannot write to the data folder %s", st->dir);

    DIR *d = opendir(st->dir);
    if (!d)
        return ts_error_set(err, TS_ERR_IO, "cannot list the data folder %s: %s", st->dir,
                            strerror(errno));
    int foreign = 0;
    char first_foreign[256] = "";
    struct dirent *e;
    /* First pass: look; second pass: remove, so nothing is deleted from a
     * folder we then refuse. */
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        if (!is_item_name(e->d_name)) {
            if (!foreign)
                snprintf(first_foreign, sizeof first_foreign, "%s", e->d_name);
            foreign++;
        }
    }
    if (foreign) {
        closedir(d);
        return ts_error_set(err, TS_ERR_ARG,
                            "the data folder %s holds %d entries that are not TogetherShot items "
                            "(e.g. '%.60s'); give an empty folder of its own",
                            st->dir, foreign, first_foreign);
    }
    /* Ours now: private to this user (only after the check above, so a
     * folder we refuse keeps its mode). */
    chmod(st->dir, 0700);
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        if (!is_item_name(e->d_name))
            continue;
        char path[TS_CONFIG_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", st->dir, e->d_name);
        struct stat fs;
        size_t len = (lstat(path, &fs) == 0 && S_ISREG(fs.st_mode)) ? (size_t)fs.st_size : 0;
        overwrite_and_unlink(path, len);
        st->stats.leftovers_removed++;
    }
    closedir(d);
    return TS_OK;
}

/* ------------------------------------------------------------ sweeper */

static void *sweeper_main(void *arg)
{
    ts_store *st = arg;
    pthread_mutex_lock(&st->lock);
    while (!st->stopping) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += TS_STORE_SWEEP_MS / 1000;
        pthread_cond_timedwait(&st->wake, &st->lock, &deadline);
        if (st->stopping)
            break;
        pthread_mutex_unlock(&st->lock);
        ts_store_sweep(st, ts_clock_now_ms());
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ------------------------------------------------------------ public */

ts_status ts_store_open(const ts_store_options *opts, ts_store **out, ts_error *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return ts_error_set(err, TS_ERR_INTERNAL, "libsodium failed to initialise");
    int64_t retention = opts->retention_ms ? opts->retention_ms : TS_RETENTION_DEFAULT_MS;
    if (retention < 0 || retention > TS_RETENTION_MAX_MS)
        return ts_error_set(err, TS_ERR_ARG, "retention of %lld ms exceeds the maximum of 24 hours",
                            (long long)retention);
    if (!opts->memory_only && (!opts->data_dir || !opts->data_dir[0]))
        return ts_error_set(err, TS_ERR_ARG, "give a data folder or choose memory-only");
    if (!opts->memory_only && strlen(opts->data_dir) >= TS_CONFIG_PATH_MAX - 64)
        return ts_error_set(err, TS_ERR_ARG, "the data folder path is too long");
    if (opts->max_items < 0 || opts->max_items > 1000000)
        return ts_error_set(err, TS_ERR_ARG, "max items must be 0..1000000");

    ts_store *st = calloc(1, sizeof *st);
    if (!st)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory opening the store");
    ts_status status = TS_OK;
    st->memory_only = opts->memory_only;
    st->retention_ms = retention;
    st->max_items = opts->max_items ? opts->max_items : TS_STORE_DEFAULT_ITEMS;
    st->max_bytes =
        opts->max_bytes ? opts->max_bytes : (opts->memory_only ? (1LL << 30) : (4LL << 30));
    if (!st->memory_only)
        snprintf(st->dir, sizeof st->dir, "%s", opts->data_dir);
    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->wake, &ca);
    pthread_condattr_destroy(&ca);

    st->items = calloc((size_t)st->max_items, sizeof *st->items);
    /* sodium_malloc: guard pages, mlock (never swapped) and MADV_DONTDUMP. */
    st->keys = sodium_malloc((size_t)st->max_items * KEY_BYTES);
    if (!st->items || !st->keys) {
        status = ts_error_set(err, TS_ERR_NOMEM, "cannot allocate the store's key memory");
        goto fail;
    }
    sodium_memzero(st->keys, (size_t)st->max_items * KEY_BYTES);

    if (!st->memory_only) {
        status = clean_data_dir(st, err);
        if (status != TS_OK)
            goto fail;
    }
    if (opts->start_sweeper) {
        if (pthread_create(&st->sweeper, NULL, sweeper_main, st) != 0) {
            status = ts_error_set(err, TS_ERR_INTERNAL, "cannot start the store sweeper");
            goto fail;
        }
        st->sweeper_running = 1;
    }
    *out = st;
    return TS_OK;

fail:
    if (st->keys)
        sodium_free(st->keys);
    free(st->items);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->lock);
    free(st);
    return status;
}

void ts_store_close(ts_store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->lock);
    if (st->sweeper_running)
        pthread_join(st->sweeper, NULL);

    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < st->max_items; i++)
        if (st->items[i].alive)
            destroy_slot(st, i);
    pthread_mutex_unlock(&st->lock);
    sodium_free(st->keys); /* sodium_free zeroes the region first */
    free(st->items);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

ts_status ts_store_put(ts_store *st, ts_item_kind kind, const char *owner, const void *data,
                       size_t len, int64_t expires_ms, char id_out[TS_STORE_ID_SIZE], ts_error *err)
{
    if ((unsigned)kind >= TS_ITEM_KIND_COUNT || (!data && len))
        return ts_error_set(err, TS_ERR_ARG, "bad item kind or data");
    if (len > (size_t)1 << 40)
        return ts_error_set(err, TS_ERR_LIMIT, "item of %zu bytes is too large", len);
    size_t clen = cipher_size(len);
    uint8_t *cipher = malloc(clen);
    if (!cipher)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory storing an item");

    /* 1. Reserve a slot, its key and its bytes. */
    pthread_mutex_lock(&st->lock);
    int slot = -1;
    for (int i = 0; i < st->max_items; i++)
        if (!st->items[i].alive && !st->items[i].reserved) {
            slot = i;
            break;
        }
    ts_status status = TS_OK;
    if (slot < 0)
        status = ts_error_set(err, TS_ERR_BUSY, "the store holds its maximum of %d items",
                              st->max_items);
    else if (st->stats.bytes + (int64_t)clen > st->max_bytes)
        status = ts_error_set(err, TS_ERR_BUSY, "the store holds its maximum of %lld bytes",
                              (long long)st->max_bytes);
    if (status != TS_OK) {
        pthread_mutex_unlock(&st->lock);
        free(cipher);
        return status;
    }
    store_item *it = &st->items[slot];
    it->reserved = 1;
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(it->id, sizeof it->id, raw, sizeof raw);
    char id[TS_STORE_ID_SIZE];
    memcpy(id, it->id, sizeof id);
    crypto_secretstream_xchacha20poly1305_keygen(slot_key(st, slot));
    st->stats.bytes += (int64_t)clen;
    pthread_mutex_unlock(&st->lock);

    /* 2. Seal and write without the lock; nobody else touches a reserved
     * slot. */
    status = encrypt_item(slot_key(st, slot), data, len, cipher, err);
    if (status == TS_OK && !st->memory_only) {
        char path[TS_CONFIG_PATH_MAX + 64];
        item_path(st, id, path, sizeof path);
        status = write_file(path, cipher, clen, err);
    }

    /* 3. Publish, or give the slot back. */
    pthread_mutex_lock(&st->lock);
    if (status == TS_OK) {
        int64_t now = ts_clock_now_ms();
        int64_t latest = now + st->retention_ms;
        it->reserved = 0;
        it->alive = 1;
        it->kind = kind;
        snprintf(it->owner, sizeof it->owner, "%s", owner ? owner : "");
        it->plain_len = len;
        it->cipher_len = clen;
        it->created_ms = now;
        it->expires_ms = (expires_ms <= 0 || expires_ms > latest) ? latest : expires_ms;
        if (st->memory_only) {
            it->cipher = cipher;
            cipher = NULL;
        }
        st->stats.items[kind]++;
        memcpy(id_out, id, TS_STORE_ID_SIZE);
    } else {
        sodium_memzero(slot_key(st, slot), KEY_BYTES);
        memset(it, 0, sizeof *it);
        st->stats.bytes -= (int64_t)clen;
    }
    pthread_mutex_unlock(&st->lock);
    free(cipher); /* ciphertext only; nothing to wipe */
    return status;
}

static ts_status read_fd(int fd, uint8_t *data, size_t len, ts_error *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, data + done, len - done, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return ts_error_set(err, TS_ERR_FORMAT, "an item file is shorter than written");
        done += (size_t)r;
    }
    return TS_OK;
}

ts_status ts_store_get(ts_store *st, const char *id, void **data, size_t *len,
                       ts_store_item_info *info, ts_error *err)
{
    *data = NULL;
    *len = 0;

    /* 1. Under the lock: the key, the sizes, and the ciphertext (memory) or
     * an open file (disk). */
    uint8_t key[KEY_BYTES];
    uint8_t *cipher = NULL, *plain = NULL;
    int fd = -1;
    ts_store_item_info meta;
    size_t plain_len = 0, cipher_len = 0;
    ts_status status = TS_OK;
    pthread_mutex_lock(&st->lock);
    int slot = find_slot(st, id);
    if (slot < 0 || st->items[slot].expires_ms <= ts_clock_now_ms()) {
        pthread_mutex_unlock(&st->lock);
        return ts_error_set(err, TS_ERR_NOT_FOUND, "no such item");
    }
    store_item *it = &st->items[slot];
    plain_len = it->plain_len;
    cipher_len = it->cipher_len;
    meta.kind = it->kind;
    meta.size = it->plain_len;
    meta.created_ms = it->created_ms;
    meta.expires_ms = it->expires_ms;
    memcpy(meta.owner, it->owner, sizeof meta.owner);
    memcpy(key, slot_key(st, slot), KEY_BYTES);
    cipher = malloc(cipher_len);
    plain = malloc(plain_len ? plain_len : 1);
    if (!cipher || !plain) {
        status = ts_error_set(err, TS_ERR_NOMEM, "out of memory reading an item");
    } else if (st->memory_only) {
        memcpy(cipher, it->cipher, cipher_len);
    } else {
        char path[TS_CONFIG_PATH_MAX + 64];
        item_path(st, it->id, path, sizeof path);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            status = ts_error_set(err, TS_ERR_IO, "cannot open an item file: %s", strerror(errno));
    }
    pthread_mutex_unlock(&st->lock);

    /* 2. Read and decrypt without it. */
    if (status == TS_OK && fd >= 0)
        status = read_fd(fd, cipher, cipher_len, err);
    if (fd >= 0)
        close(fd);
    if (status == TS_OK)
        status = decrypt_item(key, cipher, cipher_len, plain, plain_len, err);
    sodium_memzero(key, sizeof key);
    free(cipher);

    /* An item destroyed meanwhile (its file zeroed under us) reads as gone,
     * not as damaged. */
    if (status == TS_ERR_FORMAT) {
        pthread_mutex_lock(&st->lock);
        if (find_slot(st, id) < 0)
            status = ts_error_set(err, TS_ERR_NOT_FOUND, "no such item");
        pthread_mutex_unlock(&st->lock);
    }
    if (status != TS_OK) {
        ts_store_data_free(plain, plain_len); /* zeroed already by decrypt_item on failure */
        return status;
    }
    if (info)
        *info = meta;
    *data = plain;
    *len = plain_len;
    return TS_OK;
}

void ts_store_data_free(void *data, size_t len)
{
    if (!data)
        return;
    sodium_memzero(data, len);
    free(data);
}

ts_status ts_store_info(ts_store *st, const char *id, ts_store_item_info *info)
{
    pthread_mutex_lock(&st->lock);
    int slot = find_slot(st, id);
    ts_status status = TS_ERR_NOT_FOUND;
    if (slot >= 0 && st->items[slot].expires_ms > ts_clock_now_ms()) {
        store_item *it = &st->items[slot];
        info->kind = it->kind;
        info->size = it->plain_len;
        info->created_ms = it->created_ms;
        info->expires_ms = it->expires_ms;
        memcpy(info->owner, it->owner, sizeof info->owner);
        status = TS_OK;
    }
    pthread_mutex_unlock(&st->lock);
    return status;
}

ts_status ts_store_destroy(ts_store *st, const char *id)
{
    pthread_mutex_lock(&st->lock);
    int slot = find_slot(st, id);
    if (slot >= 0) {
        destroy_slot(st, slot);
        st->stats.destroyed_total++;
    }
    pthread_mutex_unlock(&st->lock);
    return slot >= 0 ? TS_OK : TS_ERR_NOT_FOUND;
}

int ts_store_destroy_owner(ts_store *st, const char *owner, int kind)
{
    if (!owner || !owner[0])
        return 0;
    int count = 0;
    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < st->max_items; i++) {
        store_item *it = &st->items[i];
        if (it->alive && strcmp(it->owner, owner) == 0 && (kind < 0 || (int)it->kind == kind)) {
            destroy_slot(st, i);
            st->stats.destroyed_total++;
            count++;
        }
    }
    pthread_mutex_unlock(&st->lock);
    return count;
}

int ts_store_sweep(ts_store *st, int64_t now_ms)
{
    int count = 0;
    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < st->max_items; i++)
        if (st->items[i].alive && st->items[i].expires_ms <= now_ms) {
            destroy_slot(st, i);
            st->stats.expired_total++;
            count++;
        }
    pthread_mutex_unlock(&st->lock);
    return count;
}

void ts_store_get_stats(ts_store *st, ts_store_stats *stats)
{
    pthread_mutex_lock(&st->lock);
    *stats = st->stats;
    pthread_mutex_unlock(&st->lock);
}

int64_t ts_store_retention_ms(const ts_store *st)
{
    return st->retention_ms;
}
