/*
 * image_fixtures.h - helpers shared by the image tests: read a fixture file,
 * read a binary PPM reference (parsed here, independently of the decoders
 * under test), and compare pixels.
 */
#ifndef IMAGE_FIXTURES_H
#define IMAGE_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_image.h"

/* Reads $TS_FIXTURES/image/<name> into a malloc'd buffer; NULL if missing. */
static inline uint8_t *fixture_read(const char *name, size_t *len)
{
    const char *root = getenv("TS_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/image/%s", root ? root : "tests/fixtures", name);
    FILE *f = fopen(path, "rb");
    *len = 0;
    if (!f) {
        fprintf(stderr, "missing fixture %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)n : 0;
    return buf;
}

/* Reads a "P6\n<w> <h>\n255\n" reference into *img; 0 on success. */
static inline int fixture_ppm(const char *name, ts_image *img)
{
    size_t len;
    uint8_t *buf = fixture_read(name, &len);
    int w, h, maxv, used = 0;
    int rc = -1;
    char head[64] = {0};
    if (buf)
        memcpy(head, buf, len < sizeof head - 1 ? len : sizeof head - 1);
    if (buf && sscanf(head, "P6 %d %d %d%n", &w, &h, &maxv, &used) == 3 && maxv == 255 &&
        (size_t)used + 1 + (size_t)w * h * 3 == len && ts_image_alloc(img, w, h, NULL) == TS_OK) {
        memcpy(img->pixels, buf + used + 1, (size_t)w * h * 3);
        rc = 0;
    }
    free(buf);
    return rc;
}

/* Largest per-channel difference; 256 if the sizes differ. */
static inline int image_max_diff(const ts_image *a, const ts_image *b)
{
    if (!a->pixels || !b->pixels || a->width != b->width || a->height != b->height)
        return 256;
    int worst = 0;
    for (size_t i = 0; i < (size_t)a->width * a->height * 3; i++) {
        int d = abs((int)a->pixels[i] - (int)b->pixels[i]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

#endif
