/*
 * half_test.c - half-precision weights: the fast f16/bf16 widening against
 * the scalar reference over every bit pattern and awkward lengths and
 * offsets, narrowing back, and convolution and Linear layers with half
 * weights against the same layers with the widened f32 weights.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_dnnl.h"
#include "ts_half.h"
#include "ts_test.h"

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint32_t urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static float frand(void) /* uniform in [-1, 1) */
{
    return (float)(urand() * (1.0 / 4294967296.0)) * 2.0f - 1.0f;
}

/* Same value, or both NaN (F16C quiets signalling NaNs). */
static int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

/* Every 16-bit pattern, at an odd byte offset and with tails that are not a
 * multiple of the vector width. */
static void check_all_patterns(ts_dtype dtype)
{
    size_t n = 65536;
    unsigned char *raw = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)i;
        memcpy(raw + 1 + 2 * i, &h, 2);
    }
    float *fast = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    size_t lengths[] = {0, 1, 7, 8, 9, 77, 4099, 65536 - 3, 65536};
    for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
        size_t len = lengths[li];
        ts_half_to_f32(dtype, raw + 1, len, fast);
        ts_half_to_f32_ref(dtype, raw + 1, len, ref);
        size_t bad = 0;
        for (size_t i = 0; i < len; i++)
            bad += !same_float(fast[i], ref[i]);
        TS_CHECK_INT_EQ(bad, 0);
    }
    /* The scalar reference itself on a few known values. */
    uint16_t one = dtype == TS_DTYPE_F16 ? 0x3c00 : 0x3f80;
    uint16_t tiny = 0x0001; /* f16: 2^-24, bf16: a denormal 2^-133 */
    float v;
    ts_half_to_f32_ref(dtype, &one, 1, &v);
    TS_CHECK(v == 1.0f);
    ts_half_to_f32_ref(dtype, &tiny, 1, &v);
    TS_CHECK(v == (dtype == TS_DTYPE_F16 ? ldexpf(1.0f, -24) : ldexpf(1.0f, -133)));

    /* Narrowing the widened values gives the patterns back (NaNs stay NaN). */
    unsigned char *back = malloc(2 * n);
    ts_half_to_f32(dtype, raw + 1, n, fast);
    ts_f32_to_half(dtype, fast, n, back);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, back + 2 * i, 2);
        float again;
        ts_half_to_f32_ref(dtype, &h, 1, &again);
        bad += isnan(fast[i]) ? !isnan(again) : h != (uint16_t)i;
    }
    TS_CHECK_INT_EQ(bad, 0);
    free(back);
    free(fast);
    free(ref);
    free(raw);
}

static void test_f16_patterns(void)
{
    check_all_patterns(TS_DTYPE_F16);
}

static void test_bf16_patterns(void)
{
    check_all_patterns(TS_DTYPE_BF16);
}

/* Rounding of values between two half numbers: the nearest, ties to even,
 * judged in double from the two neighbours. */
static void check_rounding(ts_dtype dtype)
{
    size_t n = 10001, bad = 0;
    float *x = malloc(n * sizeof(float));
    uint16_t *h = malloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++)
        x[i] = frand() * (dtype == TS_DTYPE_F16 ? 1000.0f : 1e30f);
    x[0] = 1.0f + ldexpf(1.0f, dtype == TS_DTYPE_F16 ? -11 : -8); /* a tie: rounds to 1 */
    ts_f32_to_half(dtype, x, n, h);
    for (size_t i = 0; i < n; i++) {
        float got;
        ts_half_to_f32_ref(dtype, &h[i], 1, &got);
        uint16_t lo = h[i] - 1, hi = h[i] + 1;
        float flo, fhi;
        ts_half_to_f32_ref(dtype, &lo, 1, &flo);
        ts_half_to_f32_ref(dtype, &hi, 1, &fhi);
        double e = fabs((double)got - x[i]);
        /* No neighbour is closer; on a tie the chosen pattern is even. */
        if (fabs((double)flo - x[i]) < e || fabs((double)fhi - x[i]) < e)
            bad++;
        else if ((fabs((double)flo - x[i]) == e || fabs((double)fhi - x[i]) == e) && (h[i] & 1))
            bad++;
    }
    TS_CHECK_INT_EQ(bad, 0);
    float one;
    ts_half_to_f32_ref(dtype, &h[0], 1, &one);
    TS_CHECK(one == 1.0f);
    free(h);
    free(x);
}

static void test_rounding(void)
{
    check_rounding(TS_DTYPE_F16);
    check_rounding(TS_DTYPE_BF16);
}

/* Random weights exact in dtype: (n) values, returned as f32 and as half. */
static float *half_exact(ts_dtype dtype, size_t n, float scale, uint16_t **half)
{
    float *f = malloc(n * sizeof(float));
    *half = malloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++)
        f[i] = frand() * scale;
    ts_f32_to_half(dtype, f, n, *half);
    ts_half_to_f32_ref(dtype, *half, n, f);
    return f;
}

/* A convolution whose kernel is kept half computes exactly what the f32
 * kernel computes (the same f32 numbers reach the same primitive). */
static void check_conv(ts_dnnl *dn, ts_dtype dtype, int b, int cin, int cout, int h, int w, int k,
                       int stride, int pad)
{
    ts_error err;
    uint16_t *wh, *bh;
    float *wt = half_exact(dtype, (size_t)cout * cin * k * k, 0.3f, &wh);
    float *bias = half_exact(dtype, (size_t)cout, 0.3f, &bh);
    size_t nx = (size_t)b * cin * h * w;
    float *x = malloc(nx * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    int ho = ts_conv2d_out_size(h, k, stride, pad, pad),
        wo = ts_conv2d_out_size(w, k, stride, pad, pad);
    size_t ny = (size_t)b * cout * ho * wo;
    float *y32 = malloc(ny * sizeof(float)), *y16 = malloc(ny * sizeof(float));
    ts_conv2d c32, c16;
    TS_CHECK_INT_EQ(
        ts_conv2d_init(dn, &c32, wt, bias, cin, cout, k, stride, pad, pad, pad, pad, &err), TS_OK);
    TS_CHECK_INT_EQ(
        ts_conv2d_init(dn, &c16, wt, bias, cin, cout, k, stride, pad, pad, pad, pad, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_conv2d_keep_half(&c16, dtype, &err), TS_OK);
    TS_CHECK(c16.whalf != NULL && c16.wmem == NULL);
    TS_CHECK_INT_EQ(ts_conv2d_forward(dn, &c32, x, b, h, w, y32, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_conv2d_forward(dn, &c16, x, b, h, w, y16, &err), TS_OK);
    TS_CHECK(memcmp(y32, y16, ny * sizeof(float)) == 0);
    ts_conv2d_free(&c32);
    ts_conv2d_free(&c16);
    free(y16);
    free(y32);
    free(x);
    free(bias);
    free(bh);
    free(wt);
    free(wh);
}

static void test_conv_half(void)
{
    ts_error err;
    ts_dnnl *dn;
    TS_CHECK_INT_EQ(ts_dnnl_create(1, &dn, &err), TS_OK);
    check_conv(dn, TS_DTYPE_F16, 1, 8, 16, 9, 7, 3, 1, 1);
    check_conv(dn, TS_DTYPE_F16, 2, 16, 8, 8, 8, 3, 2, 1);
    check_conv(dn, TS_DTYPE_BF16, 2, 5, 3, 6, 11, 1, 1, 0);
    check_conv(dn, TS_DTYPE_BF16, 1, 32, 32, 32, 32, 3, 1, 1);
    ts_dnnl_destroy(dn);
}

/* A Linear layer with a half weight (at an odd address, as in a mapping)
 * against the same layer with the widened weight. */
static void test_linear_half(void)
{
    ts_error err;
    ts_dnnl *dn;
    TS_CHECK_INT_EQ(ts_dnnl_create(1, &dn, &err), TS_OK);
    ts_dtype types[2] = {TS_DTYPE_F16, TS_DTYPE_BF16};
    for (int ti = 0; ti < 2; ti++) {
        int in = 77, out = 33, m = 5;
        uint16_t *wh, *bh;
        float *w = half_exact(types[ti], (size_t)in * out, 0.2f, &wh);
        float *b = half_exact(types[ti], (size_t)out, 0.2f, &bh);
        unsigned char *odd = malloc((size_t)in * out * 2 + 1);
        memcpy(odd + 1, wh, (size_t)in * out * 2);
        float x[5 * 77], y32[5 * 33], y16[5 * 33];
        for (int i = 0; i < m * in; i++)
            x[i] = frand();
        ts_linear l32 = {.in = in, .out = out, .w = w, .b = b};
        ts_linear l16 = {.in = in, .out = out, .b = b, .wh = odd + 1, .wh_dtype = types[ti]};
        TS_CHECK_INT_EQ(ts_linear_forward(dn, &l32, x, m, y32, 0, &err), TS_OK);
        TS_CHECK_INT_EQ(ts_linear_forward(dn, &l16, x, m, y16, 0, &err), TS_OK);
        TS_CHECK(memcmp(y32, y16, sizeof(y32)) == 0);
        free(odd);
        free(bh);
        free(b);
        free(wh);
        free(w);
    }
    ts_dnnl_destroy(dn);
}

int main(void)
{
    TS_RUN(test_f16_patterns);
    TS_RUN(test_bf16_patterns);
    TS_RUN(test_rounding);
    TS_RUN(test_conv_half);
    TS_RUN(test_linear_half);
    return ts_test_finish();
}
