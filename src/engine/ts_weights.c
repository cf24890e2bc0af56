/*
 * ts_weights.c - named tensors over several mapped safetensors files.
 *
 * Entries live in a hash table keyed by full name (prefix + name); each entry
 * holds a copy of the file's record with the full name, so aliases and file
 * tensors look the same to callers. f32 copies of f16/bf16 tensors are made
 * on first use and kept until destroy.
 */
#include "ts_weights.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ts_half.h"

#define WEIGHTS_MAX_ENTRIES (1 << 20)

typedef struct wentry {
    ts_st_tensor rec; /* rec.name is the full name */
    float *cache;     /* f32 copy, owned; NULL until asked for */
} wentry;

struct ts_weights {
    ts_safetensors *files[TS_WEIGHTS_MAX_FILES];
    int n_files;
    wentry **entries; /* in insertion order */
    int n_entries, cap_entries;
    int *table; /* open addressing: index into entries, -1 empty */
    int table_size;
    size_t cached_bytes;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int table_slot(const ts_weights *w, const char *name)
{
    int mask = w->table_size - 1;
    int i = (int)(hash_name(name) & (uint64_t)mask);
    while (w->table[i] >= 0 && strcmp(w->entries[w->table[i]]->rec.name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

static ts_status table_grow(ts_weights *w, ts_error *err)
{
    int size = w->table_size ? w->table_size * 2 : 1024;
    int *t = malloc((size_t)size * sizeof(int));
    if (!t)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory indexing weights");
    for (int i = 0; i < size; i++)
        t[i] = -1;
    free(w->table);
    w->table = t;
    w->table_size = size;
    for (int e = 0; e < w->n_entries; e++)
        w->table[table_slot(w, w->entries[e]->rec.name)] = e;
    return TS_OK;
}

/* Adds a copy of rec under name; a second tensor of the same name is an
 * error (two files must not disagree on a weight). */
static ts_status entry_add(ts_weights *w, const char *name, const ts_st_tensor *rec, ts_error *err)
{
    if (strlen(name) >= TS_SAFETENSORS_NAME_MAX)
        return ts_error_set(err, TS_ERR_FORMAT, "tensor name %.60s... is too long", name);
    if (w->n_entries >= WEIGHTS_MAX_ENTRIES)
        return ts_error_set(err, TS_ERR_LIMIT, "more than %d tensors", WEIGHTS_MAX_ENTRIES);
    if ((w->n_entries + 1) * 2 > w->table_size && table_grow(w, err) != TS_OK)
        return err->status;
    int slot = table_slot(w, name);
    if (w->table[slot] >= 0)
        return ts_error_set(err, TS_ERR_FORMAT, "tensor %s is defined twice", name);
    if (w->n_entries == w->cap_entries) {
        int cap = w->cap_entries ? w->cap_entries * 2 : 1024;
        wentry **e = realloc(w->entries, (size_t)cap * sizeof(*e));
        if (!e)
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory indexing weights");
        w->entries = e;
        w->cap_entries = cap;
    }
    wentry *e = calloc(1, sizeof(*e));
    if (!e)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory indexing weights");
    e->rec = *rec;
    snprintf(e->rec.name, sizeof(e->rec.name), "%s", name);
    w->entries[w->n_entries] = e;
    w->table[slot] = w->n_entries;
    w->n_entries++;
    return TS_OK;
}

static wentry *entry_find(const ts_weights *w, const char *name)
{
    if (!w->table_size)
        return NULL;
    int i = w->table[table_slot(w, name)];
    return i < 0 ? NULL : w->entries[i];
}

/* ---------------------------------------------------------------- lifecycle */

ts_status ts_weights_create(ts_weights **out, ts_error *err)
{
    ts_weights *w = calloc(1, sizeof(*w));
    if (!w)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating weights");
    *out = w;
    return TS_OK;
}

void ts_weights_release_cache(ts_weights *w)
{
    for (int i = 0; i < w->n_entries; i++) {
        free(w->entries[i]->cache);
        w->entries[i]->cache = NULL;
    }
    w->cached_bytes = 0;
}

void ts_weights_destroy(ts_weights *w)
{
    if (!w)
        return;
    ts_weights_release_cache(w);
    for (int i = 0; i < w->n_entries; i++)
        free(w->entries[i]);
    free(w->entries);
    free(w->table);
    for (int i = 0; i < w->n_files; i++)
        ts_safetensors_close(w->files[i]);
    free(w);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Pickle-based formats: refused before anything is read from them. */
static ts_status refuse_pickle(const char *path, ts_error *err)
{
    static const char *const ext[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
    int pickle = 0;
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
        pickle |= has_suffix(path, ext[i]);
    if (!pickle) {
        /* A zip (torch.save) or a raw pickle (protocol byte 0x80) by content. */
        unsigned char head[4] = {0};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, head, sizeof(head));
            close(fd);
            pickle = (n == 4 && memcmp(head, "PK\x03\x04", 4) == 0) ||
                     (n >= 2 && head[0] == 0x80 && head[1] <= 5);
        }
    }
    if (pickle)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "%s is a pickle checkpoint; loading pickle can run arbitrary code, so "
                            "it is refused: convert it to .safetensors",
                            path);
    return TS_OK;
}

ts_status ts_weights_add_file(ts_weights *w, const char *path, const char *prefix, ts_error *err)
{
    if (!prefix)
        prefix = "";
    if (w->n_files >= TS_WEIGHTS_MAX_FILES)
        return ts_error_set(err, TS_ERR_LIMIT, "more than %d weight files", TS_WEIGHTS_MAX_FILES);
    if (refuse_pickle(path, err) != TS_OK)
        return err->status;

    ts_safetensors *st;
    ts_status s = ts_safetensors_open(path, &st, err);
    if (s != TS_OK)
        return s;
    w->files[w->n_files++] = st;

    char name[TS_SAFETENSORS_NAME_MAX + 64];
    for (int i = 0; i < st->n_tensors; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, st->tensors[i].name);
        s = entry_add(w, name, &st->tensors[i], err);
        if (s != TS_OK)
            return ts_error_wrap(err, "%s", path);
    }
    return TS_OK;
}

/* ---------------------------------------------------------------- lookup */

const ts_st_tensor *ts_weights_find(const ts_weights *w, const char *name)
{
    wentry *e = entry_find(w, name);
    return e ? &e->rec : NULL;
}

int ts_weights_count(const ts_weights *w)
{
    return w->n_entries;
}

const ts_st_tensor *ts_weights_at(const ts_weights *w, int i)
{
    return i >= 0 && i < w->n_entries ? &w->entries[i]->rec : NULL;
}

const char *ts_weights_file_metadata(const ts_weights *w, int i)
{
    return i >= 0 && i < w->n_files ? w->files[i]->metadata : NULL;
}

static int esize_of(const ts_st_tensor *t)
{
    return ts_safetensors_dtype_size(t->dtype_name);
}

ts_status ts_weights_alias(ts_weights *w, const char *name, const char *src, int64_t elem_offset,
                           int ndim, const int64_t *shape, ts_error *err)
{
    wentry *e = entry_find(w, src);
    if (!e)
        return ts_error_set(err, TS_ERR_NOT_FOUND, "tensor %s (needed for %s) is missing", src,
                            name);
    if (ndim < 0 || ndim > TS_SAFETENSORS_MAX_DIMS)
        return ts_error_set(err, TS_ERR_INTERNAL, "alias %s: bad rank %d", name, ndim);
    int64_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= shape[i];
    if (elem_offset < 0 || count < 0 || elem_offset + count > e->rec.count)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "tensor %s has %lld elements, too few to provide %s", src,
                            (long long)e->rec.count, name);
    ts_st_tensor rec = e->rec;
    rec.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        rec.shape[i] = shape[i];
    rec.count = count;
    rec.data = (const char *)e->rec.data + elem_offset * esize_of(&e->rec);
    rec.nbytes = (size_t)count * (size_t)esize_of(&e->rec);
    return entry_add(w, name, &rec, err);
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && used < n; i++)
        used +=
            (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, ")");
}

static ts_status check(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                       wentry **out, ts_error *err)
{
    wentry *e = entry_find(w, name);
    char want[96], have[96];
    format_shape(want, sizeof(want), ndim, shape);
    if (!e)
        return ts_error_set(err, TS_ERR_NOT_FOUND,
                            "tensor %s %s is missing from the model's weights", name, want);
    int same = e->rec.ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = e->rec.shape[i] == shape[i];
    if (!same) {
        format_shape(have, sizeof(have), e->rec.ndim, e->rec.shape);
        return ts_error_set(err, TS_ERR_FORMAT, "tensor %s has shape %s, expected %s", name, have,
                            want);
    }
    if (e->rec.dtype == TS_DTYPE_OTHER)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "tensor %s has dtype %s; only F32, F16 and BF16 are supported", name,
                            e->rec.dtype_name);
    *out = e;
    return TS_OK;
}

/* Once a half-precision tensor is converted, its mapped pages are no longer
 * needed: telling the kernel keeps the peak at the f32 copies instead of
 * f32 + file while a model loads. Only whole pages inside the tensor. */
static void drop_tensor_pages(const ts_st_tensor *t)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t b = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t e = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    if (e > b)
        madvise((void *)b, e - b, MADV_DONTNEED);
}

static void convert(const ts_st_tensor *t, float *dst)
{
    ts_half_to_f32(t->dtype, t->data, (size_t)t->count, dst);
    if (t->dtype != TS_DTYPE_F32)
        drop_tensor_pages(t);
}

ts_status ts_weights_get_f32(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                             const float **out, ts_error *err)
{
    wentry *e;
    ts_status s = check(w, name, ndim, shape, &e, err);
    if (s != TS_OK)
        return s;
    if (e->rec.dtype == TS_DTYPE_F32 && ((uintptr_t)e->rec.data % sizeof(float)) == 0) {
        *out = e->rec.data;
        return TS_OK;
    }
    if (!e->cache) {
        e->cache = malloc((size_t)(e->rec.count ? e->rec.count : 1) * sizeof(float));
        if (!e->cache)
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory converting tensor %s", name);
        convert(&e->rec, e->cache);
        w->cached_bytes += (size_t)e->rec.count * sizeof(float);
    }
    *out = e->cache;
    return TS_OK;
}

ts_status ts_weights_get_view(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                              ts_wview *out, ts_error *err)
{
    wentry *e;
    ts_status s = check(w, name, ndim, shape, &e, err);
    if (s != TS_OK)
        return s;
    out->count = e->rec.count;
    if (e->rec.dtype == TS_DTYPE_F32) {
        out->dtype = TS_DTYPE_F32;
        const float *f;
        s = ts_weights_get_f32(w, name, ndim, shape, &f, err);
        out->data = f;
        return s;
    }
    out->dtype = e->rec.dtype;
    out->data = e->rec.data;
    return TS_OK;
}

ts_status ts_weights_copy_f32(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                              float *dst, ts_error *err)
{
    wentry *e;
    ts_status s = check(w, name, ndim, shape, &e, err);
    if (s != TS_OK)
        return s;
    if (e->cache)
        memcpy(dst, e->cache, (size_t)e->rec.count * sizeof(float));
    else
        convert(&e->rec, dst);
    return TS_OK;
}

size_t ts_weights_cached_bytes(const ts_weights *w)
{
    return w->cached_bytes;
}

void ts_weights_drop_pages(ts_weights *w)
{
    for (int i = 0; i < w->n_files; i++)
        madvise(w->files[i]->map, w->files[i]->map_size, MADV_DONTNEED);
}
