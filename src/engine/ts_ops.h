/*
 * ts_ops.h - the elementwise, normalisation and attention kernels of the
 * networks (fast versions; ts_ops_ref.h holds the plain ones the tests hold
 * these to). Convolution and matmul live in ts_dnnl.h.
 *
 * Every tensor is a plain row-major float array; shapes are in the comments.
 * In-place use (y == x) is allowed where a comment says so. Loops over
 * independent rows or channels run in parallel with OpenMP.
 */
#ifndef TS_OPS_H
#define TS_OPS_H

#include <stddef.h>

#include "ts_dnnl.h"
#include "ts_error.h"
#include "ts_tensor.h"

/* y = x * sigmoid(x); y may be x. */
void ts_op_silu(const float *x, size_t n, float *y);

/* y = 0.5 x (1 + erf(x / sqrt 2)) (torch's exact gelu); y may be x. */
void ts_op_gelu(const float *x, size_t n, float *y);

/* y = x * sigmoid(1.702 x) (OpenAI CLIP); y may be x. */
void ts_op_quick_gelu(const float *x, size_t n, float *y);

/* x: (M, 2F) -> y: (M, F), y = x[:, :F] * gelu(x[:, F:]). */
void ts_op_geglu(const float *x, size_t m, size_t f, float *y);

/* x: (B, C, HW), groups G dividing C; per (b, group) mean/variance over
 * C/G * HW values, then y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c],
 * then SiLU when silu. y may be x. */
void ts_op_group_norm(const float *x, int b, int c, size_t hw, int groups, const float *gamma,
                      const float *beta, float eps, int silu, float *y);

/* The same with the baseline-ISA SiLU pass only (ts_op_group_norm uses
 * AVX2+FMA when the CPU has them; tests compare both with the reference). */
void ts_op_group_norm_portable(const float *x, int b, int c, size_t hw, int groups,
                               const float *gamma, const float *beta, float eps, int silu,
                               float *y);

/* x: (M, D) -> y: per row (x - mean) / sqrt(var + eps) * gamma + beta. y may be x. */
void ts_op_layer_norm(const float *x, size_t m, int d, const float *gamma, const float *beta,
                      float eps, float *y);

/* x: (M, N) rows -> softmax(scale * x) per row, in place. Entries may be
 * -inf (masked); a row needs one finite entry. Uses AVX2+FMA when the CPU has
 * them (checked at run time), else the portable loop below. */
void ts_op_softmax_rows(float *x, size_t m, size_t n, float scale);

/* The same with the baseline-ISA loop only (the fallback; tests compare both
 * with ts_ref_softmax_rows). */
void ts_op_softmax_rows_portable(float *x, size_t m, size_t n, float scale);

/* y = a + b (n elements); y may be a or b. */
void ts_op_add(const float *a, const float *b, size_t n, float *y);

/* y += x. */
void ts_op_add_inplace(float *y, const float *x, size_t n);

/* x: (B, C, HW), bias (B, C): x[b, c, :] += bias[b, c]. */
void ts_op_add_channel_bias(float *x, int b, int c, size_t hw, const float *bias);

/* a: (B, Ca, HW), b: (B, Cb, HW) -> y: (B, Ca + Cb, HW). */
void ts_op_concat_channels(const float *a, int ca, const float *b, int cb, int batch, size_t hw,
                           float *y);

/* x: (B, C, H, W) -> y: (B, C, 2H, 2W), nearest neighbour. */
void ts_op_upsample_nearest2x(const float *x, int b, int c, int h, int w, float *y);

/* (B, C, HW) <-> (B, HW, C). */
void ts_op_nchw_to_nhwc(const float *x, int b, int c, size_t hw, float *y);
void ts_op_nhwc_to_nchw(const float *x, int b, int c, size_t hw, float *y);

/* Sinusoidal timestep embedding as diffusers' get_timestep_embedding:
 * half = dim / 2, f_i = exp(-ln(10000) * i / (half - freq_shift)),
 * emb = [sin(t f), cos(t f)], swapped to [cos, sin] when flip_sin_to_cos.
 * out: (dim); dim even. */
void ts_op_timestep_embedding(float t, int dim, int flip_sin_to_cos, float freq_shift, float *out);

/* Scaled dot-product attention over heads, computed in blocks of queries so
 * the score matrix held at once is (block, Lk) for one head:
 *
 *   q: (B, Lq, heads * dh), row stride ldq; k, v: (B, Lk, heads * dh), row
 *   stride ldk / ldv; out: (B, Lq, heads * dh), row stride ldo.
 *   out_h = softmax(q_h k_h^T * scale [+ causal mask]) v_h.
 *
 * causal: query i sees keys 0..i (CLIP). block_q: queries per block (0 picks
 * one that keeps the score block near 32 MiB). Scratch comes from arena. */
typedef struct ts_attention_args {
    int batch, heads, lq, lk, dh;
    const float *q;
    int64_t ldq;
    const float *k;
    int64_t ldk;
    const float *v;
    int64_t ldv;
    float *out;
    int64_t ldo;
    float scale;
    int causal;
    int block_q;
} ts_attention_args;

ts_status ts_op_attention(ts_dnnl *d, ts_arena *arena, const ts_attention_args *a, ts_error *err);

#endif
