/*
 * ops_test.c - every fast kernel against its plain reference on random
 * tensors, with odd sizes, batch > 1 and attention blocks that do not divide
 * the sequence length.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ts_dnnl.h"
#include "ts_ops.h"
#include "ts_ops_ref.h"
#include "ts_tensor.h"
#include "ts_test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *rand_buf(size_t n, float scale)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
    return p;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) /* NaN counts as a failure */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static ts_dnnl *dn;
static ts_arena *arena;

static void check_conv(int b, int cin, int cout, int h, int w, int k, int stride, int pt, int pl,
                       int pb, int pr)
{
    ts_error err;
    float *x = rand_buf((size_t)b * cin * h * w, 1.0f);
    float *wt = rand_buf((size_t)cout * cin * k * k, 0.5f);
    float *bias = rand_buf((size_t)cout, 0.5f);
    int ho = ts_conv2d_out_size(h, k, stride, pt, pb),
        wo = ts_conv2d_out_size(w, k, stride, pl, pr);
    size_t ny = (size_t)b * cout * ho * wo;
    float *y = malloc(ny * sizeof(float)), *yr = malloc(ny * sizeof(float));
    ts_conv2d c;
    TS_CHECK_INT_EQ(ts_conv2d_init(dn, &c, wt, bias, cin, cout, k, stride, pt, pl, pb, pr, &err),
                    TS_OK);
    TS_CHECK_INT_EQ(ts_conv2d_forward(dn, &c, x, b, h, w, y, &err), TS_OK);
    ts_ref_conv2d(x, b, cin, h, w, wt, bias, cout, k, stride, pt, pl, pb, pr, yr);
    double d = max_abs_diff(y, yr, ny);
    if (d > 1e-4)
        fprintf(stderr, "conv b%d %d->%d %dx%d k%d s%d: diff %g\n", b, cin, cout, h, w, k, stride,
                d);
    TS_CHECK(d < 1e-4);
    /* The cached primitive gives the same answer the second time. */
    TS_CHECK_INT_EQ(ts_conv2d_forward(dn, &c, x, b, h, w, y, &err), TS_OK);
    TS_CHECK(max_abs_diff(y, yr, ny) < 1e-4);
    ts_conv2d_free(&c);
    free(x), free(wt), free(bias), free(y), free(yr);
}

static void test_conv2d(void)
{
    check_conv(1, 4, 8, 9, 7, 3, 1, 1, 1, 1, 1);     /* 3x3 pad 1, odd sizes */
    check_conv(2, 13, 17, 11, 5, 3, 1, 1, 1, 1, 1);  /* batch 2, odd channels */
    check_conv(2, 16, 16, 10, 12, 3, 2, 1, 1, 1, 1); /* UNet downsample */
    check_conv(1, 8, 8, 9, 10, 3, 2, 0, 0, 1, 1);    /* VAE downsample (0, 1, 0, 1) */
    check_conv(2, 24, 40, 6, 7, 1, 1, 0, 0, 0, 0);   /* 1x1 shortcut */
    check_conv(1, 3, 32, 16, 16, 3, 1, 1, 1, 1, 1);  /* image input */
}

/* The same shapes run in row tiles (a tiny budget: one to a few output rows
 * per tile, so first, middle and last tiles all differ in padding) against
 * the reference. */
static void test_conv2d_tiled(void)
{
    size_t budgets[] = {1, 16 << 10};
    for (size_t i = 0; i < 2; i++) {
        ts_dnnl_set_tile_bytes(dn, budgets[i]);
        check_conv(1, 4, 8, 9, 7, 3, 1, 1, 1, 1, 1);
        check_conv(2, 13, 17, 11, 5, 3, 1, 1, 1, 1, 1);
        check_conv(2, 16, 16, 10, 12, 3, 2, 1, 1, 1, 1);
        check_conv(1, 8, 8, 9, 10, 3, 2, 0, 0, 1, 1);
        check_conv(2, 24, 40, 6, 7, 1, 1, 0, 0, 0, 0);
        check_conv(1, 3, 32, 33, 16, 3, 1, 1, 1, 1, 1);
    }
    ts_dnnl_set_tile_bytes(dn, 0);
}

static void test_matmul(void)
{
    ts_error err;
    int shapes[][4] = {{1, 7, 5, 3}, {3, 13, 17, 19}, {2, 64, 33, 40}, {1, 77, 96, 64}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int bt = shapes[s][0], m = shapes[s][1], n = shapes[s][2], k = shapes[s][3];
        for (int tb = 0; tb < 2; tb++) {
            float *a = rand_buf((size_t)bt * m * k, 1), *b = rand_buf((size_t)bt * k * n, 1);
            float *bias = rand_buf((size_t)n, 1);
            float *c = rand_buf((size_t)bt * m * n, 1);
            float *cr = malloc((size_t)bt * m * n * sizeof(float));
            memcpy(cr, c, (size_t)bt * m * n * sizeof(float));
            int acc = (int)s % 2;
            float alpha = tb ? 0.5f : 1.0f; /* alpha only without bias (the contract) */
            const float *bb = tb ? NULL : bias;
            ts_matmul_args ma = {.batch = bt,
                                 .m = m,
                                 .n = n,
                                 .k = k,
                                 .a = a,
                                 .lda = k,
                                 .sa = (int64_t)m * k,
                                 .b = b,
                                 .ldb = tb ? k : n,
                                 .sb = (int64_t)k * n,
                                 .trans_b = tb,
                                 .bias = bb,
                                 .c = c,
                                 .ldc = n,
                                 .sc = (int64_t)m * n,
                                 .alpha = alpha,
                                 .accumulate = acc};
            TS_CHECK_INT_EQ(ts_dnnl_matmul(dn, &ma, &err), TS_OK);
            ts_ref_matmul(bt, m, n, k, a, b, tb, bb, alpha, acc, cr);
            TS_CHECK(max_abs_diff(c, cr, (size_t)bt * m * n) < 1e-4);
            free(a), free(b), free(bias), free(c), free(cr);
        }
    }

    /* Linear layer: torch weight layout (out, in), residual accumulate. */
    int m = 9, in = 31, out = 23;
    float *x = rand_buf((size_t)m * in, 1), *w = rand_buf((size_t)out * in, 1);
    float *b = rand_buf((size_t)out, 1), *y = calloc((size_t)m * out, sizeof(float));
    float *yr = calloc((size_t)m * out, sizeof(float));
    ts_linear l = {.in = in, .out = out, .w = w, .b = b};
    TS_CHECK_INT_EQ(ts_linear_forward(dn, &l, x, m, y, 0, &err), TS_OK);
    ts_ref_matmul(1, m, out, in, x, w, 1, b, 1.0f, 0, yr);
    TS_CHECK(max_abs_diff(y, yr, (size_t)m * out) < 1e-4);
    free(x), free(w), free(b), free(y), free(yr);
}

/* More distinct shapes than the primitive cache holds: the oldest are
 * evicted and rebuilt, and every answer stays right. */
static void test_cache_eviction(void)
{
    ts_error err;
    int k = 3, n = 2;
    float *a = rand_buf(600 * 3, 1), *b = rand_buf(3 * 2, 1);
    float *c = malloc(600 * 2 * sizeof(float)), *cr = malloc(600 * 2 * sizeof(float));
    int bad = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int m = 1; m <= 530; m += pass ? 37 : 1) {
            ts_matmul_args ma = {.batch = 1,
                                 .m = m,
                                 .n = n,
                                 .k = k,
                                 .a = a,
                                 .lda = k,
                                 .b = b,
                                 .ldb = n,
                                 .c = c,
                                 .ldc = n,
                                 .alpha = 1.0f};
            if (ts_dnnl_matmul(dn, &ma, &err) != TS_OK) {
                bad++;
                continue;
            }
            ts_ref_matmul(1, m, n, k, a, b, 0, NULL, 1.0f, 0, cr);
            bad += max_abs_diff(c, cr, (size_t)m * n) > 1e-5;
        }
    TS_CHECK_INT_EQ(bad, 0);
    free(a), free(b), free(c), free(cr);
}

static void test_elementwise(void)
{
    size_t n = 100003; /* above the parallel threshold, odd */
    float *x = rand_buf(n, 6.0f), *y = malloc(n * 4), *yr = malloc(n * 4);
    ts_op_silu(x, n, y);
    ts_ref_silu(x, n, yr);
    TS_CHECK(max_abs_diff(y, yr, n) < 1e-5);
    ts_op_gelu(x, n, y);
    ts_ref_gelu(x, n, yr);
    TS_CHECK(max_abs_diff(y, yr, n) < 1e-5);
    ts_op_quick_gelu(x, n, y);
    ts_ref_quick_gelu(x, n, yr);
    TS_CHECK(max_abs_diff(y, yr, n) < 1e-5);
    ts_op_geglu(x, 7, 33, y);
    ts_ref_geglu(x, 7, 33, yr);
    TS_CHECK(max_abs_diff(y, yr, 7 * 33) < 1e-5);
    /* in place */
    memcpy(y, x, n * 4);
    ts_op_silu(y, n, y);
    ts_ref_silu(x, n, yr);
    TS_CHECK(max_abs_diff(y, yr, n) < 1e-5);
    free(x), free(y), free(yr);
}

static void test_norms(void)
{
    int b = 2, c = 96, groups = 32;
    size_t hw = 5 * 7;
    size_t n = (size_t)b * c * hw;
    float *x = rand_buf(n, 3.0f), *y = malloc(n * 4), *yr = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        x[i] += 10.0f; /* a large mean tests the variance pass */
    float *g = rand_buf((size_t)c, 1), *be = rand_buf((size_t)c, 1);
    for (int silu = 0; silu < 2; silu++) {
        ts_op_group_norm(x, b, c, hw, groups, g, be, 1e-5f, silu, y);
        ts_ref_group_norm(x, b, c, hw, groups, g, be, 1e-5f, silu, yr);
        TS_CHECK(max_abs_diff(y, yr, n) < 1e-4);
        ts_op_group_norm_portable(x, b, c, hw, groups, g, be, 1e-5f, silu, y);
        TS_CHECK(max_abs_diff(y, yr, n) < 1e-4);
    }
    ts_op_layer_norm(x, 77, 35, g, be, 1e-5f, y);
    ts_ref_layer_norm(x, 77, 35, g, be, 1e-5f, yr);
    TS_CHECK(max_abs_diff(y, yr, 77 * 35) < 1e-4);

    memcpy(y, x, 13 * 29 * 4);
    memcpy(yr, x, 13 * 29 * 4);
    ts_op_softmax_rows(y, 13, 29, 0.3f);
    ts_ref_softmax_rows(yr, 13, 29, 0.3f);
    TS_CHECK(max_abs_diff(y, yr, 13 * 29) < 1e-6);
    free(x), free(y), free(yr), free(g), free(be);
}

/* Largest |a - b| relative to 1e-8 + 2e-6 |b|: above 1 fails. (A float sum
 * of 4099 terms in order, as an unoptimised build does, reaches 6e-7; an exp
 * polynomial with its x^4 coefficient 1% off reaches 3.5e-6.) */
static double rel_err(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (1e-8 + 2e-6 * fabs((double)b[i]));
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

/* Both softmax paths (the dispatched one, AVX2+FMA on CPUs that have it, and
 * the portable one) against the double-precision reference, over lengths
 * around the vector width, CLIP's 77, a VAE-sized row, huge spreads of
 * values and masked (-inf) entries. */
static void test_softmax_rows(void)
{
    size_t lengths[] = {1, 2, 7, 8, 9, 15, 16, 17, 77, 4096 + 3};
    float scales[] = {1.0f, 0.125f};
    for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
        size_t n = lengths[li], m = 6;
        float *x = malloc(m * n * 4), *y = malloc(m * n * 4), *yp = malloc(m * n * 4),
              *yr = malloc(m * n * 4);
        for (size_t i = 0; i < m * n; i++) {
            size_t row = i / n, col = i % n;
            float v = frand();
            if (row == 0)
                x[i] = v; /* plain */
            else if (row == 1)
                x[i] = 1000.0f * v; /* most entries underflow to 0 */
            else if (row == 2)
                x[i] = 80.0f + v; /* large positive */
            else if (row == 3)
                x[i] = -1e4f + 3.0f * v; /* large negative */
            else if (row == 4)
                x[i] = col > n / 2 ? -INFINITY : 4.0f * v; /* causal-style mask */
            else
                x[i] = col % 3 == 1 ? -INFINITY : 20.0f * v; /* scattered mask */
        }
        for (size_t si = 0; si < 2; si++) {
            memcpy(y, x, m * n * 4);
            memcpy(yp, x, m * n * 4);
            memcpy(yr, x, m * n * 4);
            ts_op_softmax_rows(y, m, n, scales[si]);
            ts_op_softmax_rows_portable(yp, m, n, scales[si]);
            ts_ref_softmax_rows(yr, m, n, scales[si]);
            double e = rel_err(y, yr, m * n), ep = rel_err(yp, yr, m * n);
            if (!(e <= 1.0) || !(ep <= 1.0))
                fprintf(stderr, "softmax n=%zu scale %g: error %.3g (portable %.3g) of bound\n", n,
                        scales[si], e, ep);
            TS_CHECK(e <= 1.0);
            TS_CHECK(ep <= 1.0);
            /* Masked entries get (almost) nothing: exp clamps at -87.3, not -inf. */
            for (size_t i = 0; i < m * n; i++)
                if (isinf(x[i]))
                    TS_CHECK(y[i] < 1e-30f && yp[i] < 1e-30f);
        }
        free(x), free(y), free(yp), free(yr);
    }
}

static void test_layout_ops(void)
{
    int b = 2, c = 3, h = 5, w = 7;
    size_t n = (size_t)b * c * h * w;
    float *x = rand_buf(n, 1), *y = malloc(4 * n * 4), *yr = malloc(4 * n * 4);
    ts_op_upsample_nearest2x(x, b, c, h, w, y);
    ts_ref_upsample_nearest2x(x, b, c, h, w, yr);
    TS_CHECK(max_abs_diff(y, yr, 4 * n) == 0);

    float *x2 = rand_buf((size_t)b * 5 * h * w, 1);
    ts_op_concat_channels(x, c, x2, 5, b, (size_t)h * w, y);
    ts_ref_concat_channels(x, c, x2, 5, b, (size_t)h * w, yr);
    TS_CHECK(max_abs_diff(y, yr, (size_t)b * 8 * h * w) == 0);

    /* NCHW -> NHWC -> NCHW is the identity, and NHWC puts channels last. */
    ts_op_nchw_to_nhwc(x, b, c, (size_t)h * w, y);
    TS_CHECK(y[(size_t)1 * c * h * w + 4 * c + 2] == x[((size_t)1 * c + 2) * h * w + 4]);
    ts_op_nhwc_to_nchw(y, b, c, (size_t)h * w, yr);
    TS_CHECK(max_abs_diff(x, yr, n) == 0);

    float e[320], er[320];
    ts_op_timestep_embedding(981.0f, 320, 1, 0.0f, e);
    ts_ref_timestep_embedding(981.0f, 320, 1, 0.0f, er);
    TS_CHECK(max_abs_diff(e, er, 320) < 2e-3); /* f32 argument near 1000 rad */
    ts_op_timestep_embedding(1.0f, 32, 0, 1.0f, e);
    ts_ref_timestep_embedding(1.0f, 32, 0, 1.0f, er);
    TS_CHECK(max_abs_diff(e, er, 32) < 1e-5);
    TS_CHECK_NEAR(e[0], sin(1.0), 1e-6); /* sin first without the flip */
    free(x), free(x2), free(y), free(yr);
}

static void check_attention(int b, int heads, int lq, int lk, int dh, int causal, int block)
{
    ts_error err;
    int d = heads * dh;
    float *q = rand_buf((size_t)b * lq * d, 1), *k = rand_buf((size_t)b * lk * d, 1);
    float *v = rand_buf((size_t)b * lk * d, 1);
    float *o = malloc((size_t)b * lq * d * 4), *orf = malloc((size_t)b * lq * d * 4);
    float scale = 1.0f / sqrtf((float)dh);
    ts_attention_args a = {.batch = b,
                           .heads = heads,
                           .lq = lq,
                           .lk = lk,
                           .dh = dh,
                           .q = q,
                           .ldq = d,
                           .k = k,
                           .ldk = d,
                           .v = v,
                           .ldv = d,
                           .out = o,
                           .ldo = d,
                           .scale = scale,
                           .causal = causal,
                           .block_q = block};
    TS_CHECK_INT_EQ(ts_op_attention(dn, arena, &a, &err), TS_OK);
    ts_ref_attention(b, heads, lq, lk, dh, q, k, v, scale, causal, orf);
    double diff = max_abs_diff(o, orf, (size_t)b * lq * d);
    if (diff > 1e-4)
        fprintf(stderr, "attention b%d h%d %dx%d dh%d causal%d block%d: %g\n", b, heads, lq, lk, dh,
                causal, block, diff);
    TS_CHECK(diff < 1e-4);
    free(q), free(k), free(v), free(o), free(orf);
}

static void test_attention(void)
{
    check_attention(2, 3, 37, 37, 8, 0, 10);  /* self-attention, 10 does not divide 37 */
    check_attention(2, 2, 45, 11, 16, 0, 7);  /* cross-attention, short context */
    check_attention(1, 4, 77, 77, 16, 1, 20); /* causal (CLIP), blocks cross the diagonal */
    check_attention(1, 1, 64, 64, 32, 0, 0);  /* single head (VAE), automatic block */
}

static void test_arena(void)
{
    ts_error err;
    ts_arena *a;
    TS_CHECK_INT_EQ(ts_arena_create((size_t)200 << 20, &a, &err), TS_OK);
    ts_arena_mark m0 = ts_arena_save(a);
    float *p = ts_arena_floats(a, 1000, &err);
    TS_CHECK(p && ((uintptr_t)p % 64) == 0);
    ts_arena_mark m1 = ts_arena_save(a);
    float *big = ts_arena_floats(a, (size_t)20 << 20, &err); /* 80 MiB: a second chunk */
    TS_CHECK(big != NULL);
    ts_arena_restore(a, m1);
    float *again = ts_arena_floats(a, (size_t)20 << 20, &err); /* reuses, no growth */
    TS_CHECK(again == big);
    size_t reserved = ts_arena_reserved(a);
    ts_arena_restore(a, m0);
    TS_CHECK(ts_arena_floats(a, 1000, &err) == p);
    TS_CHECK(ts_arena_reserved(a) == reserved);
    /* Past the limit: NULL and a limit error, not a crash. */
    TS_CHECK(ts_arena_floats(a, (size_t)100 << 20, &err) == NULL);
    TS_CHECK_INT_EQ(err.status, TS_ERR_LIMIT);
    ts_arena_destroy(a);

    /* A caller of another shape (one 96 MiB block after 64 + 80 MiB chunks)
     * replaces the empty chunks that are too small instead of adding to them,
     * and the old shape then fits in what is there. */
    TS_CHECK_INT_EQ(ts_arena_create((size_t)200 << 20, &a, &err), TS_OK);
    m0 = ts_arena_save(a);
    TS_CHECK(ts_arena_floats(a, 1000, &err) != NULL);
    TS_CHECK(ts_arena_floats(a, (size_t)20 << 20, &err) != NULL);
    TS_CHECK(ts_arena_reserved(a) == ((size_t)64 << 20) + ((size_t)80 << 20));
    ts_arena_restore(a, m0);
    float *one = ts_arena_floats(a, (size_t)24 << 20, &err); /* 96 MiB */
    TS_CHECK(one != NULL);
    TS_CHECK(ts_arena_reserved(a) == (size_t)96 << 20);
    ts_arena_restore(a, m0);
    TS_CHECK(ts_arena_floats(a, 1000, &err) == one);
    TS_CHECK(ts_arena_floats(a, (size_t)20 << 20, &err) != NULL);
    TS_CHECK(ts_arena_reserved(a) == (size_t)96 << 20);
    /* A failed request (120 MiB more would pass the limit) leaves the arena
     * usable. */
    TS_CHECK(ts_arena_floats(a, (size_t)30 << 20, &err) == NULL);
    TS_CHECK(ts_arena_floats(a, 1000, &err) != NULL);
    ts_arena_restore(a, m0);
    TS_CHECK(ts_arena_floats(a, 16, &err) == one);
    ts_arena_destroy(a);
}

int main(void)
{
    ts_error err;
    if (ts_dnnl_create(1, &dn, &err) != TS_OK || ts_arena_create((size_t)1 << 30, &arena, &err)) {
        fprintf(stderr, "setup: %s\n", err.message);
        return 1;
    }
    TS_RUN(test_arena);
    TS_RUN(test_conv2d);
    TS_RUN(test_conv2d_tiled);
    TS_RUN(test_matmul);
    TS_RUN(test_cache_eviction);
    TS_RUN(test_elementwise);
    TS_RUN(test_norms);
    TS_RUN(test_layout_ops);
    TS_RUN(test_softmax_rows);
    TS_RUN(test_attention);
    ts_arena_destroy(arena);
    ts_dnnl_destroy(dn);
    return ts_test_finish();
}
