/*
 * ts_store.h - the encrypted ephemeral store for uploads and results
 * (POLICY.md P2, P3, P4, P5).
 *
 * Design note - the invariants this module keeps:
 *  - Every item is encrypted with its own random 256-bit key
 *    (crypto_secretstream_xchacha20poly1305). Keys live only in one
 *    sodium_malloc'd region: excluded from core dumps (MADV_DONTDUMP),
 *    guarded by pages and a canary, and locked in RAM so it is never swapped
 *    (best effort: when RLIMIT_MEMLOCK is smaller than max_items * 32 bytes
 *    the lock is silently skipped by libsodium and the keys could reach
 *    swap; run with swap off or encrypted, or raise the limit). No key ever
 *    reaches a file, a log or a metric.
 *  - On disk an item is one file in the data folder, named by 32 random hex
 *    characters, mode 0600, holding only ciphertext. In memory-only mode the
 *    ciphertext stays in process memory and nothing is written anywhere.
 *  - Destroying an item wipes its key at once and unlinks its file after a
 *    best-effort overwrite; without the key the ciphertext is noise (P4).
 *  - Every item expires: at most `retention` after it was stored (24h hard
 *    maximum). A sweeper thread destroys expired items at least once a
 *    minute; ts_store_sweep lets tests do it at an injected time.
 *  - At open, every leftover item file in the data folder is removed: it came
 *    from an earlier process whose keys died with it.
 *  - Only counts and byte totals are kept about items (P5).
 *
 *     ts_store_options o = {.data_dir = "/var/tmp/ts", .retention_ms = 3600000};
 *     ts_store *st;
 *     ts_store_open(&o, &st, &err);
 *     char id[TS_STORE_ID_SIZE];
 *     ts_store_put(st, TS_ITEM_RESULT, job_id, bytes, len, 0, id, &err);
 *     void *data; size_t n;
 *     ts_store_get(st, id, &data, &n, NULL, &err);   // decrypted copy
 *     ...
 *     ts_store_data_free(data, n);                   // zeroed, then freed
 *     ts_store_destroy(st, id);                      // gone, unrecoverably
 *     ts_store_close(st);                            // destroys everything left
 *
 * Thread safety: every function may be called from any thread.
 * Item ids are random and unguessable, but they are NOT capabilities: the
 * HTTP layer never exposes them; access goes through ts_jobs and its tokens.
 */
#ifndef TS_STORE_H
#define TS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#define TS_STORE_ID_SIZE       33 /* 32 hex characters + NUL */
#define TS_STORE_OWNER_SIZE    48 /* owner (job id) + NUL */
#define TS_STORE_DEFAULT_ITEMS 4096
#define TS_STORE_SWEEP_MS      (30 * 1000) /* sweeper period: twice a minute */

typedef enum ts_item_kind {
    TS_ITEM_UPLOAD = 0, /* an uploaded image (dies with its job, P2) */
    TS_ITEM_RESULT,     /* a generated image (dies at retention, P3) */
    TS_ITEM_PREVIEW,    /* a progress preview (dies with its job) */
    TS_ITEM_KIND_COUNT
} ts_item_kind;

typedef struct ts_store_options {
    const char *data_dir; /* created 0700 if missing; ignored with memory_only */
    int memory_only;      /* 1: no file is ever written */
    int64_t retention_ms; /* 0: 24h; more than 24h is refused (TS_ERR_ARG) */
    int max_items;        /* 0: TS_STORE_DEFAULT_ITEMS */
    int64_t max_bytes;    /* total ciphertext; 0: 4 GiB on disk, 1 GiB in memory */
    int start_sweeper;    /* 1: run the background sweeper thread */
} ts_store_options;

typedef struct ts_store_item_info {
    ts_item_kind kind;
    size_t size; /* plaintext bytes */
    int64_t created_ms;
    int64_t expires_ms;
    char owner[TS_STORE_OWNER_SIZE];
} ts_store_item_info;

typedef struct ts_store_stats {
    int items[TS_ITEM_KIND_COUNT]; /* alive now */
    int64_t bytes;                 /* ciphertext bytes alive now */
    uint64_t destroyed_total;      /* by delete, job end or close */
    uint64_t expired_total;        /* by the sweeper */
    uint64_t leftovers_removed;    /* files from an earlier process, at open */
} ts_store_stats;

typedef struct ts_store ts_store;

/* Opens the store; with a data folder, removes every leftover item file in it
 * (P4: they are unreadable, their keys died with the earlier process) and
 * refuses a folder it cannot create or write, or one that holds files that do
 * not look like ours (so a wrong --data-dir never deletes someone's files). */
ts_status ts_store_open(const ts_store_options *opts, ts_store **out, ts_error *err);

/* Stops the sweeper and destroys every item (keys wiped, files unlinked). */
void ts_store_close(ts_store *st);

/* Encrypts len bytes into a new item. owner is a job id (may be NULL) used by
 * ts_store_destroy_owner. expires_ms: absolute program time (ts_clock_now_ms)
 * or 0 for now + retention; always clamped to now + retention. Writes the new
 * id to id_out. Errors: TS_ERR_BUSY when max_items or max_bytes would be
 * exceeded, TS_ERR_IO when the disk refuses. */
ts_status ts_store_put(ts_store *st, ts_item_kind kind, const char *owner, const void *data,
                       size_t len, int64_t expires_ms, char id_out[TS_STORE_ID_SIZE],
                       ts_error *err);

/* Decrypts an item into a new buffer (*data, *len), which the caller owns and
 * releases with ts_store_data_free. info may be NULL. An expired item answers
 * TS_ERR_NOT_FOUND even before the sweeper ran. A file that fails
 * authentication answers TS_ERR_FORMAT. */
ts_status ts_store_get(ts_store *st, const char *id, void **data, size_t *len,
                       ts_store_item_info *info, ts_error *err);

/* Zeroes and frees a buffer from ts_store_get. */
void ts_store_data_free(void *data, size_t len);

/* Metadata only (no decryption). TS_ERR_NOT_FOUND for unknown or expired ids. */
ts_status ts_store_info(ts_store *st, const char *id, ts_store_item_info *info);

/* Destroys one item now. TS_ERR_NOT_FOUND when there is none. */
ts_status ts_store_destroy(ts_store *st, const char *id);

/* Destroys every item of one owner, optionally of one kind only (kind < 0:
 * all kinds). Returns how many were destroyed. */
int ts_store_destroy_owner(ts_store *st, const char *owner, int kind);

/* Destroys every item whose expiry is <= now_ms. Returns how many. */
int ts_store_sweep(ts_store *st, int64_t now_ms);

void ts_store_get_stats(ts_store *st, ts_store_stats *stats);

/* The configured retention in milliseconds. */
int64_t ts_store_retention_ms(const ts_store *st);

#endif
