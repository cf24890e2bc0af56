/*
 * ts_ops_ref.h - plain, obviously correct reference kernels: straight loops
 * with double accumulators, no blocking, no threads, no oneDNN. They define
 * what the fast kernels in ts_ops.h and ts_dnnl.h must compute; the tests
 * compare the two on random tensors. Too slow for real models.
 */
#ifndef TS_OPS_REF_H
#define TS_OPS_REF_H

#include <stddef.h>
#include <stdint.h>

/* x: (B, Cin, H, W), w: (Cout, Cin, k, k), bias (Cout) or NULL ->
 * y: (B, Cout, Ho, Wo), zero padding per side. */
void ts_ref_conv2d(const float *x, int b, int cin, int h, int w, const float *wt, const float *bias,
                   int cout, int k, int stride, int pad_t, int pad_l, int pad_b, int pad_r,
                   float *y);

/* C[b] (M, N) = alpha * A[b] (M, K) @ B[b] (K, N, or (N, K) when trans_b) + bias
 * (+ C when accumulate); dense rows (lda = K, ...). */
void ts_ref_matmul(int batch, int m, int n, int k, const float *a, const float *bm, int trans_b,
                   const float *bias, float alpha, int accumulate, float *c);

void ts_ref_silu(const float *x, size_t n, float *y);
void ts_ref_gelu(const float *x, size_t n, float *y);
void ts_ref_quick_gelu(const float *x, size_t n, float *y);
void ts_ref_geglu(const float *x, size_t m, size_t f, float *y);
void ts_ref_group_norm(const float *x, int b, int c, size_t hw, int groups, const float *gamma,
                       const float *beta, float eps, int silu, float *y);
void ts_ref_layer_norm(const float *x, size_t m, int d, const float *gamma, const float *beta,
                       float eps, float *y);
void ts_ref_softmax_rows(float *x, size_t m, size_t n, float scale);
void ts_ref_upsample_nearest2x(const float *x, int b, int c, int h, int w, float *y);
void ts_ref_concat_channels(const float *a, int ca, const float *bb, int cb, int batch, size_t hw,
                            float *y);
void ts_ref_timestep_embedding(float t, int dim, int flip_sin_to_cos, float freq_shift, float *out);

/* Full attention, whole (Lq, Lk) score matrix per head, dense layouts:
 * q (B, Lq, heads*dh), k/v (B, Lk, heads*dh), out (B, Lq, heads*dh). */
void ts_ref_attention(int batch, int heads, int lq, int lk, int dh, const float *q, const float *k,
                      const float *v, float scale, int causal, float *out);

#endif
