/*
 * vision_fixture.h - shared helpers of the vision unit tests: fixture paths,
 * lossless WebP photos decoded straight with libwebp (the same pixels the
 * JavaScript golden generator read), and the face models folder.
 */
#ifndef VISION_FIXTURE_H
#define VISION_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

#include "ts_image.h"

static inline const char *vision_fixtures(void)
{
    const char *f = getenv("TS_FIXTURES");
    return f ? f : "tests/fixtures";
}

/* $TOGETHERSHOT_FACE_MODELS, else <source root>/models/face (scripts/setup.sh). */
static inline const char *vision_models_dir(void)
{
    static char buf[4096];
    const char *env = getenv("TOGETHERSHOT_FACE_MODELS");
    if (env && *env)
        return env;
    const char *root = getenv("TS_SOURCE_ROOT");
    snprintf(buf, sizeof buf, "%s/models/face", root ? root : ".");
    return buf;
}

/* Decodes tests/fixtures/vision/<name> into img (pixels from malloc). */
static inline int vision_load_webp(const char *name, ts_image *img)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vision/%s", vision_fixtures(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *data = malloc((size_t)n);
    size_t got = data ? fread(data, 1, (size_t)n, f) : 0;
    fclose(f);
    if (got != (size_t)n) {
        free(data);
        return 0;
    }
    int w, h;
    uint8_t *rgb = WebPDecodeRGB(data, (size_t)n, &w, &h);
    free(data);
    if (!rgb)
        return 0;
    img->width = w;
    img->height = h;
    img->pixels = malloc((size_t)w * h * 3);
    memcpy(img->pixels, rgb, (size_t)w * h * 3);
    WebPFree(rgb);
    return 1;
}

#endif
