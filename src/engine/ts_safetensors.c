/*
 * ts_safetensors.c - mapping and checking .safetensors files.
 *
 * Every number in the header is treated as hostile: lengths are compared
 * against the file before any pointer is formed, element counts are
 * multiplied with overflow checks, and byte ranges are sorted to prove they
 * do not overlap.
 */
#include "ts_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ conversions */

float ts_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

float ts_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t ts_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff)
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 0x1f)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, which is the right rounding */
    return (uint16_t)half;
}

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    int size;
    ts_dtype dtype;
} dtypes[] = {
    {"F32", 4, TS_DTYPE_F32},    {"F16", 2, TS_DTYPE_F16},   {"BF16", 2, TS_DTYPE_BF16},
    {"F64", 8, TS_DTYPE_OTHER},  {"I64", 8, TS_DTYPE_OTHER}, {"U64", 8, TS_DTYPE_OTHER},
    {"I32", 4, TS_DTYPE_OTHER},  {"U32", 4, TS_DTYPE_OTHER}, {"I16", 2, TS_DTYPE_OTHER},
    {"U16", 2, TS_DTYPE_OTHER},  {"I8", 1, TS_DTYPE_OTHER},  {"U8", 1, TS_DTYPE_OTHER},
    {"BOOL", 1, TS_DTYPE_OTHER},
};

int ts_safetensors_dtype_size(const char *name)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (strcmp(name, dtypes[i].name) == 0)
            return dtypes[i].size;
    return 0;
}

static int dtype_lookup(const char *name, ts_dtype *dt)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
        if (strcmp(name, dtypes[i].name) == 0) {
            *dt = dtypes[i].dtype;
            return dtypes[i].size;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- parsing */

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const ts_st_tensor *)a)->name, ((const ts_st_tensor *)b)->name);
}

typedef struct range {
    uint64_t begin, end;
    int index;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Reads a JSON integer that must be within [0, max]. */
static int json_u64(json_t *v, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v))
        return 0;
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return 0;
    *out = (uint64_t)i;
    return 1;
}

static ts_status parse_tensor(const char *name, json_t *obj, uint64_t data_size, ts_st_tensor *t,
                              const char *data, ts_error *err)
{
    if (strlen(name) >= TS_SAFETENSORS_NAME_MAX)
        return ts_error_set(err, TS_ERR_FORMAT, "tensor name \"%.40s...\" is longer than %d bytes",
                            name, TS_SAFETENSORS_NAME_MAX - 1);
    snprintf(t->name, sizeof(t->name), "%s", name);
    if (!json_is_object(obj))
        return ts_error_set(err, TS_ERR_FORMAT, "tensor %s: header entry is not an object", name);

    json_t *jd = json_object_get(obj, "dtype");
    json_t *js = json_object_get(obj, "shape");
    json_t *jo = json_object_get(obj, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
        return ts_error_set(err, TS_ERR_FORMAT,
                            "tensor %s: needs string dtype, array shape and array data_offsets",
                            name);

    const char *dn = json_string_value(jd);
    int esize = dtype_lookup(dn, &t->dtype);
    if (esize == 0)
        return ts_error_set(err, TS_ERR_FORMAT, "tensor %s: unknown dtype \"%.16s\"", name, dn);
    snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", dn);

    size_t nd = json_array_size(js);
    if (nd > TS_SAFETENSORS_MAX_DIMS)
        return ts_error_set(err, TS_ERR_FORMAT, "tensor %s: %zu dimensions (at most %d)", name, nd,
                            TS_SAFETENSORS_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t count = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_u64(json_array_get(js, i), (uint64_t)TS_SAFETENSORS_DIM_MAX, &d))
            return ts_error_set(err, TS_ERR_FORMAT,
                                "tensor %s: dimension %zu is not an integer in [0, 2^31]", name, i);
        t->shape[i] = (int64_t)d;
        if (d != 0 && count > UINT64_MAX / 16 / d)
            return ts_error_set(err, TS_ERR_FORMAT, "tensor %s: shape's element count overflows",
                                name);
        count *= d;
    }
    t->count = (int64_t)count;

    uint64_t b, e;
    if (json_array_size(jo) != 2 || !json_u64(json_array_get(jo, 0), data_size, &b) ||
        !json_u64(json_array_get(jo, 1), data_size, &e) || e < b)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "tensor %s: data_offsets are not [begin, end] inside the %llu-byte "
                            "data section",
                            name, (unsigned long long)data_size);
    if (e - b != count * (uint64_t)esize)
        return ts_error_set(
            err, TS_ERR_FORMAT, "tensor %s: %llu bytes stored but shape and dtype %s need %llu",
            name, (unsigned long long)(e - b), dn, (unsigned long long)(count * (uint64_t)esize));
    t->data = data + b;
    t->nbytes = (size_t)(e - b);
    return TS_OK;
}

ts_status ts_safetensors_parse(const void *buf, size_t size, ts_safetensors **out, ts_error *err)
{
    const unsigned char *p = buf;
    ts_safetensors *st = NULL;
    json_t *root = NULL;
    range *ranges = NULL;
    ts_status s;

    if (size < 8)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "safetensors file is %zu bytes, shorter than its 8-byte header length",
                            size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > TS_SAFETENSORS_HEADER_MAX)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "safetensors header declares %llu bytes (limit %u); not a valid file",
                            (unsigned long long)hlen, TS_SAFETENSORS_HEADER_MAX);
    if (hlen > size - 8)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "safetensors header declares %llu bytes but the file has only %zu "
                            "after the length; the file is truncated",
                            (unsigned long long)hlen, size - 8);

    json_error_t jerr;
    root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        s = ts_error_set(err, TS_ERR_FORMAT,
                         "safetensors header is not a JSON object (%s at byte %d)",
                         root ? "not an object" : jerr.text, root ? 0 : jerr.position);
        goto fail;
    }

    const char *data = (const char *)p + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    st = calloc(1, sizeof(*st));
    size_t n = json_object_size(root);
    st->tensors = calloc(n ? n : 1, sizeof(ts_st_tensor));
    ranges = calloc(n ? n : 1, sizeof(range));
    if (!st->tensors || !ranges) {
        s = ts_error_set(err, TS_ERR_NOMEM, "out of memory reading a safetensors header");
        goto fail;
    }

    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (json_is_object(val) && !st->metadata)
                st->metadata = json_dumps(val, JSON_COMPACT);
            continue;
        }
        ts_st_tensor *t = &st->tensors[st->n_tensors];
        s = parse_tensor(key, val, data_size, t, data, err);
        if (s != TS_OK)
            goto fail;
        ranges[st->n_tensors].begin = (uint64_t)((const char *)t->data - data);
        ranges[st->n_tensors].end = ranges[st->n_tensors].begin + t->nbytes;
        ranges[st->n_tensors].index = st->n_tensors;
        st->n_tensors++;
    }

    /* Byte ranges must not overlap (empty tensors take no bytes). */
    qsort(ranges, (size_t)st->n_tensors, sizeof(range), cmp_range);
    for (int i = 1; i < st->n_tensors; i++) {
        if (ranges[i].begin < ranges[i - 1].end && ranges[i].begin != ranges[i].end) {
            s = ts_error_set(err, TS_ERR_FORMAT, "tensor %s: data overlaps tensor %s",
                             st->tensors[ranges[i].index].name,
                             st->tensors[ranges[i - 1].index].name);
            goto fail;
        }
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof(ts_st_tensor), cmp_by_name);

    free(ranges);
    json_decref(root);
    *out = st;
    return TS_OK;

fail:
    free(ranges);
    if (st) {
        free(st->metadata);
        free(st->tensors);
        free(st);
    }
    json_decref(root);
    return s;
}

ts_status ts_safetensors_open(const char *path, ts_safetensors **out, ts_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_error_set(err, errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                            "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ts_error_set(err, TS_ERR_IO, "%s is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return ts_error_set(err, TS_ERR_FORMAT, "%s: %zu bytes is too short for safetensors", path,
                            size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return ts_error_set(err, TS_ERR_IO, "cannot map %s: %s", path, strerror(errno));

    ts_safetensors *st;
    ts_status s = ts_safetensors_parse(map, size, &st, err);
    if (s != TS_OK) {
        munmap(map, size);
        return ts_error_wrap(err, "%s", path);
    }
    st->map = map;
    st->map_size = size;
    *out = st;
    return TS_OK;
}

void ts_safetensors_close(ts_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->map_size);
    free(st->metadata);
    free(st->tensors);
    free(st);
}

const ts_st_tensor *ts_safetensors_find(const ts_safetensors *st, const char *name)
{
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0)
            return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------- writing */

ts_status ts_safetensors_write_f32(const char *path, int n, const char *const *names,
                                   const int *ndims, const int64_t *const *shapes,
                                   const float *const *data, ts_error *err)
{
    json_t *root = json_object();
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        uint64_t count = 1;
        for (int d = 0; d < ndims[i]; d++) {
            json_array_append_new(shape, json_integer(shapes[i][d]));
            count *= (uint64_t)shapes[i][d];
        }
        json_t *t = json_object();
        json_object_set_new(t, "dtype", json_string("F32"));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + count * 4)));
        json_object_set_new(root, names[i], t);
        off += count * 4;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory writing a safetensors header");
    size_t hlen = strlen(text);
    size_t padded = (hlen + 7) & ~(size_t)7;

    FILE *f = fopen(path, "wb");
    if (!f) {
        free(text);
        return ts_error_set(err, TS_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(text, 1, hlen, f) == hlen;
    for (size_t i = hlen; i < padded && ok; i++)
        ok = fputc(' ', f) != EOF;
    for (int i = 0; i < n && ok; i++) {
        size_t count = 1;
        for (int d = 0; d < ndims[i]; d++)
            count *= (size_t)shapes[i][d];
        ok = fwrite(data[i], sizeof(float), count, f) == count;
    }
    free(text);
    if (fclose(f) != 0 || !ok)
        return ts_error_set(err, TS_ERR_IO, "cannot write %s", path);
    return TS_OK;
}
