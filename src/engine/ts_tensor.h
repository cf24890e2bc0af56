/*
 * ts_tensor.h - scratch memory for the networks: a bounded stack arena.
 *
 * The networks of a model share one arena and reuse it across calls. A block
 * function allocates its temporaries after a mark and releases them on
 * return, so the memory in use at any time is the live set of one path
 * through the network, not the sum over all blocks:
 *
 *     ts_arena_mark m = ts_arena_save(a);
 *     float *h = ts_arena_floats(a, (size_t)C * H * W, err);   // (C, H, W)
 *     if (!h) return err->status;
 *     ...
 *     ts_arena_restore(a, m);
 *
 * The arena grows in chunks (never moves what it handed out) up to max_bytes;
 * past that ts_arena_floats returns NULL with TS_ERR_LIMIT. Chunks are kept
 * for the next call; ts_arena_destroy frees them.
 *
 * Not thread-safe: one caller at a time.
 */
#ifndef TS_TENSOR_H
#define TS_TENSOR_H

#include <stddef.h>

#include "ts_error.h"

typedef struct ts_arena ts_arena;

typedef struct ts_arena_mark {
    int chunk;
    size_t used;
} ts_arena_mark;

ts_status ts_arena_create(size_t max_bytes, ts_arena **out, ts_error *err);
void ts_arena_destroy(ts_arena *a);

/* n floats, 64-byte aligned, uninitialised. NULL (and err filled) past the
 * limit or when memory runs out. */
float *ts_arena_floats(ts_arena *a, size_t n, ts_error *err);

/* Frees every chunk; only when nothing from the arena is in use (after a
 * network call that is done rarely and needs much scratch, like a VAE
 * decode, so the memory is not held between images). */
void ts_arena_trim(ts_arena *a);

ts_arena_mark ts_arena_save(const ts_arena *a);
void ts_arena_restore(ts_arena *a, ts_arena_mark m);

/* Bytes held in chunks (what the arena costs in memory) and the most ever in
 * use at once. */
size_t ts_arena_reserved(const ts_arena *a);
size_t ts_arena_peak(const ts_arena *a);

#endif
