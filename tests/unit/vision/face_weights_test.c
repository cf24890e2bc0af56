/*
 * face_weights_test.c - the TensorFlow.js weights reader on small hand-made
 * manifests: float32, uint8- and uint16-quantized (code * scale + min) and
 * int32 tensors across two shards decode to the values written; hostile
 * manifests (a shard that ends early, a shard path leaving the folder, a
 * missing file, bad shapes, an unknown dtype) are refused with an error,
 * never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ts_face_weights.h"
#include "ts_test.h"

static char dir[256];

static void write_file(const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

static void write_manifest(const char *model, const char *json)
{
    char name[256];
    snprintf(name, sizeof name, "%s-weights_manifest.json", model);
    write_file(name, json, strlen(json));
}

static void test_decodes_every_kind(void)
{
    /* Shard a: a float32 (2) then 3 uint8 codes; shard b: 2 uint16 codes and an int32. */
    uint8_t a[8 + 3], b[4 + 4];
    float f[2] = {1.5f, -2.25f};
    memcpy(a, f, 8); /* little-endian host, as the format is */
    a[8] = 0;
    a[9] = 10;
    a[10] = 255;
    b[0] = 0x00;
    b[1] = 0x01; /* 256 */
    b[2] = 0x02;
    b[3] = 0x00; /* 2 */
    int32_t i32 = -7;
    memcpy(b + 4, &i32, 4);
    write_file("m.bin.a", a, sizeof a);
    write_file("m.bin.b", b, sizeof b);
    write_manifest("m", "[{\"paths\": [\"m.bin.a\", \"m.bin.b\"], \"weights\": ["
                        "{\"name\": \"f\", \"shape\": [2], \"dtype\": \"float32\"},"
                        "{\"name\": \"q8\", \"shape\": [1, 3], \"dtype\": \"float32\","
                        " \"quantization\": {\"dtype\": \"uint8\", \"scale\": 0.5, \"min\": -1}},"
                        "{\"name\": \"q16\", \"shape\": [2], \"dtype\": \"float32\","
                        " \"quantization\": {\"dtype\": \"uint16\", \"scale\": 0.25, \"min\": 1}},"
                        "{\"name\": \"i\", \"shape\": [], \"dtype\": \"int32\"}]}]");
    ts_face_weights *w = NULL;
    ts_error err;
    TS_CHECK_INT_EQ(ts_face_weights_load(dir, "m", &w, &err), TS_OK);
    if (!w)
        return;
    const ts_face_tensor *t = ts_face_weights_get(w, "f", 1, &err);
    TS_CHECK(t && t->count == 2 && t->values[0] == 1.5f && t->values[1] == -2.25f);
    t = ts_face_weights_get(w, "q8", 2, &err);
    TS_CHECK(t && t->count == 3);
    if (t) {
        TS_CHECK_NEAR(t->values[0], -1.0, 1e-7);
        TS_CHECK_NEAR(t->values[1], 4.0, 1e-7);
        TS_CHECK_NEAR(t->values[2], 126.5, 1e-7);
    }
    t = ts_face_weights_get(w, "q16", 1, &err);
    TS_CHECK(t && t->values[0] == 65.0f && t->values[1] == 1.5f);
    t = ts_face_weights_get(w, "i", 0, &err);
    TS_CHECK(t && t->count == 1 && t->values[0] == -7.0f);
    TS_CHECK(ts_face_weights_get(w, "f", 4, &err) == NULL); /* wrong rank */
    TS_CHECK_INT_EQ(err.status, TS_ERR_FORMAT);
    TS_CHECK(ts_face_weights_get(w, "nope", 1, &err) == NULL);
    ts_face_weights_free(w);
}

static void expect_refused(const char *json, ts_status want)
{
    write_manifest("bad", json);
    ts_face_weights *w = NULL;
    ts_error err;
    ts_error_clear(&err);
    ts_status st = ts_face_weights_load(dir, "bad", &w, &err);
    if (st != want)
        fprintf(stderr, "  manifest %s: got %d (%s)\n", json, (int)st, err.message);
    TS_CHECK_INT_EQ(st, want);
    TS_CHECK(w == NULL);
    TS_CHECK(err.message[0] != 0);
}

static void test_hostile_manifests(void)
{
    uint8_t four[4] = {0};
    write_file("short.bin", four, sizeof four);
    expect_refused("[{\"paths\": [\"short.bin\"], \"weights\": [{\"name\": \"x\", "
                   "\"shape\": [2], \"dtype\": \"float32\"}]}]",
                   TS_ERR_FORMAT);
    expect_refused("[{\"paths\": [\"../etc/passwd\"], \"weights\": []}]", TS_ERR_FORMAT);
    expect_refused("[{\"paths\": [\"absent.bin\"], \"weights\": []}]", TS_ERR_NOT_FOUND);
    expect_refused("[{\"paths\": [\"short.bin\"], \"weights\": [{\"name\": \"x\", "
                   "\"shape\": [-1], \"dtype\": \"float32\"}]}]",
                   TS_ERR_FORMAT);
    expect_refused("[{\"paths\": [\"short.bin\"], \"weights\": [{\"name\": \"x\", "
                   "\"shape\": [1, 1, 1, 1, 1], \"dtype\": \"float32\"}]}]",
                   TS_ERR_FORMAT);
    expect_refused("[{\"paths\": [\"short.bin\"], \"weights\": [{\"name\": \"x\", "
                   "\"shape\": [1], \"dtype\": \"complex64\"}]}]",
                   TS_ERR_UNSUPPORTED);
    expect_refused("[{\"paths\": [\"short.bin\"], \"weights\": [{\"name\": \"x\", "
                   "\"shape\": [100000, 100000], \"dtype\": \"float32\"}]}]",
                   TS_ERR_FORMAT);
    expect_refused("{\"not\": \"an array\"}", TS_ERR_FORMAT);
    expect_refused("[{\"paths\": [\"short.bin\"], \"weights\": [{\"shape\": [1]}]}]",
                   TS_ERR_FORMAT);

    ts_face_weights *w = NULL;
    ts_error err;
    TS_CHECK_INT_EQ(ts_face_weights_load(dir, "no_such_model", &w, &err), TS_ERR_NOT_FOUND);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ts-face-weights-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    TS_RUN(test_decodes_every_kind);
    TS_RUN(test_hostile_manifests);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return ts_test_finish();
}
