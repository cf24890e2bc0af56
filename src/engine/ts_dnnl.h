/*
 * ts_dnnl.h - convolution and matrix multiplication on oneDNN (C API).
 *
 * A ts_dnnl is one oneDNN engine and stream plus a cache of primitives keyed
 * by problem shape, so a network pays primitive creation once per shape (the
 * first denoising step) and never again. The networks of a model share one
 * (ts_nn_scratch); it is used by one thread at a time. oneDNN parallelises
 * each primitive with OpenMP.
 *
 * Convolution kernels are reordered once, at load, into the blocked layout
 * oneDNN prefers for this CPU; activations stay plain (B, C, H, W) between
 * ops and are reordered around the primitive when it prefers a blocked one.
 * A convolution whose blocked copies would pass 32 MiB runs in tiles of
 * output rows (each with its own top/bottom padding), so those copies stay
 * bounded at any image size.
 *
 * Half-precision weights: a kernel or Linear weight that came from an f16 or
 * bf16 checkpoint is kept in that type (a conv kernel already in its blocked
 * layout) and widened into a scratch buffer of the ts_dnnl just before the
 * primitive runs; the values are the same f32 numbers a full conversion at
 * load would give, at half the memory (ts_half.h).
 *
 * Precision: f32 arithmetic everywhere. ts_dnnl_cpu_has_bf16 reports whether the CPU
 * could run bf16 kernels (AVX512-BF16 or AMX); the bf16 path is not built
 * yet, so force_f32 is accepted and has no effect (see docs/LIMITS.md).
 *
 * FLOP counter: every conv and matmul adds its 2*M*N*K multiply-adds to a
 * counter, so a benchmark divides by the wall time to get GFLOP/s.
 */
#ifndef TS_DNNL_H
#define TS_DNNL_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

typedef struct ts_dnnl ts_dnnl;

ts_status ts_dnnl_create(int force_f32, ts_dnnl **out, ts_error *err);
void ts_dnnl_destroy(ts_dnnl *d);

/* 1 when the CPU oneDNN runs on has bf16 instructions (avx512_core_bf16 or
 * AMX); informational until a bf16 path exists. */
int ts_dnnl_cpu_has_bf16(void);

/* Frees the blocked-activation scratch buffers (they grow back on the next
 * call); for networks called rarely with large images. */
void ts_dnnl_trim(ts_dnnl *d);

/* The blocked-copy budget above which convolutions run in row tiles
 * (0: the default, 32 MiB); tests set it small to exercise the tiling. */
void ts_dnnl_set_tile_bytes(ts_dnnl *d, size_t bytes);

/* FLOPs (2 per multiply-add) executed by conv and matmul since creation or
 * the last reset. */
uint64_t ts_dnnl_flops(const ts_dnnl *d);
void ts_dnnl_flops_reset(ts_dnnl *d);

/* ------------------------------------------------------------ convolution */

/* A 2-D convolution layer with its kernel in oneDNN's preferred layout.
 * Padding is given per side so the VAE encoder's (0, 1, 0, 1) downsampling
 * pad is one primitive. */
typedef struct ts_conv2d {
    int cin, cout, k, stride;
    int pad_t, pad_l, pad_b, pad_r;
    void *wmem;  /* dnnl_memory_t holding the reordered kernel, or NULL when kept half */
    void *wdesc; /* dnnl_memory_desc_t of that layout (owned copy) */
    float *bias; /* (cout), owned */
    /* The reordered kernel narrowed to f16/bf16 (ts_conv2d_keep_half), owned. */
    void *whalf;
    int whalf_dtype; /* ts_dtype */
} ts_conv2d;

/* weight: (cout, cin, k, k) plain f32, bias: (cout) or NULL. Both are copied;
 * the caller may free them afterwards. */
ts_status ts_conv2d_init(ts_dnnl *d, ts_conv2d *c, const float *weight, const float *bias, int cin,
                         int cout, int k, int stride, int pad_t, int pad_l, int pad_b, int pad_r,
                         ts_error *err);
void ts_conv2d_free(ts_conv2d *c);

/* Keeps the kernel as dtype (TS_DTYPE_F16 or TS_DTYPE_BF16) instead of f32,
 * for kernels whose every value is exact in it (read from such a file): the
 * forward pass widens it into scratch per call. */
ts_status ts_conv2d_keep_half(ts_conv2d *c, int dtype, ts_error *err);

/* Output size of one spatial dimension. */
int ts_conv2d_out_size(int in, int k, int stride, int pad_lo, int pad_hi);

/* x: (B, cin, H, W) -> y: (B, cout, Ho, Wo). x and y must not overlap. */
ts_status ts_conv2d_forward(ts_dnnl *d, const ts_conv2d *c, const float *x, int batch, int h, int w,
                            float *y, ts_error *err);

/* --------------------------------------------------------------- matmul */

/* C[b] = alpha * A[b] @ op(B[b]) + bias (+ C[b] when accumulate), for b in
 * [0, batch). A is (M, K) with row stride lda; op(B) is (K, N): B is stored
 * (K, N) with row stride ldb, or when trans_b (N, K) with row stride ldb
 * (torch Linear weights). C is (M, N) with row stride ldc. bias is (N) or
 * NULL; alpha must be 1 when bias is given. Batch strides sa/sb/sc are in
 * elements (sb 0 shares B). */
typedef struct ts_matmul_args {
    int batch, m, n, k;
    const float *a;
    int64_t lda, sa;
    const float *b;
    int64_t ldb, sb;
    int trans_b;
    const float *bias;
    float *c;
    int64_t ldc, sc;
    float alpha;
    int accumulate;
} ts_matmul_args;

ts_status ts_dnnl_matmul(ts_dnnl *d, const ts_matmul_args *a, ts_error *err);

/* A Linear layer: y (M, out) = x (M, in) @ W^T + b, W: (out, in) row-major,
 * pointers borrowed (they live in the weights cache or the mapping). The
 * weight is w (f32) or, when w is NULL, wh of type wh_dtype (f16/bf16, any
 * alignment), widened per call. */
typedef struct ts_linear {
    int in, out;
    const float *w;
    const float *b; /* or NULL */
    const void *wh;
    int wh_dtype; /* ts_dtype of wh */
} ts_linear;

/* accumulate: 1 adds into y (residual connections for free). */
ts_status ts_linear_forward(ts_dnnl *d, const ts_linear *l, const float *x, int m, float *y,
                            int accumulate, ts_error *err);

#endif
