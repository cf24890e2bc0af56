/* ts_face_weights.c - TensorFlow.js weights manifests and shards. */
#include "ts_face_weights.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_NAME_MAX  256
#define TENSORS_MAX     1024
#define MANIFEST_MAX    (1 << 20)
#define PATH_BUFFER_MAX 4096

struct ts_face_weights {
    ts_face_tensor *tensors;
    size_t count;
};

/* ---------------------------------------------------------------- files */

static ts_status read_file(const char *path, size_t max, uint8_t **out, size_t *out_len,
                           ts_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_error_set(err, errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                            "cannot open face model file %s: %s; run scripts/setup.sh or set "
                            "TOGETHERSHOT_FACE_MODELS",
                            path, strerror(errno));
    ts_status st = TS_OK;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        st = ts_error_set(err, TS_ERR_IO, "cannot seek in %s", path);
        goto done;
    }
    long size = ftell(f);
    if (size < 0 || (size_t)size > max) {
        st = ts_error_set(err, TS_ERR_LIMIT, "face model file %s is larger than %zu bytes", path,
                          max);
        goto done;
    }
    rewind(f);
    buf = malloc((size_t)size + 1);
    if (!buf) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = ts_error_set(err, TS_ERR_IO, "short read from %s", path);
        free(buf);
        buf = NULL;
        goto done;
    }
    buf[size] = 0;
    *out = buf;
    *out_len = (size_t)size;
done:
    fclose(f);
    return st;
}

/* A shard name must be a plain file name in the model folder. */
static int shard_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= SHARD_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!(c == '_' || c == '-' || c == '.' || (c >= '0' && c <= '9') ||
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- decoding */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decodes one weight entry starting at data[*pos]; advances *pos. */
static ts_status decode_entry(json_t *spec, const uint8_t *data, size_t len, size_t *pos,
                              ts_face_tensor *t, ts_error *err)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    const char *dtype = json_string_value(json_object_get(spec, "dtype"));
    json_t *shape = json_object_get(spec, "shape");
    if (!name || !dtype || !json_is_array(shape) || strlen(name) > 256)
        return ts_error_set(err, TS_ERR_FORMAT, "weights manifest entry lacks name/dtype/shape");
    if (json_array_size(shape) > TS_FACE_TENSOR_MAX_RANK)
        return ts_error_set(err, TS_ERR_FORMAT, "weight %s has rank above %d", name,
                            TS_FACE_TENSOR_MAX_RANK);

    t->rank = (int)json_array_size(shape);
    t->count = 1;
    for (int i = 0; i < t->rank; i++) {
        json_int_t d = json_integer_value(json_array_get(shape, (size_t)i));
        if (!json_is_integer(json_array_get(shape, (size_t)i)) || d < 0 || d > (1 << 24))
            return ts_error_set(err, TS_ERR_FORMAT, "weight %s has a bad dimension", name);
        t->shape[i] = (int)d;
        t->count *= (size_t)d;
        if (t->count > TS_FACE_WEIGHTS_MAX_BYTES)
            return ts_error_set(err, TS_ERR_FORMAT, "weight %s is too large", name);
    }

    int is_float = strcmp(dtype, "float32") == 0;
    if (!is_float && strcmp(dtype, "int32") != 0)
        return ts_error_set(err, TS_ERR_UNSUPPORTED, "weight %s has dtype %s", name, dtype);

    json_t *quant = json_object_get(spec, "quantization");
    size_t code_bytes = 4;
    double scale = 1.0, min = 0.0;
    if (quant) {
        const char *qtype = json_string_value(json_object_get(quant, "dtype"));
        json_t *js = json_object_get(quant, "scale"), *jm = json_object_get(quant, "min");
        if (!qtype || !json_is_number(js) || !json_is_number(jm))
            return ts_error_set(err, TS_ERR_UNSUPPORTED, "weight %s has unsupported quantization",
                                name);
        if (strcmp(qtype, "uint8") == 0)
            code_bytes = 1;
        else if (strcmp(qtype, "uint16") == 0)
            code_bytes = 2;
        else
            return ts_error_set(err, TS_ERR_UNSUPPORTED, "weight %s is quantized as %s", name,
                                qtype);
        scale = json_number_value(js);
        min = json_number_value(jm);
    }

    size_t bytes = t->count * code_bytes;
    if (*pos > len || len - *pos < bytes)
        return ts_error_set(err, TS_ERR_FORMAT, "weight shards end before weight %s", name);

    t->name = strdup(name);
    t->values = malloc((t->count ? t->count : 1) * sizeof(float));
    if (!t->name || !t->values)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory loading weight %s", name);

    const uint8_t *p = data + *pos;
    for (size_t i = 0; i < t->count; i++) {
        double v;
        if (code_bytes == 1)
            v = p[i] * scale + min;
        else if (code_bytes == 2)
            v = (p[2 * i] | p[2 * i + 1] << 8) * scale + min;
        else if (is_float) {
            uint32_t bits = le32(p + 4 * i);
            float f;
            memcpy(&f, &bits, sizeof f);
            v = f;
        } else {
            v = (double)(int32_t)le32(p + 4 * i);
        }
        /* TensorFlow.js rounds dequantized int32 values. */
        t->values[i] = (float)(is_float ? v : (double)(long long)(v + (v < 0 ? -0.5 : 0.5)));
    }
    *pos += bytes;
    return TS_OK;
}

static ts_status load_group(const char *dir, json_t *group, ts_face_weights *w, ts_error *err)
{
    json_t *paths = json_object_get(group, "paths");
    json_t *specs = json_object_get(group, "weights");
    if (!json_is_array(paths) || !json_is_array(specs))
        return ts_error_set(err, TS_ERR_FORMAT, "weights manifest group lacks paths/weights");

    /* Concatenate the shards of this group. */
    uint8_t *data = NULL;
    size_t len = 0;
    ts_status st = TS_OK;
    for (size_t i = 0; i < json_array_size(paths); i++) {
        const char *shard = json_string_value(json_array_get(paths, i));
        if (!shard || !shard_name_ok(shard)) {
            st = ts_error_set(err, TS_ERR_FORMAT, "weights manifest names a bad shard file");
            goto done;
        }
        char path[PATH_BUFFER_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, shard) >= (int)sizeof path) {
            st = ts_error_set(err, TS_ERR_ARG, "face model folder path is too long");
            goto done;
        }
        uint8_t *part;
        size_t part_len;
        st = read_file(path, TS_FACE_WEIGHTS_MAX_BYTES - len, &part, &part_len, err);
        if (st != TS_OK)
            goto done;
        uint8_t *grown = realloc(data, len + part_len + 1);
        if (!grown) {
            free(part);
            st = ts_error_set(err, TS_ERR_NOMEM, "out of memory loading %s", path);
            goto done;
        }
        data = grown;
        memcpy(data + len, part, part_len);
        len += part_len;
        free(part);
    }

    size_t pos = 0;
    for (size_t i = 0; i < json_array_size(specs); i++) {
        if (w->count >= TENSORS_MAX) {
            st = ts_error_set(err, TS_ERR_LIMIT, "weights manifest lists over %d tensors",
                              TENSORS_MAX);
            goto done;
        }
        ts_face_tensor *t = &w->tensors[w->count++];
        st = decode_entry(json_array_get(specs, i), data, len, &pos, t, err);
        if (st != TS_OK)
            goto done;
    }
done:
    free(data);
    return st;
}

/* ---------------------------------------------------------------- public */

ts_status ts_face_weights_load(const char *dir, const char *model_name, ts_face_weights **out,
                               ts_error *err)
{
    *out = NULL;
    char path[PATH_BUFFER_MAX];
    if (snprintf(path, sizeof path, "%s/%s-weights_manifest.json", dir, model_name) >=
        (int)sizeof path)
        return ts_error_set(err, TS_ERR_ARG, "face model folder path is too long");

    uint8_t *text;
    size_t text_len;
    ts_status st = read_file(path, MANIFEST_MAX, &text, &text_len, err);
    if (st != TS_OK)
        return st;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)text, text_len, 0, &jerr);
    free(text);
    if (!json_is_array(root)) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_FORMAT, "%s is not a weights manifest (JSON array)", path);
    }

    ts_face_weights *w = calloc(1, sizeof *w);
    if (w)
        w->tensors = calloc(TENSORS_MAX, sizeof *w->tensors);
    if (!w || !w->tensors) {
        free(w);
        json_decref(root);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory loading %s", path);
    }
    for (size_t i = 0; i < json_array_size(root) && st == TS_OK; i++)
        st = load_group(dir, json_array_get(root, i), w, err);
    json_decref(root);
    if (st != TS_OK) {
        ts_face_weights_free(w);
        return ts_error_wrap(err, "loading face model %s", model_name);
    }
    *out = w;
    return TS_OK;
}

void ts_face_weights_free(ts_face_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].values);
    }
    free(w->tensors);
    free(w);
}

const ts_face_tensor *ts_face_weights_get(const ts_face_weights *w, const char *name, int rank,
                                          ts_error *err)
{
    for (size_t i = 0; i < w->count; i++) {
        const ts_face_tensor *t = &w->tensors[i];
        if (t->name && strcmp(t->name, name) == 0) {
            if (t->rank != rank) {
                ts_error_set(err, TS_ERR_FORMAT, "face model tensor %s has rank %d, expected %d",
                             name, t->rank, rank);
                return NULL;
            }
            return t;
        }
    }
    ts_error_set(err, TS_ERR_FORMAT, "face model lacks tensor %s", name);
    return NULL;
}
