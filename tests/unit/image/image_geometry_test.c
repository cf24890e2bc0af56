/*
 * image_geometry_test.c - resize held to a plain reference written here
 * (each output pixel integrated or interpolated directly in double, no
 * separable tables), plus exact cases, crop, fit and tensor conversions.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_fixtures.h"
#include "ts_image.h"
#include "ts_test.h"

static uint32_t rng_state = 99;

static uint8_t rnd8(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (uint8_t)(rng_state >> 24);
}

static void random_image(ts_image *img, int w, int h)
{
    TS_CHECK_INT_EQ(ts_image_alloc(img, w, h, NULL), TS_OK);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img->pixels[i] = rnd8();
}

/* The weight of source index j for output index i along one axis, exactly
 * as the documented contract says (area coverage when shrinking, linear
 * between centres with clamped edges when enlarging). */
static double ref_weight(int n, int m, int i, int j)
{
    if (m < n) {
        double lo = (double)i * n / m, hi = (double)(i + 1) * n / m;
        double cover = fmin(hi, j + 1.0) - fmax(lo, (double)j);
        return cover > 0 ? cover / ((double)n / m) : 0.0;
    }
    double c = (i + 0.5) * n / m - 0.5;
    if (c < 0)
        c = 0;
    if (c > n - 1)
        c = n - 1;
    double d = fabs(c - j);
    return d < 1.0 ? 1.0 - d : 0.0;
}

static void ref_resize(const ts_image *src, int w, int h, ts_image *dst)
{
    TS_CHECK_INT_EQ(ts_image_alloc(dst, w, h, NULL), TS_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double acc = 0;
                for (int sy = 0; sy < src->height; sy++) {
                    double wy = ref_weight(src->height, h, y, sy);
                    if (wy == 0)
                        continue;
                    for (int sx = 0; sx < src->width; sx++) {
                        double wx = ref_weight(src->width, w, x, sx);
                        if (wx != 0)
                            acc += wy * wx * src->pixels[((size_t)sy * src->width + sx) * 3 + c];
                    }
                }
                long v = lround(acc);
                dst->pixels[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static void test_resize_matches_reference(void)
{
    static const int cases[][4] = {
        {37, 23, 10, 7},  {64, 64, 32, 32}, {10, 7, 37, 23}, {5, 3, 17, 11},
        {40, 10, 13, 30}, {9, 9, 9, 9},     {1, 1, 4, 3},    {30, 1, 7, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ts_image src = {0}, fast = {0}, ref = {0};
        random_image(&src, cases[k][0], cases[k][1]);
        TS_CHECK_INT_EQ(ts_image_resize(&src, cases[k][2], cases[k][3], &fast, NULL), TS_OK);
        ref_resize(&src, cases[k][2], cases[k][3], &ref);
        int diff = image_max_diff(&fast, &ref);
        if (diff > 1)
            fprintf(stderr, "  %dx%d -> %dx%d: max difference %d\n", cases[k][0], cases[k][1],
                    cases[k][2], cases[k][3], diff);
        TS_CHECK(diff <= 1); /* float vs double rounding at .5 only */
        ts_image_free(&src);
        ts_image_free(&fast);
        ts_image_free(&ref);
    }
}

static void test_resize_exact_cases(void)
{
    /* A constant image stays constant, shrinking and enlarging. */
    static const int sizes[][4] = {{37, 23, 10, 7}, {5, 3, 17, 11}, {100, 3, 7, 50}};
    for (size_t k = 0; k < 3; k++) {
        ts_image src = {0}, dst = {0};
        TS_CHECK_INT_EQ(ts_image_alloc(&src, sizes[k][0], sizes[k][1], NULL), TS_OK);
        memset(src.pixels, 173, (size_t)src.width * src.height * 3);
        TS_CHECK_INT_EQ(ts_image_resize(&src, sizes[k][2], sizes[k][3], &dst, NULL), TS_OK);
        int same = 1;
        for (size_t i = 0; i < (size_t)dst.width * dst.height * 3; i++)
            same &= dst.pixels[i] == 173;
        TS_CHECK(same);
        ts_image_free(&src);
        ts_image_free(&dst);
    }
    /* Halving averages each 2x2 block: (a + b + c + d) / 4, half up. */
    ts_image src = {0}, dst = {0};
    random_image(&src, 16, 10);
    TS_CHECK_INT_EQ(ts_image_resize(&src, 8, 5, &dst, NULL), TS_OK);
    int exact = 1;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = src.pixels;
                int s = p[((2 * y) * 16 + 2 * x) * 3 + c] + p[((2 * y) * 16 + 2 * x + 1) * 3 + c] +
                        p[((2 * y + 1) * 16 + 2 * x) * 3 + c] +
                        p[((2 * y + 1) * 16 + 2 * x + 1) * 3 + c];
                exact &= dst.pixels[(y * 8 + x) * 3 + c] == (s + 2) / 4;
            }
    TS_CHECK(exact);
    ts_image_free(&dst);
    /* Same size is a copy. */
    TS_CHECK_INT_EQ(ts_image_resize(&src, 16, 10, &dst, NULL), TS_OK);
    TS_CHECK_INT_EQ(image_max_diff(&src, &dst), 0);
    ts_image_free(&dst);
    TS_CHECK_INT_EQ(ts_image_resize(&src, 0, 10, &dst, NULL), TS_ERR_ARG);
    ts_image_free(&src);
}

static void test_crop_and_fit(void)
{
    ts_image src = {0}, dst = {0};
    random_image(&src, 20, 10);
    TS_CHECK_INT_EQ(ts_image_crop(&src, 3, 2, 5, 4, &dst, NULL), TS_OK);
    int same = 1;
    for (int y = 0; y < 4; y++)
        same &= !memcmp(dst.pixels + y * 5 * 3, src.pixels + ((y + 2) * 20 + 3) * 3, 15);
    TS_CHECK(same);
    ts_image_free(&dst);
    TS_CHECK_INT_EQ(ts_image_crop(&src, 16, 0, 5, 4, &dst, NULL), TS_ERR_ARG);
    TS_CHECK_INT_EQ(ts_image_crop(&src, -1, 0, 5, 4, &dst, NULL), TS_ERR_ARG);

    /* 20x10 into 16x16: 16x8, centred at y = 4, grey bars above and below. */
    const uint8_t pad[3] = {1, 2, 3};
    int placed[4];
    TS_CHECK_INT_EQ(ts_image_fit(&src, 16, 16, pad, &dst, placed, NULL), TS_OK);
    TS_CHECK_INT_EQ(placed[0], 0);
    TS_CHECK_INT_EQ(placed[1], 4);
    TS_CHECK_INT_EQ(placed[2], 16);
    TS_CHECK_INT_EQ(placed[3], 8);
    TS_CHECK(dst.pixels[0] == 1 && dst.pixels[1] == 2 && dst.pixels[2] == 3);
    size_t last = ((size_t)16 * 16 - 1) * 3;
    TS_CHECK(dst.pixels[last] == 1 && dst.pixels[last + 2] == 3);
    ts_image scaled = {0}, inner = {0};
    TS_CHECK_INT_EQ(ts_image_resize(&src, 16, 8, &scaled, NULL), TS_OK);
    TS_CHECK_INT_EQ(ts_image_crop(&dst, 0, 4, 16, 8, &inner, NULL), TS_OK);
    TS_CHECK_INT_EQ(image_max_diff(&scaled, &inner), 0);
    ts_image_free(&scaled);
    ts_image_free(&inner);
    ts_image_free(&dst);
    /* Tall into wide. */
    ts_image tall = {0};
    random_image(&tall, 10, 40);
    TS_CHECK_INT_EQ(ts_image_fit(&tall, 64, 32, pad, &dst, placed, NULL), TS_OK);
    TS_CHECK_INT_EQ(placed[2], 8);
    TS_CHECK_INT_EQ(placed[3], 32);
    TS_CHECK_INT_EQ(placed[0], 28);
    ts_image_free(&dst);
    ts_image_free(&tall);
    ts_image_free(&src);
}

static void test_tensors(void)
{
    /* Every byte value maps to v / 127.5 - 1 and back exactly. */
    ts_image img = {0}, back = {0};
    TS_CHECK_INT_EQ(ts_image_alloc(&img, 256, 1, NULL), TS_OK);
    for (int i = 0; i < 256; i++) {
        img.pixels[i * 3 + 0] = (uint8_t)i;
        img.pixels[i * 3 + 1] = (uint8_t)(255 - i);
        img.pixels[i * 3 + 2] = (uint8_t)(i * 7);
    }
    float *t = malloc(sizeof(float) * 3 * 256);
    ts_image_to_tensor(&img, t);
    TS_CHECK_NEAR(t[0], -1.0, 1e-6);
    TS_CHECK_NEAR(t[255], 1.0, 1e-6);
    TS_CHECK_NEAR(t[256 + 0], 1.0, 1e-6); /* plane G starts after 256 R values */
    TS_CHECK_NEAR(t[128], 128 / 127.5 - 1, 1e-6);
    TS_CHECK_INT_EQ(ts_image_from_tensor(t, 256, 1, &back, NULL), TS_OK);
    TS_CHECK_INT_EQ(image_max_diff(&img, &back), 0);
    ts_image_free(&back);

    /* Clamping, NaN, and rounding to nearest. */
    float odd[3] = {2.5f, -3.0f, NAN};
    TS_CHECK_INT_EQ(ts_image_from_tensor(odd, 1, 1, &back, NULL), TS_OK);
    TS_CHECK_INT_EQ(back.pixels[0], 255);
    TS_CHECK_INT_EQ(back.pixels[1], 0);
    TS_CHECK_INT_EQ(back.pixels[2], 0);
    ts_image_free(&back);
    /* (v + 1) * 127.5 = 99.4 -> 99, 99.6 -> 100, 0 -> 127.5 -> 128 */
    float near[3] = {99.4f / 127.5f - 1, 99.6f / 127.5f - 1, 0.0f};
    TS_CHECK_INT_EQ(ts_image_from_tensor(near, 1, 1, &back, NULL), TS_OK);
    TS_CHECK_INT_EQ(back.pixels[0], 99);
    TS_CHECK_INT_EQ(back.pixels[1], 100);
    TS_CHECK_INT_EQ(back.pixels[2], 128);
    ts_image_free(&back);

    /* Mask: grey / 255; a coloured pixel by BT.601 luma. */
    ts_image mask = {0};
    TS_CHECK_INT_EQ(ts_image_alloc(&mask, 3, 1, NULL), TS_OK);
    memset(mask.pixels, 255, 3);
    memset(mask.pixels + 3, 51, 3);
    mask.pixels[6] = 255; /* pure red */
    float m[3];
    ts_image_mask_to_tensor(&mask, m);
    TS_CHECK_NEAR(m[0], 1.0, 1e-6);
    TS_CHECK_NEAR(m[1], 0.2, 1e-6);
    TS_CHECK_NEAR(m[2], 0.299, 1e-5);
    ts_image_free(&mask);
    free(t);
    ts_image_free(&img);
}

int main(void)
{
    TS_RUN(test_resize_matches_reference);
    TS_RUN(test_resize_exact_cases);
    TS_RUN(test_crop_and_fit);
    TS_RUN(test_tensors);
    return ts_test_finish();
}
