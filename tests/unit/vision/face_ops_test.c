/*
 * face_ops_test.c - every layer kind of the face networks against the plain
 * references of ts_face_ops_ref.h: convolutions of each geometry the nets use
 * (1x1, 3x3 and 7x7; strides 1 and 2; same and valid padding; odd sizes),
 * the GEMM on ragged shapes, the depthwise convolution, batch norm and the
 * scale layer folded into the epilogue, both poolings, and a residual block
 * (plain and downsampling, with the odd-size shortcut quirk) built from
 * reference pieces. Fast kernels are checked with 1 and 3 threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ts_face_kernels.h"
#include "ts_face_nets.h"
#include "ts_face_ops.h"
#include "ts_face_ops_ref.h"
#include "ts_test.h"

static unsigned rng_state = 12345;

static float frand(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return ((rng_state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static void fill(float *p, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
}

static void random_map(ts_fmap *m, int h, int w, int c)
{
    ts_fmap_alloc(m, h, w, c, NULL);
    fill(m->data, (size_t)h * w * c, 1.0f);
}

/* Largest |a - b| relative to the largest |b| (at least 1). */
static double max_rel_diff(const ts_fmap *a, const ts_fmap *b)
{
    if (a->h != b->h || a->w != b->w || a->c != b->c)
        return INFINITY;
    double worst = 0, scale = 1;
    size_t n = (size_t)a->h * a->w * a->c;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b->data[i]));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a->data[i] - b->data[i]));
    return worst / scale;
}

/* ---------------------------------------------------------------- conv */

static void check_conv(int h, int w, int cin, int cout, int k, int stride, ts_face_pad pad,
                       ts_face_act act, int threads)
{
    ts_face_conv cv;
    TS_CHECK_INT_EQ(ts_face_conv_init(&cv, k, k, cin, cout, stride, pad, act, NULL), TS_OK);
    fill(cv.filters, (size_t)k * k * cin * cout, 0.3f);
    fill(cv.add, (size_t)cout, 0.5f);
    TS_CHECK_INT_EQ(ts_face_conv_prepare(&cv, NULL), TS_OK);

    ts_fmap x, fast = {0}, ref = {0};
    random_map(&x, h, w, cin);
    TS_CHECK_INT_EQ(ts_face_conv_forward(&cv, &x, &fast, threads, NULL), TS_OK);
    TS_CHECK_INT_EQ(
        ts_face_conv_ref(&x, cv.filters, cv.add, k, k, cout, stride, pad, act, &ref, NULL), TS_OK);
    double d = max_rel_diff(&fast, &ref);
    if (!(d < 1e-5))
        fprintf(stderr, "conv %dx%dx%d k%d s%d pad%d -> %d: diff %g\n", h, w, cin, k, stride,
                (int)pad, cout, d);
    TS_CHECK(d < 1e-5);
    ts_fmap_free(&x);
    ts_fmap_free(&fast);
    ts_fmap_free(&ref);
    ts_face_conv_free(&cv);
}

static void test_conv_geometries(void)
{
    /* The shapes face-api uses, shrunk: SSD's 3x3/2 stem, pointwise layers,
     * the 7x7/2 valid stem and 3x3/2 valid downsampling of the ResNet. */
    check_conv(17, 13, 3, 32, 3, 2, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, 1);
    check_conv(16, 16, 3, 32, 3, 2, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, 3);
    check_conv(9, 11, 40, 70, 1, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, 1);
    check_conv(9, 11, 40, 70, 1, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE, 3);
    check_conv(4, 4, 24, 12, 1, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE, 1);
    check_conv(8, 8, 16, 24, 3, 2, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, 1);
    check_conv(23, 23, 3, 32, 7, 2, TS_FACE_PAD_VALID, TS_FACE_ACT_RELU, 3);
    check_conv(9, 9, 32, 64, 3, 2, TS_FACE_PAD_VALID, TS_FACE_ACT_RELU, 1);
    check_conv(7, 7, 32, 32, 3, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU, 3);
    check_conv(1, 1, 64, 128, 3, 2, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE, 1);
    /* Long k crosses the GEMM's k blocking (slices of at most 384). */
    check_conv(5, 6, 300, 33, 3, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE, 3);
}

static void test_same_padding_rule(void)
{
    int before;
    /* TF: out = ceil(in / s); the odd padding pixel goes after. */
    TS_CHECK_INT_EQ(ts_face_out_size(512, 3, 2, TS_FACE_PAD_SAME, &before), 256);
    TS_CHECK_INT_EQ(before, 0);
    TS_CHECK_INT_EQ(ts_face_out_size(7, 3, 1, TS_FACE_PAD_SAME, &before), 7);
    TS_CHECK_INT_EQ(before, 1);
    TS_CHECK_INT_EQ(ts_face_out_size(150, 7, 2, TS_FACE_PAD_VALID, &before), 72);
    TS_CHECK_INT_EQ(ts_face_out_size(1, 3, 2, TS_FACE_PAD_SAME, &before), 1);
    TS_CHECK_INT_EQ(before, 1);
}

/* ---------------------------------------------------------------- GEMM */

static void test_gemm_ragged(void)
{
    /* m, k, n that are not multiples of the 6 x 16 tile or the k block; the
     * last one whole tiles over three k slices. */
    const int shapes[][3] = {{1, 1, 1},    {7, 5, 17},   {13, 257, 31},
                             {100, 3, 64}, {6, 513, 16}, {12, 800, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
        float *c = malloc(sizeof(float) * m * n), *mul = malloc(sizeof(float) * n);
        float *add = malloc(sizeof(float) * n);
        float *packed = malloc(sizeof(float) * ts_face_gemm_packed_size(k, n));
        fill(a, (size_t)m * k, 1);
        fill(b, (size_t)k * n, 1);
        fill(mul, (size_t)n, 1);
        fill(add, (size_t)n, 1);
        ts_face_gemm_pack(b, k, n, packed);
        ts_face_gemm(a, k, m, k, n, packed, mul, add, TS_FACE_ACT_NONE, c, n, 2);
        double worst = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double ref = 0;
                for (int p = 0; p < k; p++)
                    ref += (double)a[i * k + p] * b[p * n + j];
                ref = ref * mul[j] + add[j];
                worst = fmax(worst, fabs(ref - c[i * n + j]) / fmax(1.0, fabs(ref)));
            }
        TS_CHECK(worst < 1e-5);

        /* The portable build of the kernel, which CPUs without AVX2 get. */
        float *c2 = malloc(sizeof(float) * m * n);
        ts_face_gemm_rows_generic(a, k, 0, m, k, n, packed, mul, add, 0, c2, n);
        double gap = 0;
        for (int i = 0; i < m * n; i++)
            gap = fmax(gap, fabs((double)c2[i] - c[i]) / fmax(1.0, fabs(c[i])));
        TS_CHECK(gap < 1e-5);
        free(c2);
        free(a);
        free(b);
        free(c);
        free(mul);
        free(add);
        free(packed);
    }
}

/* ---------------------------------------------------------------- separable (fused) */

static int same_bits(const ts_fmap *a, const ts_fmap *b)
{
    return a->h == b->h && a->w == b->w && a->c == b->c &&
           memcmp(a->data, b->data, (size_t)a->h * a->w * a->c * sizeof(float)) == 0;
}

static void make_sep(ts_face_dwconv *dw, ts_face_conv *pw, int c, int cout, int stride,
                     ts_face_act dw_act, ts_face_act pw_act)
{
    TS_CHECK_INT_EQ(ts_face_dwconv_init(dw, 3, 3, c, stride, TS_FACE_PAD_SAME, dw_act, NULL),
                    TS_OK);
    fill(dw->filters, (size_t)9 * c, 1.0f);
    fill(dw->add, (size_t)c, 0.5f);
    for (int i = 0; i < c; i++)
        dw->mul[i] = 0.5f + fabsf(frand());
    TS_CHECK_INT_EQ(ts_face_conv_init(pw, 1, 1, c, cout, 1, TS_FACE_PAD_SAME, pw_act, NULL), TS_OK);
    fill(pw->filters, (size_t)c * cout, 0.3f);
    fill(pw->add, (size_t)cout, 0.5f);
    TS_CHECK_INT_EQ(ts_face_conv_prepare(pw, NULL), TS_OK);
}

/* The fused depthwise + pointwise pass gives the very numbers of the two
 * layers run one after the other, and matches the plain references. */
static void check_sepconv(int h, int w, int c, int cout, int stride, ts_face_act dw_act,
                          ts_face_act pw_act, int threads)
{
    ts_face_dwconv dw;
    ts_face_conv pw;
    make_sep(&dw, &pw, c, cout, stride, dw_act, pw_act);
    ts_fmap x, fused = {0}, mid = {0}, two = {0}, ref_mid = {0}, ref = {0};
    random_map(&x, h, w, c);
    TS_CHECK_INT_EQ(ts_face_sepconv_forward(&dw, &pw, &x, &fused, threads, NULL), TS_OK);
    TS_CHECK_INT_EQ(ts_face_dwconv_forward(&dw, &x, &mid, 1, NULL), TS_OK);
    TS_CHECK_INT_EQ(ts_face_conv_forward(&pw, &mid, &two, 1, NULL), TS_OK);
    TS_CHECK(same_bits(&fused, &two));

    /* Reference: depthwise with the folded scale undone by hand. */
    TS_CHECK_INT_EQ(ts_face_dwconv_ref(&x, dw.filters, NULL, 3, 3, stride, TS_FACE_PAD_SAME,
                                       TS_FACE_ACT_NONE, &ref_mid, NULL),
                    TS_OK);
    ts_face_scale_ref(&ref_mid, dw.mul, dw.add);
    ts_face_act_ref(&ref_mid, dw_act);
    TS_CHECK_INT_EQ(ts_face_conv_ref(&ref_mid, pw.filters, pw.add, 1, 1, cout, 1, TS_FACE_PAD_SAME,
                                     pw_act, &ref, NULL),
                    TS_OK);
    double d = max_rel_diff(&fused, &ref);
    if (!(d < 1e-5))
        fprintf(stderr, "sepconv %dx%dx%d s%d -> %d: diff %g\n", h, w, c, stride, cout, d);
    TS_CHECK(d < 1e-5);
    ts_fmap_free(&x);
    ts_fmap_free(&fused);
    ts_fmap_free(&mid);
    ts_fmap_free(&two);
    ts_fmap_free(&ref_mid);
    ts_fmap_free(&ref);
    ts_face_dwconv_free(&dw);
    ts_face_conv_free(&pw);
}

static void test_separable(void)
{
    /* SSD's pairs (ReLU6 after both), the landmark net's (none, then ReLU
     * or none), odd widths whose chunks end in ragged GEMM tiles, channel
     * counts off the 8-float vector, and maps big enough to be threaded. */
    check_sepconv(12, 9, 32, 24, 1, TS_FACE_ACT_RELU6, TS_FACE_ACT_RELU6, 1);
    check_sepconv(33, 31, 32, 64, 2, TS_FACE_ACT_RELU6, TS_FACE_ACT_RELU6, 3);
    check_sepconv(40, 40, 16, 40, 1, TS_FACE_ACT_RELU6, TS_FACE_ACT_RELU6, 2);
    check_sepconv(14, 14, 20, 36, 1, TS_FACE_ACT_NONE, TS_FACE_ACT_NONE, 3);
    check_sepconv(7, 7, 24, 16, 2, TS_FACE_ACT_NONE, TS_FACE_ACT_RELU, 1);
    check_sepconv(1, 1, 8, 8, 1, TS_FACE_ACT_NONE, TS_FACE_ACT_RELU, 3);
    check_sepconv(5, 3, 300, 17, 1, TS_FACE_ACT_RELU6, TS_FACE_ACT_NONE, 2);
}

/* ---------------------------------------------------------------- repeated rows */

/* A map whose columns [col_from, w) are copies of column col_from in each
 * row, and whose rows [from, h) are copies of row `from`, marked or not
 * (from = h, col_from = w: none). */
static void map_with_repeats(ts_fmap *m, int h, int w, int c, int from, int col_from, int mark)
{
    unsigned saved = rng_state;
    random_map(m, h, w, c);
    rng_state = saved; /* the marked and unmarked maps hold the same values */
    size_t row = (size_t)w * c;
    for (int r = 0; r < h; r++)
        for (int col = col_from + 1; col < w; col++)
            memcpy(m->data + r * row + (size_t)col * c, m->data + r * row + (size_t)col_from * c,
                   (size_t)c * sizeof(float));
    for (int r = from + 1; r < h; r++)
        memcpy(m->data + (size_t)r * row, m->data + (size_t)from * row, row * sizeof(float));
    if (mark) {
        m->rep_from = from;
        m->rep_to = h;
        m->rep_col_from = col_from;
        m->rep_col_to = w;
    }
}

/* Output positions of a 3x3 SAME layer whose window lies in [from, n). */
static void expected_span(int n, int from, int stride, int *lo, int *hi)
{
    int pad;
    int out = ts_face_out_size(n, 3, stride, TS_FACE_PAD_SAME, &pad);
    *lo = (from + pad + stride - 1) / stride;
    *hi = (n - 3 + pad) / stride + 1;
    if (*hi > out)
        *hi = out;
    if (*hi - *lo < 2)
        *lo = *hi = 0;
}

/* Every convolution kind gives the same bits whether or not it knows that
 * rows or columns repeat, and passes the knowledge on where its output's
 * rows and columns repeat. */
static void check_repeats(int h, int w, int c, int from, int col_from, int threads)
{
    ts_fmap xm, xu;
    map_with_repeats(&xm, h, w, c, from, col_from, 1);
    map_with_repeats(&xu, h, w, c, from, col_from, 0);
    rng_state += 7;

    ts_face_conv cv3, cv1, cv7;
    TS_CHECK_INT_EQ(
        ts_face_conv_init(&cv3, 3, 3, c, 24, 2, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, NULL), TS_OK);
    TS_CHECK_INT_EQ(
        ts_face_conv_init(&cv1, 1, 1, c, 40, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, NULL), TS_OK);
    TS_CHECK_INT_EQ(
        ts_face_conv_init(&cv7, 7, 7, c, 8, 2, TS_FACE_PAD_VALID, TS_FACE_ACT_RELU, NULL), TS_OK);
    ts_face_conv *convs[3] = {&cv3, &cv1, &cv7};
    for (int i = 0; i < 3; i++) {
        ts_face_conv *cv = convs[i];
        fill(cv->filters, (size_t)cv->kh * cv->kw * c * cv->cout, 0.3f);
        fill(cv->add, (size_t)cv->cout, 0.5f);
        TS_CHECK_INT_EQ(ts_face_conv_prepare(cv, NULL), TS_OK);
        ts_fmap ym = {0}, yu = {0};
        TS_CHECK_INT_EQ(ts_face_conv_forward(cv, &xm, &ym, threads, NULL), TS_OK);
        TS_CHECK_INT_EQ(ts_face_conv_forward(cv, &xu, &yu, threads, NULL), TS_OK);
        TS_CHECK(same_bits(&ym, &yu));
        TS_CHECK(yu.rep_to == yu.rep_from);
        ts_fmap_free(&ym);
        ts_fmap_free(&yu);
        ts_face_conv_free(cv);
    }

    for (int stride = 1; stride <= 2; stride++) {
        ts_face_dwconv dw;
        ts_face_conv pw;
        make_sep(&dw, &pw, c, 16, stride, TS_FACE_ACT_RELU6, TS_FACE_ACT_NONE);
        ts_fmap dm = {0}, du = {0}, sm = {0}, su = {0}, next = {0};
        TS_CHECK_INT_EQ(ts_face_dwconv_forward(&dw, &xm, &dm, threads, NULL), TS_OK);
        TS_CHECK_INT_EQ(ts_face_dwconv_forward(&dw, &xu, &du, threads, NULL), TS_OK);
        TS_CHECK(same_bits(&dm, &du));
        TS_CHECK_INT_EQ(ts_face_sepconv_forward(&dw, &pw, &xm, &sm, threads, NULL), TS_OK);
        TS_CHECK_INT_EQ(ts_face_sepconv_forward(&dw, &pw, &xu, &su, threads, NULL), TS_OK);
        TS_CHECK(same_bits(&sm, &su));
        /* Output rows (columns) whose three input rows (columns) all lie in
         * the repeated span, up to the last one clear of the padding. */
        int lo, hi, clo, chi;
        expected_span(h, from, stride, &lo, &hi);
        expected_span(w, col_from, stride, &clo, &chi);
        TS_CHECK_INT_EQ(sm.rep_from, lo);
        TS_CHECK_INT_EQ(sm.rep_to, hi);
        TS_CHECK_INT_EQ(dm.rep_from, lo);
        TS_CHECK_INT_EQ(dm.rep_to, hi);
        TS_CHECK_INT_EQ(sm.rep_col_from, clo);
        TS_CHECK_INT_EQ(sm.rep_col_to, chi);
        if (hi - lo >= 2 || chi - clo >= 2) {
            /* And the marks carry on: a second pair over the marked output. */
            ts_face_dwconv dw2;
            ts_face_conv pw2;
            make_sep(&dw2, &pw2, 16, 8, 1, TS_FACE_ACT_RELU6, TS_FACE_ACT_RELU6);
            ts_fmap n2 = {0};
            TS_CHECK_INT_EQ(ts_face_sepconv_forward(&dw2, &pw2, &sm, &next, threads, NULL), TS_OK);
            sm.rep_from = sm.rep_to = sm.rep_col_from = sm.rep_col_to = 0;
            TS_CHECK_INT_EQ(ts_face_sepconv_forward(&dw2, &pw2, &sm, &n2, threads, NULL), TS_OK);
            TS_CHECK(same_bits(&next, &n2));
            ts_fmap_free(&n2);
            ts_face_dwconv_free(&dw2);
            ts_face_conv_free(&pw2);
        }
        ts_fmap_free(&dm);
        ts_fmap_free(&du);
        ts_fmap_free(&sm);
        ts_fmap_free(&su);
        ts_fmap_free(&next);
        ts_face_dwconv_free(&dw);
        ts_face_conv_free(&pw);
    }
    ts_fmap_free(&xm);
    ts_fmap_free(&xu);
}

static void test_repeated_rows(void)
{
    check_repeats(40, 23, 16, 24, 23, 1); /* a long run of rows, odd width */
    check_repeats(64, 64, 32, 40, 64, 3); /* threaded, runs split between parts */
    check_repeats(17, 9, 8, 14, 9, 2);    /* too short a run to skip anything */
    check_repeats(12, 12, 8, 0, 12, 1);   /* the whole map one row repeated */
    check_repeats(23, 40, 16, 23, 24, 1); /* a run of columns, odd height */
    check_repeats(64, 64, 32, 64, 40, 3); /* columns, threaded */
    check_repeats(30, 30, 8, 20, 18, 2);  /* both at once */
}

/* ---------------------------------------------------------------- depthwise + batch norm */

static void check_dwconv_bn(int h, int w, int c, int stride, int threads)
{
    ts_face_dwconv dw;
    TS_CHECK_INT_EQ(
        ts_face_dwconv_init(&dw, 3, 3, c, stride, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, NULL),
        TS_OK);
    fill(dw.filters, (size_t)9 * c, 1.0f);
    float *mean = malloc(sizeof(float) * c), *var = malloc(sizeof(float) * c);
    float *gamma = malloc(sizeof(float) * c), *beta = malloc(sizeof(float) * c);
    fill(mean, (size_t)c, 0.5f);
    fill(gamma, (size_t)c, 2.0f);
    fill(beta, (size_t)c, 1.0f);
    for (int i = 0; i < c; i++)
        var[i] = 0.1f + fabsf(frand());
    /* Batch norm folded into the epilogue, as the SSD loader does. */
    const float eps = 0.001f;
    for (int i = 0; i < c; i++) {
        dw.mul[i] = gamma[i] / sqrtf(var[i] + eps);
        dw.add[i] = beta[i] - mean[i] * dw.mul[i];
    }

    ts_fmap x, fast = {0}, ref = {0};
    random_map(&x, h, w, c);
    TS_CHECK_INT_EQ(ts_face_dwconv_forward(&dw, &x, &fast, threads, NULL), TS_OK);
    /* Reference: depthwise, then batch norm, then ReLU6, each on its own. */
    TS_CHECK_INT_EQ(ts_face_dwconv_ref(&x, dw.filters, NULL, 3, 3, stride, TS_FACE_PAD_SAME,
                                       TS_FACE_ACT_NONE, &ref, NULL),
                    TS_OK);
    ts_face_batchnorm_ref(&ref, mean, var, gamma, beta, eps);
    ts_face_act_ref(&ref, TS_FACE_ACT_RELU6);
    TS_CHECK(max_rel_diff(&fast, &ref) < 1e-5);

    /* The portable build of the kernel. */
    ts_fmap generic = {0};
    int pt, pl;
    ts_face_out_size(h, 3, stride, TS_FACE_PAD_SAME, &pt);
    ts_face_out_size(w, 3, stride, TS_FACE_PAD_SAME, &pl);
    ts_fmap_alloc(&generic, fast.h, fast.w, c, NULL);
    ts_face_dw_rows_generic(x.data, h, w, c, dw.filters, 3, 3, stride, pt, pl, dw.mul, dw.add,
                            TS_FACE_ACT_RELU6, generic.data, fast.w, 0, fast.h);
    TS_CHECK(max_rel_diff(&generic, &ref) < 1e-5);
    ts_fmap_free(&generic);

    ts_fmap_free(&x);
    ts_fmap_free(&fast);
    ts_fmap_free(&ref);
    ts_face_dwconv_free(&dw);
    free(mean);
    free(var);
    free(gamma);
    free(beta);
}

static void test_depthwise_batchnorm(void)
{
    check_dwconv_bn(12, 9, 32, 1, 1);
    check_dwconv_bn(13, 16, 20, 2, 3);
    check_dwconv_bn(2, 2, 64, 2, 1);
    check_dwconv_bn(40, 40, 8, 1, 2);
}

/* ---------------------------------------------------------------- scale layer */

static void test_conv_scale_fold(void)
{
    /* The recognition net's conv + bias + scale, folded: mul = s, add = b * s + t. */
    int cin = 8, cout = 12;
    ts_face_conv cv;
    ts_face_conv_init(&cv, 3, 3, cin, cout, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU, NULL);
    fill(cv.filters, (size_t)9 * cin * cout, 0.5f);
    float bias[12], s[12], t[12];
    fill(bias, 12, 0.3f);
    fill(s, 12, 2.0f);
    fill(t, 12, 1.0f);
    for (int o = 0; o < cout; o++) {
        cv.mul[o] = s[o];
        cv.add[o] = bias[o] * s[o] + t[o];
    }
    ts_face_conv_prepare(&cv, NULL);
    ts_fmap x, fast = {0}, ref = {0};
    random_map(&x, 10, 7, cin);
    ts_face_conv_forward(&cv, &x, &fast, 2, NULL);
    ts_face_conv_ref(&x, cv.filters, bias, 3, 3, cout, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE, &ref,
                     NULL);
    ts_face_scale_ref(&ref, s, t);
    ts_face_act_ref(&ref, TS_FACE_ACT_RELU);
    TS_CHECK(max_rel_diff(&fast, &ref) < 1e-5);
    ts_fmap_free(&x);
    ts_fmap_free(&fast);
    ts_fmap_free(&ref);
    ts_face_conv_free(&cv);
}

/* ---------------------------------------------------------------- pooling */

static void test_pooling(void)
{
    const int cases[][4] = {{72, 72, 3, 2}, {35, 35, 2, 2}, {7, 7, 7, 2}, {9, 5, 3, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_fmap x, fast = {0}, ref = {0};
        random_map(&x, cases[i][0], cases[i][1], 5);
        for (int is_max = 0; is_max < 2; is_max++) {
            if (is_max)
                ts_face_maxpool(&x, cases[i][2], cases[i][3], &fast, NULL);
            else
                ts_face_avgpool(&x, cases[i][2], cases[i][3], &fast, NULL);
            ts_face_pool_ref(&x, cases[i][2], cases[i][3], is_max, &ref, NULL);
            TS_CHECK(max_rel_diff(&fast, &ref) < 1e-6);
            ts_fmap_free(&fast);
            ts_fmap_free(&ref);
        }
        ts_fmap_free(&x);
    }
}

/* ---------------------------------------------------------------- residual block */

/* conv + bias + scale (+ relu) through the references. */
static void ref_scaled_conv(const ts_face_conv *cv, const ts_fmap *x, ts_fmap *y)
{
    /* cv->mul/add are s and b*s + t: run the conv bias-free, then x*s + (b*s + t). */
    ts_face_conv_ref(x, cv->filters, NULL, cv->kh, cv->kw, cv->cout, cv->stride, cv->pad,
                     TS_FACE_ACT_NONE, y, NULL);
    ts_face_scale_ref(y, cv->mul, cv->add);
    ts_face_act_ref(y, cv->act);
}

static void make_conv(ts_face_conv *cv, int cin, int cout, int stride, ts_face_pad pad,
                      ts_face_act act)
{
    ts_face_conv_init(cv, 3, 3, cin, cout, stride, pad, act, NULL);
    fill(cv->filters, (size_t)9 * cin * cout, 0.3f);
    fill(cv->mul, (size_t)cout, 1.5f);
    fill(cv->add, (size_t)cout, 0.5f);
    ts_face_conv_prepare(cv, NULL);
}

static void check_residual(int size, int cin, int cout, int down)
{
    ts_face_residual r = {.down = down};
    make_conv(&r.conv1, cin, cout, down ? 2 : 1, down ? TS_FACE_PAD_VALID : TS_FACE_PAD_SAME,
              TS_FACE_ACT_RELU);
    make_conv(&r.conv2, cout, cout, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE);

    ts_fmap x, fast = {0}, a = {0}, b = {0}, pooled = {0};
    random_map(&x, size, size, cin);
    TS_CHECK_INT_EQ(ts_face_residual_forward(&r, &x, &fast, 2, NULL), TS_OK);

    /* Reference, spelled out: out = conv2(conv1(x)); shortcut = x or its
     * 2x2 average pool with zero channels appended; when the pool is one
     * cell larger than out, out gets a zero row and column at the end. */
    ref_scaled_conv(&r.conv1, &x, &a);
    ref_scaled_conv(&r.conv2, &a, &b);
    if (down)
        ts_face_pool_ref(&x, 2, 2, 0, &pooled, NULL);
    const ts_fmap *sc = down ? &pooled : &x;
    int oh = sc->h, ow = sc->w;
    TS_CHECK_INT_EQ(fast.h, oh);
    TS_CHECK_INT_EQ(fast.w, ow);
    TS_CHECK_INT_EQ(fast.c, cout);
    double worst = 0;
    for (int i = 0; i < oh && fast.h == oh && fast.w == ow; i++)
        for (int j = 0; j < ow; j++)
            for (int c = 0; c < cout; c++) {
                double v = (i < b.h && j < b.w) ? b.data[((size_t)i * b.w + j) * cout + c] : 0;
                if (c < sc->c)
                    v += sc->data[((size_t)i * sc->w + j) * sc->c + c];
                v = v > 0 ? v : 0;
                worst = fmax(worst, fabs(v - fast.data[((size_t)i * ow + j) * cout + c]));
            }
    TS_CHECK(worst < 1e-4);
    ts_fmap_free(&x);
    ts_fmap_free(&fast);
    ts_fmap_free(&a);
    ts_fmap_free(&b);
    ts_fmap_free(&pooled);
    ts_face_conv_free(&r.conv1);
    ts_face_conv_free(&r.conv2);
}

static void test_residual_blocks(void)
{
    check_residual(9, 16, 16, 0);
    check_residual(17, 16, 32, 1); /* 17 -> conv 8, pool 8 */
    check_residual(8, 16, 32, 1);  /* 8 -> conv 3, pool 4: the zero row/column quirk */
    check_residual(4, 32, 32, 1);  /* 4 -> conv 1, pool 2: same quirk, channels kept */
}

int main(void)
{
    TS_RUN(test_same_padding_rule);
    TS_RUN(test_conv_geometries);
    TS_RUN(test_gemm_ragged);
    TS_RUN(test_depthwise_batchnorm);
    TS_RUN(test_separable);
    TS_RUN(test_repeated_rows);
    TS_RUN(test_conv_scale_fold);
    TS_RUN(test_pooling);
    TS_RUN(test_residual_blocks);
    fprintf(stderr, "kernels: %s\n", ts_face_ops_have_avx2() ? "AVX2+FMA" : "generic");
    return ts_test_finish();
}
