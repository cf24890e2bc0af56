/*
 * ts_tensor.c - the bounded stack arena (see ts_tensor.h).
 *
 * Invariant: chunks[0..n_chunks) are allocated; chunks before `cur` are full
 * up to their `used`, chunk `cur` is being filled, chunks after it are empty
 * and kept for reuse until a request finds them too small, which replaces
 * them with one chunk that fits.
 */
#include "ts_tensor.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#define ARENA_MAX_CHUNKS 64
#define ARENA_ALIGN      64
#define ARENA_MIN_CHUNK  ((size_t)64 << 20)

typedef struct arena_chunk {
    char *base;
    size_t size;
    size_t used;
} arena_chunk;

struct ts_arena {
    size_t max_bytes;
    size_t reserved;
    size_t in_use;
    size_t peak;
    int n_chunks;
    int cur;
    arena_chunk chunks[ARENA_MAX_CHUNKS];
};

ts_status ts_arena_create(size_t max_bytes, ts_arena **out, ts_error *err)
{
    ts_arena *a = calloc(1, sizeof(*a));
    if (!a)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating a scratch arena");
    a->max_bytes = max_bytes;
    *out = a;
    return TS_OK;
}

void ts_arena_destroy(ts_arena *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n_chunks; i++)
        free(a->chunks[i].base);
    free(a);
}

void ts_arena_trim(ts_arena *a)
{
    assert(a->in_use == 0);
    for (int i = 0; i < a->n_chunks; i++)
        free(a->chunks[i].base);
    a->n_chunks = 0;
    a->cur = 0;
    a->reserved = 0;
}

static size_t round_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

float *ts_arena_floats(ts_arena *a, size_t n, ts_error *err)
{
    if (n > SIZE_MAX / 8) {
        ts_error_set(err, TS_ERR_LIMIT, "scratch request of %zu floats is too large", n);
        return NULL;
    }
    size_t bytes = round_up(n * sizeof(float));
    if (bytes == 0)
        bytes = ARENA_ALIGN;

    /* First fit in the current chunk or a later (empty, reusable) one. An
     * empty chunk too small for the request ends the search. */
    while (a->n_chunks > 0) {
        arena_chunk *c = &a->chunks[a->cur];
        if (c->size - c->used >= bytes) {
            float *p = (float *)(c->base + c->used);
            c->used += bytes;
            a->in_use += bytes;
            if (a->in_use > a->peak)
                a->peak = a->in_use;
            return p;
        }
        if (c->used == 0)
            break;
        if (a->cur + 1 >= a->n_chunks) {
            a->cur = a->n_chunks; /* past the end: append */
            break;
        }
        a->cur++;
        a->chunks[a->cur].used = 0;
    }

    /* The chunks from cur on are empty and too small for this request:
     * free them before the new one is made, so networks of different shapes
     * sharing the arena (or one network at a new image size) replace chunks
     * instead of piling up ones that no longer fit. */
    for (int i = a->cur; i < a->n_chunks; i++) {
        free(a->chunks[i].base);
        a->reserved -= a->chunks[i].size;
    }
    if (a->cur < a->n_chunks)
        a->n_chunks = a->cur;

    /* A new chunk at the end. */
    size_t size = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
    if (a->n_chunks >= ARENA_MAX_CHUNKS || a->reserved + size > a->max_bytes) {
        if (a->reserved + bytes <= a->max_bytes && a->n_chunks < ARENA_MAX_CHUNKS) {
            size = bytes;
        } else {
            ts_error_set(err, TS_ERR_LIMIT,
                         "scratch memory limit of %zu MiB reached (%zu MiB requested); use a "
                         "smaller image size",
                         a->max_bytes >> 20, bytes >> 20);
            a->cur = a->n_chunks > 0 ? a->n_chunks - 1 : 0;
            return NULL;
        }
    }
    char *base = aligned_alloc(ARENA_ALIGN, size);
    if (!base) {
        ts_error_set(err, TS_ERR_NOMEM, "out of memory allocating %zu MiB of scratch", size >> 20);
        a->cur = a->n_chunks > 0 ? a->n_chunks - 1 : 0;
        return NULL;
    }
    arena_chunk *c = &a->chunks[a->n_chunks];
    c->base = base;
    c->size = size;
    c->used = bytes;
    a->cur = a->n_chunks;
    a->n_chunks++;
    a->reserved += size;
    a->in_use += bytes;
    if (a->in_use > a->peak)
        a->peak = a->in_use;
    return (float *)base;
}

ts_arena_mark ts_arena_save(const ts_arena *a)
{
    ts_arena_mark m = {a->cur, a->n_chunks ? a->chunks[a->cur].used : 0};
    return m;
}

void ts_arena_restore(ts_arena *a, ts_arena_mark m)
{
    if (a->n_chunks == 0)
        return;
    assert(m.chunk <= a->cur);
    for (int i = a->cur; i > m.chunk; i--) {
        a->in_use -= a->chunks[i].used;
        a->chunks[i].used = 0;
    }
    assert(a->chunks[m.chunk].used >= m.used);
    a->in_use -= a->chunks[m.chunk].used - m.used;
    a->chunks[m.chunk].used = m.used;
    a->cur = m.chunk;
}

size_t ts_arena_reserved(const ts_arena *a)
{
    return a->reserved;
}

size_t ts_arena_peak(const ts_arena *a)
{
    return a->peak;
}
