/*
 * ts_face_ops.h - the layers of face-api's networks, over channels-last
 * feature maps, with TensorFlow's padding and resampling rules.
 *
 * Every map is one image, (H, W, C) with C fastest, exactly as TensorFlow.js
 * lays out its tensors, so filters are used in TensorFlow's own HWIO order
 * (kh, kw, cin, cout) and nothing is transposed.
 *
 * A convolution carries its epilogue folded into two per-channel vectors:
 *
 *     y[p, o] = act( sum_{i,j,c} x[p + (i, j), c] * W[i, j, c, o] * mul[o] + add[o] )
 *
 * which covers conv + bias (mul 1, add bias), conv + batch norm
 * (mul = gamma / sqrt(var + eps), add = beta - mean * mul) and conv + bias +
 * scale layer (mul = s, add = bias * s + t).
 *
 * The fast kernels (im2col + a blocked GEMM, and a channel-vectorised
 * depthwise convolution) are built twice, for AVX2 + FMA and for plain
 * x86-64, and chosen at run time. Plain, slow references live in
 * ts_face_ops_ref.h; the unit tests hold the fast kernels to them.
 *
 * Threads: each call splits its output rows over `threads` threads that it
 * starts and joins itself (no pool, nothing global), so checks running in
 * several server threads at once never share state.
 */
#ifndef TS_FACE_OPS_H
#define TS_FACE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

/* (h, w, c), c fastest. data is owned by the map; release with ts_fmap_free,
 * which zeroes it (activations are derived from users' pictures).
 *
 * Repeated rows and columns: when rep_to - rep_from >= 2, rows [rep_from,
 * rep_to) all hold the same values, bit for bit (the zero padding under a
 * landscape photo in the detector's square input); when rep_col_to -
 * rep_col_from >= 2, so do columns [rep_col_from, rep_col_to) within each
 * row (the padding right of a portrait photo). The convolutions below then
 * compute one of those rows or columns and copy it, and mark the rows and
 * columns of their output that repeat in turn: the same result as computing
 * everything, for less work. ts_fmap_alloc marks nothing; whoever fills a
 * map may mark it, and must then make the marks true. */
typedef struct ts_fmap {
    int h, w, c;
    float *data;
    int rep_from, rep_to;         /* repeated rows */
    int rep_col_from, rep_col_to; /* repeated columns */
} ts_fmap;

ts_status ts_fmap_alloc(ts_fmap *m, int h, int w, int c, ts_error *err);
void ts_fmap_free(ts_fmap *m);

typedef enum ts_face_act {
    TS_FACE_ACT_NONE = 0,
    TS_FACE_ACT_RELU,
    TS_FACE_ACT_RELU6, /* clip to [0, 6] */
} ts_face_act;

typedef enum ts_face_pad {
    TS_FACE_PAD_SAME = 0, /* out = ceil(in / s); TF puts the odd pixel after */
    TS_FACE_PAD_VALID,    /* out = floor((in - k) / s) + 1 */
} ts_face_pad;

/* Output length along one axis and the padding before the first pixel. */
int ts_face_out_size(int in, int k, int stride, ts_face_pad pad, int *pad_before);

/* ---------------------------------------------------------------- layers */

typedef struct ts_face_conv {
    int kh, kw, cin, cout, stride;
    ts_face_pad pad;
    ts_face_act act;
    float *filters;   /* (kh, kw, cin, cout) */
    float *packed;    /* filters as GEMM panels (ts_face_conv_prepare) */
    float *mul, *add; /* (cout) each */
} ts_face_conv;

typedef struct ts_face_dwconv {
    int kh, kw, c, stride; /* channel multiplier 1 */
    ts_face_pad pad;
    ts_face_act act;
    float *filters;   /* (kh, kw, c) */
    float *mul, *add; /* (c) each */
} ts_face_dwconv;

/* Allocates a conv of the given geometry with zeroed filters, mul = 1 and
 * add = 0; the caller fills filters/mul/add, then calls
 * ts_face_conv_prepare once to pack the filters. */
ts_status ts_face_conv_init(ts_face_conv *cv, int kh, int kw, int cin, int cout, int stride,
                            ts_face_pad pad, ts_face_act act, ts_error *err);
ts_status ts_face_conv_prepare(ts_face_conv *cv, ts_error *err);
/* Frees the unpacked filters once packed (halves a loaded model's memory);
 * the conv still runs, but its filters field is NULL afterwards. */
void ts_face_conv_drop_filters(ts_face_conv *cv);
void ts_face_conv_free(ts_face_conv *cv);

ts_status ts_face_dwconv_init(ts_face_dwconv *dw, int kh, int kw, int c, int stride,
                              ts_face_pad pad, ts_face_act act, ts_error *err);
void ts_face_dwconv_free(ts_face_dwconv *dw);

/* y (empty on entry) receives the layer's output. */
ts_status ts_face_conv_forward(const ts_face_conv *cv, const ts_fmap *x, ts_fmap *y, int threads,
                               ts_error *err);
ts_status ts_face_dwconv_forward(const ts_face_dwconv *dw, const ts_fmap *x, ts_fmap *y,
                                 int threads, ts_error *err);

/* y (empty on entry) = pw(dw(x)), a depthwise convolution and the 1x1 conv
 * that follows it (pw stride 1). The depthwise output is made a few rows at
 * a time into a small buffer per thread and multiplied while it is still in
 * cache, instead of as a whole map written out and read back: the same
 * numbers, bit for bit, as ts_face_dwconv_forward then ts_face_conv_forward. */
ts_status ts_face_sepconv_forward(const ts_face_dwconv *dw, const ts_face_conv *pw,
                                  const ts_fmap *x, ts_fmap *y, int threads, ts_error *err);

/* Pooling with 'valid' padding (the only kind face-api uses). */
ts_status ts_face_maxpool(const ts_fmap *x, int k, int stride, ts_fmap *y, ts_error *err);
ts_status ts_face_avgpool(const ts_fmap *x, int k, int stride, ts_fmap *y, ts_error *err);

/* y = max(y + x, 0), same shapes. */
void ts_face_add_relu(ts_fmap *y, const ts_fmap *x);

/* ---------------------------------------------------------------- GEMM */

/* c[m, n] = act(a[m, k] . B[k, n] * mul[n] + add[n]) with B packed by
 * ts_face_gemm_pack; a has row stride lda, c row stride ldc. */
void ts_face_gemm(const float *a, int lda, int m, int k, int n, const float *packed,
                  const float *mul, const float *add, ts_face_act act, float *c, int ldc,
                  int threads);

/* Floats needed to pack a k x n matrix, and the packing itself. */
size_t ts_face_gemm_packed_size(int k, int n);
void ts_face_gemm_pack(const float *b, int k, int n, float *packed);

/* 1 when the AVX2 + FMA kernels are in use. */
int ts_face_ops_have_avx2(void);

/* Runs fn(ctx, begin, end) over [0, n) split into `threads` contiguous
 * parts, on threads started and joined here; the caller's thread takes the
 * first part. Falls back to one thread if a thread cannot start. */
void ts_face_parallel_for(int threads, int n, void (*fn)(void *ctx, int begin, int end), void *ctx);

#endif
