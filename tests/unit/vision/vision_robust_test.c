/*
 * vision_robust_test.c - hostile bytes into the two text parsers of the
 * portrait check, with a fixed seed so every run is the same: random and
 * mutated UTF-8 into prompt screening, and byte-level mutations of a valid
 * gallery file into the gallery loader. Each input must come back as a
 * result or an error, never a crash or an out-of-bounds access (the
 * sanitizer build is what makes this test bite).
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ts_gallery.h"
#include "ts_names.h"
#include "ts_test.h"

static uint32_t seed = 0x5eed;

static uint32_t next(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

static void test_random_prompts(void)
{
    static const char *pieces[] = {"Tom",      " ",
                                   "H4nks",    "\xc3",
                                   "\xa9",     "\xe2\x80\x8b",
                                   "$",        "@",
                                   "1",        "\xd0\x9d",
                                   "\xff",     "\xcc\x81",
                                   "\xef\xbc", "I",
                                   "-",        "\xf0\x9f\x98\x80"};
    ts_names_key key;
    TS_CHECK_INT_EQ(ts_names_key_make("Tom Hanks", &key, NULL), TS_OK);
    int matched = 0;
    for (int round = 0; round < 3000; round++) {
        char buf[256];
        size_t len = 0;
        int parts = (int)(next() % 24);
        for (int p = 0; p < parts; p++) {
            const char *s = pieces[next() % (sizeof pieces / sizeof pieces[0])];
            size_t n = strlen(s);
            if (len + n >= sizeof buf)
                break;
            memcpy(buf + len, s, n);
            len += n;
        }
        /* Now and then a raw random byte anywhere. */
        if (len && next() % 3 == 0)
            buf[next() % len] = (char)(next() % 255 + 1);
        buf[len] = 0;
        ts_names_text text;
        TS_CHECK_INT_EQ(ts_names_text_make(buf, &text, NULL), TS_OK);
        TS_CHECK(text.len <= 2 * len);
        matched += ts_names_text_contains(&text, &key);
        ts_names_text_free(&text);
    }
    TS_CHECK(matched > 0); /* the pieces do spell the name now and then */
    ts_names_key_free(&key);
}

static void test_mutated_gallery_files(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/ts-vision-robust-XXXXXX");
    if (!mkdtemp(dir)) {
        TS_CHECK(0);
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/g.json", dir);

    /* A valid gallery to start from. */
    ts_gallery *g;
    ts_gallery_new(&g, NULL);
    float d[2][TS_FACE_DESCRIPTOR_DIM];
    for (int i = 0; i < TS_FACE_DESCRIPTOR_DIM; i++)
        d[0][i] = d[1][i] = (float)i / 1000.0f;
    ts_gallery_add(g, "Ada Example", (const char *[]){"Ada"}, 1,
                   (const float(*)[TS_FACE_DESCRIPTOR_DIM])d, 2, NULL);
    ts_gallery_save(g, path, NULL);
    ts_gallery_free(g);
    FILE *f = fopen(path, "rb");
    char orig[16384];
    size_t n = f ? fread(orig, 1, sizeof orig, f) : 0;
    if (f)
        fclose(f);
    TS_CHECK(n > 100 && n < sizeof orig);

    int loaded = 0, refused = 0;
    for (int round = 0; round < 400; round++) {
        char buf[16384];
        size_t len = n;
        memcpy(buf, orig, n);
        int edits = 1 + (int)(next() % 4);
        for (int e = 0; e < edits; e++) {
            switch (next() % 3) {
            case 0: /* overwrite a byte with a JSON-ish one */
                buf[next() % len] = "{}[]\",:0-9.eE\\ anu"[next() % 18];
                break;
            case 1: /* truncate */
                len = next() % len + 1;
                break;
            default: /* duplicate a slice */
                if (len < sizeof buf / 2) {
                    size_t at = next() % len, cnt = next() % (len - at);
                    memmove(buf + at + cnt, buf + at, len - at);
                    len += cnt;
                }
            }
        }
        f = fopen(path, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        ts_error err;
        ts_gallery *out = NULL;
        if (ts_gallery_load(path, &out, &err) == TS_OK) {
            loaded++;
            TS_CHECK(out != NULL);
            for (int i = 0; out && i < out->count; i++)
                TS_CHECK(out->persons[i].n_descriptors <= TS_GALLERY_DESCRIPTORS_MAX);
            ts_gallery_free(out);
        } else {
            refused++;
            TS_CHECK(out == NULL && err.message[0]);
        }
    }
    TS_CHECK(refused > 0);
    fprintf(stderr, "  mutated galleries: %d loaded, %d refused\n", loaded, refused);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    TS_RUN(test_random_prompts);
    TS_RUN(test_mutated_gallery_files);
    return ts_test_finish();
}
