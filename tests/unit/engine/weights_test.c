/*
 * weights_test.c - safetensors round trip and hostile files: each broken file
 * must be refused with the right status and a message naming what is wrong.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_ckpt.h"
#include "ts_safetensors.h"
#include "ts_weights.h"
#include "ts_test.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Writes 8-byte length + header + data bytes. */
static void write_raw(const char *name, const char *header, uint64_t declared_len, const void *data,
                      size_t data_len)
{
    char p[512];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(declared_len >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (data_len)
        fwrite(data, 1, data_len, f);
    fclose(f);
}

static ts_status open_named(const char *name, ts_error *err)
{
    char p[512];
    path_of(p, sizeof(p), name);
    ts_weights *w;
    ts_weights_create(&w, err);
    ts_status s = ts_weights_add_file(w, p, "", err);
    ts_weights_destroy(w);
    return s;
}

static void test_round_trip(void)
{
    ts_error err;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1, 0.5f, 7};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    const char *names[2] = {"layer.weight", "layer.bias"};
    const int nd[2] = {2, 1};
    const int64_t *shapes[2] = {sa, sb};
    const float *data[2] = {a, b};
    char p[512];
    path_of(p, sizeof(p), "ok.safetensors");
    TS_CHECK_INT_EQ(ts_safetensors_write_f32(p, 2, names, nd, shapes, data, &err), TS_OK);

    ts_weights *w;
    ts_weights_create(&w, &err);
    TS_CHECK_INT_EQ(ts_weights_add_file(w, p, "unet.", &err), TS_OK);
    TS_CHECK_INT_EQ(ts_weights_count(w), 2);
    const float *got;
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "unet.layer.weight", 2, sa, &got, &err), TS_OK);
    TS_CHECK(got && memcmp(got, a, sizeof(a)) == 0);
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "unet.layer.bias", 1, sb, &got, &err), TS_OK);
    TS_CHECK(got && got[2] == 7.0f);

    /* Missing tensor: not found, named with the expected shape. */
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "unet.other.weight", 2, sa, &got, &err),
                    TS_ERR_NOT_FOUND);
    TS_CHECK(strstr(err.message, "unet.other.weight") && strstr(err.message, "(2, 3)"));

    /* Shape mismatch: format error naming both shapes. */
    int64_t wrong[2] = {3, 2};
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "unet.layer.weight", 2, wrong, &got, &err),
                    TS_ERR_FORMAT);
    TS_CHECK(strstr(err.message, "unet.layer.weight") && strstr(err.message, "(2, 3)") &&
             strstr(err.message, "(3, 2)"));

    /* Alias: row 1 of the matrix as a vector. */
    int64_t row[1] = {3};
    TS_CHECK_INT_EQ(ts_weights_alias(w, "row1", "unet.layer.weight", 3, 1, row, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "row1", 1, row, &got, &err), TS_OK);
    TS_CHECK(got && got[0] == 4.0f && got[2] == 6.0f);
    TS_CHECK(ts_weights_alias(w, "row2", "unet.layer.weight", 4, 1, row, &err) == TS_ERR_FORMAT);

    /* The same file twice under the same prefix: duplicate names refused. */
    TS_CHECK_INT_EQ(ts_weights_add_file(w, p, "unet.", &err), TS_ERR_FORMAT);
    TS_CHECK(strstr(err.message, "defined twice") != NULL);
    ts_weights_destroy(w);
}

static void test_half_types(void)
{
    ts_error err;
    /* f16 1.0, -2.0, 0.5 and bf16 1.0, 3.0 after them (unaligned offsets are fine). */
    unsigned char data[10] = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x80, 0x3f, 0x40, 0x40};
    write_raw("half.safetensors",
              "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[6,10]}}",
              strlen("{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[6,10]}}"),
              data, sizeof(data));
    char p[512];
    path_of(p, sizeof(p), "half.safetensors");
    ts_weights *w;
    ts_weights_create(&w, &err);
    TS_CHECK_INT_EQ(ts_weights_add_file(w, p, NULL, &err), TS_OK);
    const float *got;
    int64_t s3[1] = {3}, s2[1] = {2};
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "h", 1, s3, &got, &err), TS_OK);
    TS_CHECK(got && got[0] == 1.0f && got[1] == -2.0f && got[2] == 0.5f);
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "b", 1, s2, &got, &err), TS_OK);
    TS_CHECK(got && got[0] == 1.0f && got[1] == 3.0f);

    /* Views hand out the stored half values, unconverted, with the same checks. */
    ts_wview v;
    TS_CHECK_INT_EQ(ts_weights_get_view(w, "h", 1, s3, &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.dtype, TS_DTYPE_F16);
    TS_CHECK_INT_EQ(v.count, 3);
    TS_CHECK(v.data && memcmp(v.data, data, 6) == 0);
    TS_CHECK_INT_EQ(ts_weights_get_view(w, "b", 1, s2, &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.dtype, TS_DTYPE_BF16);
    TS_CHECK(v.data && memcmp(v.data, data + 6, 4) == 0);
    TS_CHECK_INT_EQ(ts_weights_get_view(w, "b", 1, s3, &v, &err), TS_ERR_FORMAT);
    TS_CHECK_INT_EQ(ts_weights_get_view(w, "nothing", 1, s3, &v, &err), TS_ERR_NOT_FOUND);
    ts_weights_destroy(w);

    /* f16 conversion agrees with the round trip on a range of values. */
    float vals[] = {0.0f, 1e-7f, 6.1e-5f, 0.333f, 1.0f, -65504.0f, 1000.5f};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        TS_CHECK_NEAR(ts_f16_to_f32(ts_f32_to_f16(vals[i])), vals[i], fabs(vals[i]) * 1e-3 + 6e-8);
}

#define HOSTILE(name, header, data, n, expect, needle)                                             \
    do {                                                                                           \
        ts_error e_;                                                                               \
        write_raw(name, header, strlen(header), data, n);                                          \
        TS_CHECK_INT_EQ(open_named(name, &e_), expect);                                            \
        if (!strstr(e_.message, needle))                                                           \
            fprintf(stderr, "message for %s lacks \"%s\": %s\n", name, needle, e_.message);        \
        TS_CHECK(strstr(e_.message, needle) != NULL);                                              \
    } while (0)

static void test_hostile(void)
{
    ts_error err;
    static unsigned char zeros[64];

    /* Truncated: shorter than the length field. */
    char p[512];
    path_of(p, sizeof(p), "tiny.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    TS_CHECK_INT_EQ(open_named("tiny.safetensors", &err), TS_ERR_FORMAT);

    /* Header length past the end of the file. */
    write_raw("longhdr.safetensors", "{}", 1000, NULL, 0);
    TS_CHECK_INT_EQ(open_named("longhdr.safetensors", &err), TS_ERR_FORMAT);
    TS_CHECK(strstr(err.message, "truncated") != NULL);

    /* Header length absurd (past the limit). */
    write_raw("hugehdr.safetensors", "{}", (uint64_t)1 << 60, NULL, 0);
    TS_CHECK_INT_EQ(open_named("hugehdr.safetensors", &err), TS_ERR_FORMAT);

    HOSTILE("notjson.safetensors", "{not json", zeros, 0, TS_ERR_FORMAT, "JSON");
    HOSTILE("array.safetensors", "[1,2]", zeros, 0, TS_ERR_FORMAT, "JSON object");
    HOSTILE("past.safetensors",
            "{\"t.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", zeros, 8,
            TS_ERR_FORMAT, "t.w");
    HOSTILE("overlap.safetensors",
            "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"b.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            zeros, 24, TS_ERR_FORMAT, "overlaps");
    HOSTILE("size.safetensors",
            "{\"s.w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", zeros, 16,
            TS_ERR_FORMAT, "s.w");
    HOSTILE("dtype.safetensors",
            "{\"d.w\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,4]}}", zeros, 4,
            TS_ERR_FORMAT, "d.w");
    HOSTILE("overflow.safetensors",
            "{\"o.w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648,2147483648],"
            "\"data_offsets\":[0,16]}}",
            zeros, 16, TS_ERR_FORMAT, "o.w");
    HOSTILE("negdim.safetensors",
            "{\"n.w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", zeros, 16,
            TS_ERR_FORMAT, "n.w");
    HOSTILE("manydims.safetensors",
            "{\"m.w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
            zeros, 4, TS_ERR_FORMAT, "m.w");
    HOSTILE("badoffs.safetensors",
            "{\"x.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", zeros, 16,
            TS_ERR_FORMAT, "x.w");
    HOSTILE("noshape.safetensors", "{\"y.w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", zeros, 4,
            TS_ERR_FORMAT, "y.w");

    /* A known integer dtype opens, but asking for it as floats names it. */
    write_raw(
        "int.safetensors", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
        strlen("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}"), zeros, 16);
    path_of(p, sizeof(p), "int.safetensors");
    ts_weights *w;
    ts_weights_create(&w, &err);
    TS_CHECK_INT_EQ(ts_weights_add_file(w, p, "", &err), TS_OK);
    const float *got;
    int64_t s2[1] = {2};
    TS_CHECK_INT_EQ(ts_weights_get_f32(w, "ids", 1, s2, &got, &err), TS_ERR_FORMAT);
    TS_CHECK(strstr(err.message, "ids") && strstr(err.message, "I64"));
    ts_weights_destroy(w);

    /* Pickle files are refused by name and by content. */
    path_of(p, sizeof(p), "model.ckpt");
    f = fopen(p, "wb");
    fwrite("PK\x03\x04", 1, 4, f);
    fclose(f);
    TS_CHECK_INT_EQ(open_named("model.ckpt", &err), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(err.message, "pickle") && strstr(err.message, "safetensors"));
    path_of(p, sizeof(p), "disguised.safetensors");
    f = fopen(p, "wb");
    fwrite("\x80\x02}q\x00", 1, 5, f);
    fclose(f);
    TS_CHECK_INT_EQ(open_named("disguised.safetensors", &err), TS_ERR_UNSUPPORTED);

    /* A missing file. */
    TS_CHECK_INT_EQ(open_named("absent.safetensors", &err), TS_ERR_NOT_FOUND);
}

/* Single-file loading refuses what it cannot map, saying why. */
static void test_ckpt_refusals(void)
{
    ts_error err;
    char p[512];
    ts_weights *w = NULL;
    ts_ckpt_info info;
    float k[4 * 4 * 9] = {0};
    int64_t shape[4] = {4, 4, 3, 3};
    const char *names[1] = {"model.diffusion_model.input_blocks.0.0.weight"};
    const int nd[1] = {4};
    const int64_t *shapes[1] = {shape};
    const float *data[1] = {k};

    /* A UNet without any text encoder (an SDXL-like or partial file). */
    path_of(p, sizeof(p), "unet_only.safetensors");
    TS_CHECK_INT_EQ(ts_safetensors_write_f32(p, 1, names, nd, shapes, data, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_ckpt_load(p, &w, &info, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(err.message, "cond_stage_model") != NULL);

    /* Not a checkpoint at all (a diffusers part file). */
    path_of(p, sizeof(p), "ok.safetensors");
    TS_CHECK_INT_EQ(ts_ckpt_load(p, &w, &info, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(err.message, "model.diffusion_model") != NULL);

    /* Pickle checkpoints never reach the mapper. */
    path_of(p, sizeof(p), "model.ckpt");
    TS_CHECK_INT_EQ(ts_ckpt_load(p, &w, &info, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(err.message, "pickle") != NULL);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ts_weights_test.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    TS_RUN(test_round_trip);
    TS_RUN(test_half_types);
    TS_RUN(test_hostile);
    TS_RUN(test_ckpt_refusals);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return ts_test_finish();
}
