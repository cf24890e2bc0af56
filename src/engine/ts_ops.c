/*
 * ts_ops.c - elementwise, normalisation and attention kernels (see ts_ops.h).
 *
 * Parallel loops split over rows, channels or groups with OpenMP; small
 * inputs stay single-threaded (the `if` clauses) because starting a team
 * costs more than the work.
 */
#include "ts_ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define PAR_MIN 32768 /* elements below which a loop stays on one thread */

/* exp(x) without a library call, so loops over it vectorise: x = n ln2 + r
 * with |r| <= ln2/2, exp(r) by Cephes' degree-6 polynomial, 2^n through the
 * exponent bits. Relative error about 2e-7 over the clamped range; inputs
 * below -87.3 (masked scores are -inf) give about 1e-38 instead of 0, which
 * no sum of probabilities can see. */
static inline float exp_fast(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick: no floorf call, so the
     * loop vectorises (the compiler may not fold it without -ffast-math). */
    float n = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

static inline float sigmoidf_(float x)
{
    return 1.0f / (1.0f + exp_fast(-x));
}

static inline float gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

void ts_op_silu(const float *x, size_t n, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * sigmoidf_(x[i]);
}

void ts_op_gelu(const float *x, size_t n, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = gelu_erf(x[i]);
}

void ts_op_quick_gelu(const float *x, size_t n, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * sigmoidf_(1.702f * x[i]);
}

void ts_op_geglu(const float *x, size_t m, size_t f, float *y)
{
#pragma omp parallel for schedule(static) if (m * f > PAR_MIN)
    for (size_t r = 0; r < m; r++) {
        const float *h = x + r * 2 * f; /* (F) hidden half */
        const float *g = h + f;         /* (F) gate half */
        float *o = y + r * f;
        for (size_t i = 0; i < f; i++)
            o[i] = h[i] * gelu_erf(g[i]);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define OPS_X86 1
#include <immintrin.h>

/* exp_fast on 8 lanes with FMA: the same clamp, rounding trick, Cephes
 * polynomial and exponent construction, so both paths agree to a few ulp. */
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f)); /* NaN-free inputs only: -inf gives -87.3 */
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3f));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504089f), magic), magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* Lanes [0, k) of a tail of k < 8 elements. */
__attribute__((target("avx2,fma"))) static inline __m256i tail_mask(size_t k)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), idx);
}

__attribute__((target("avx2,fma"))) static float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2,fma"))) static float hsum8(__m256 v)
{
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* The same three passes on 8 lanes; the tail uses masked loads and stores. */
__attribute__((target("avx2,fma"))) static void softmax_row_avx2(float *r, size_t n, float scale)
{
    const __m256 vs = _mm256_set1_ps(scale);
    size_t n8 = n & ~(size_t)7, k = n - n8;
    __m256i tm = tail_mask(k);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);

    __m256 vmx = ninf;
    for (size_t i = 0; i < n8; i += 8)
        vmx = _mm256_max_ps(vmx, _mm256_mul_ps(_mm256_loadu_ps(r + i), vs));
    if (k) {
        __m256 t = _mm256_mul_ps(_mm256_maskload_ps(r + n8, tm), vs);
        vmx = _mm256_max_ps(vmx, _mm256_blendv_ps(ninf, t, _mm256_castsi256_ps(tm)));
    }
    const __m256 mx = _mm256_set1_ps(hmax8(vmx));

    __m256 vsum = _mm256_setzero_ps();
    for (size_t i = 0; i < n8; i += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(r + i), vs, mx));
        _mm256_storeu_ps(r + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (k) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_maskload_ps(r + n8, tm), vs, mx));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(tm));
        _mm256_maskstore_ps(r + n8, tm, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum8(vsum));

    for (size_t i = 0; i < n8; i += 8)
        _mm256_storeu_ps(r + i, _mm256_mul_ps(_mm256_loadu_ps(r + i), inv));
    if (k)
        _mm256_maskstore_ps(r + n8, tm, _mm256_mul_ps(_mm256_maskload_ps(r + n8, tm), inv));
}

/* y = silu(x * a + b) on 8 lanes: GroupNorm's last pass. */
__attribute__((target("avx2,fma"))) static void silu_affine_avx2(const float *x, size_t n, float a,
                                                                 float b, float *y)
{
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), one = _mm256_set1_ps(1.0f);
    size_t n8 = n & ~(size_t)7, k = n - n8;
    for (size_t i = 0; i < n8; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vb);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    if (k) {
        __m256i tm = tail_mask(k);
        __m256 v = _mm256_fmadd_ps(_mm256_maskload_ps(x + n8, tm), va, vb);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_maskstore_ps(y + n8, tm, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
}

/* libgcc fills the CPU model before main; this is a load and a test. */
static int cpu_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define OPS_X86 0
#endif

/* vec: 1 to use the AVX2+FMA SiLU pass (the caller checked the CPU). */
static void group_norm(const float *x, int b, int c, size_t hw, int groups, const float *gamma,
                       const float *beta, float eps, int silu, int vec, float *y)
{
    int cg = c / groups; /* channels per group */
#pragma omp parallel for schedule(dynamic) if ((size_t)b * c * hw > PAR_MIN)
    for (int bg = 0; bg < b * groups; bg++) {
        int bi = bg / groups, g = bg % groups;
        const float *xg = x + ((size_t)bi * c + (size_t)g * cg) * hw; /* (cg, HW) */
        float *yg = y + ((size_t)bi * c + (size_t)g * cg) * hw;
        size_t n = (size_t)cg * hw;

        /* Two passes: mean, then variance around it (stable for large means),
         * each double sum split over vector lanes (omp simd). */
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < n; i++)
            sum += xg[i];
        float mean = (float)(sum / (double)n);
        double sq = 0;
#pragma omp simd reduction(+ : sq)
        for (size_t i = 0; i < n; i++) {
            float dv = xg[i] - mean;
            sq += (double)dv * dv;
        }
        float rstd = (float)(1.0 / sqrt(sq / (double)n + eps));

        for (int ci = 0; ci < cg; ci++) {
            int ch = g * cg + ci;
            float a = rstd * gamma[ch];
            float bb = beta[ch] - mean * a;
            const float *xc = xg + (size_t)ci * hw;
            float *yc = yg + (size_t)ci * hw;
            if (silu) {
#if OPS_X86
                if (vec) {
                    silu_affine_avx2(xc, hw, a, bb, yc);
                    continue;
                }
#endif
#pragma omp simd
                for (size_t i = 0; i < hw; i++) {
                    float v = xc[i] * a + bb;
                    yc[i] = v * sigmoidf_(v);
                }
            } else {
#pragma omp simd
                for (size_t i = 0; i < hw; i++)
                    yc[i] = xc[i] * a + bb;
            }
        }
    }
}

void ts_op_group_norm(const float *x, int b, int c, size_t hw, int groups, const float *gamma,
                      const float *beta, float eps, int silu, float *y)
{
#if OPS_X86
    int vec = cpu_avx2_fma();
#else
    int vec = 0;
#endif
    group_norm(x, b, c, hw, groups, gamma, beta, eps, silu, vec, y);
}

void ts_op_group_norm_portable(const float *x, int b, int c, size_t hw, int groups,
                               const float *gamma, const float *beta, float eps, int silu, float *y)
{
    group_norm(x, b, c, hw, groups, gamma, beta, eps, silu, 0, y);
}

void ts_op_layer_norm(const float *x, size_t m, int d, const float *gamma, const float *beta,
                      float eps, float *y)
{
#pragma omp parallel for schedule(static) if (m * (size_t)d > PAR_MIN)
    for (size_t r = 0; r < m; r++) {
        const float *xr = x + r * (size_t)d;
        float *yr = y + r * (size_t)d;
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < d; i++)
            sum += xr[i];
        float mean = (float)(sum / d);
        double sq = 0;
#pragma omp simd reduction(+ : sq)
        for (int i = 0; i < d; i++) {
            float dv = xr[i] - mean;
            sq += (double)dv * dv;
        }
        float rstd = (float)(1.0 / sqrt(sq / d + eps));
        for (int i = 0; i < d; i++)
            yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
    }
}

/* The portable row: three passes (max, exp and sum, scale), vectorised by
 * the compiler at the baseline ISA. */
static void softmax_row(float *r, size_t n, float scale)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (size_t i = 0; i < n; i++)
        mx = r[i] * scale > mx ? r[i] * scale : mx;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < n; i++) {
        r[i] = exp_fast(r[i] * scale - mx);
        sum += r[i];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        r[i] *= inv;
}

void ts_op_softmax_rows_portable(float *x, size_t m, size_t n, float scale)
{
#pragma omp parallel for schedule(static) if (m * n > PAR_MIN)
    for (size_t r = 0; r < m; r++)
        softmax_row(x + r * n, n, scale);
}

void ts_op_softmax_rows(float *x, size_t m, size_t n, float scale)
{
#if OPS_X86
    if (cpu_avx2_fma()) {
#pragma omp parallel for schedule(static) if (m * n > PAR_MIN)
        for (size_t r = 0; r < m; r++)
            softmax_row_avx2(x + r * n, n, scale);
        return;
    }
#endif
    ts_op_softmax_rows_portable(x, m, n, scale);
}

void ts_op_add(const float *a, const float *b, size_t n, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void ts_op_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void ts_op_add_channel_bias(float *x, int b, int c, size_t hw, const float *bias)
{
#pragma omp parallel for schedule(static) if ((size_t)b * c * hw > PAR_MIN)
    for (int bc = 0; bc < b * c; bc++) {
        float v = bias[bc];
        float *p = x + (size_t)bc * hw;
        for (size_t i = 0; i < hw; i++)
            p[i] += v;
    }
}

void ts_op_concat_channels(const float *a, int ca, const float *b, int cb, int batch, size_t hw,
                           float *y)
{
    for (int n = 0; n < batch; n++) {
        float *yn = y + (size_t)n * (ca + cb) * hw;
        memcpy(yn, a + (size_t)n * ca * hw, (size_t)ca * hw * sizeof(float));
        memcpy(yn + (size_t)ca * hw, b + (size_t)n * cb * hw, (size_t)cb * hw * sizeof(float));
    }
}

void ts_op_upsample_nearest2x(const float *x, int b, int c, int h, int w, float *y)
{
#pragma omp parallel for schedule(static) if ((size_t)b * c * h * w > PAR_MIN / 4)
    for (int bc = 0; bc < b * c; bc++) {
        const float *xp = x + (size_t)bc * h * w;
        float *yp = y + (size_t)bc * 4 * h * w;
        for (int i = 0; i < h; i++) {
            float *r0 = yp + (size_t)(2 * i) * 2 * w;
            for (int j = 0; j < w; j++) {
                r0[2 * j] = r0[2 * j + 1] = xp[(size_t)i * w + j];
            }
            memcpy(r0 + 2 * w, r0, (size_t)2 * w * sizeof(float));
        }
    }
}

void ts_op_nchw_to_nhwc(const float *x, int b, int c, size_t hw, float *y)
{
    for (int n = 0; n < b; n++) {
        const float *xn = x + (size_t)n * c * hw;
        float *yn = y + (size_t)n * c * hw;
#pragma omp parallel for schedule(static) if ((size_t)c * hw > PAR_MIN)
        for (size_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++)
                yn[p * c + ch] = xn[(size_t)ch * hw + p];
    }
}

void ts_op_nhwc_to_nchw(const float *x, int b, int c, size_t hw, float *y)
{
    for (int n = 0; n < b; n++) {
        const float *xn = x + (size_t)n * c * hw;
        float *yn = y + (size_t)n * c * hw;
#pragma omp parallel for schedule(static) if ((size_t)c * hw > PAR_MIN)
        for (int ch = 0; ch < c; ch++)
            for (size_t p = 0; p < hw; p++)
                yn[(size_t)ch * hw + p] = xn[p * c + ch];
    }
}

void ts_op_timestep_embedding(float t, int dim, int flip_sin_to_cos, float freq_shift, float *out)
{
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        /* As torch computes it: exponent in f32, then exp, then t * f. */
        float expo = -logf(10000.0f) * (float)i / ((float)half - freq_shift);
        float arg = t * expf(expo);
        float s = sinf(arg), c = cosf(arg);
        out[i] = flip_sin_to_cos ? c : s;
        out[half + i] = flip_sin_to_cos ? s : c;
    }
}

/* ---------------------------------------------------------------- attention */

ts_status ts_op_attention(ts_dnnl *d, ts_arena *arena, const ts_attention_args *a, ts_error *err)
{
    int heads = a->heads, lq = a->lq, lk = a->lk, dh = a->dh;
    int bq = a->block_q;
    if (bq <= 0) {
        /* Scores for all heads of one block of queries: heads * bq * Lk floats,
         * about 32 MiB (larger blocks keep oneDNN's matmuls efficient; at
         * SD 1.5 512x512 that is 256 queries of 4096 keys for 8 heads). */
        size_t per_query = (size_t)heads * (size_t)lk * sizeof(float);
        bq = (int)((size_t)(32u << 20) / per_query);
        if (bq < 8)
            bq = 8;
    }
    if (bq > lq)
        bq = lq;

    ts_arena_mark mark = ts_arena_save(arena);
    float *s = ts_arena_floats(arena, (size_t)heads * bq * lk, err); /* (heads, bq, Lk) */
    if (!s)
        return err->status;

    ts_status st = TS_OK;
    for (int b = 0; b < a->batch && st == TS_OK; b++) {
        const float *qb = a->q + (size_t)b * lq * a->ldq;
        const float *kb = a->k + (size_t)b * lk * a->ldk;
        const float *vb = a->v + (size_t)b * lk * a->ldv;
        float *ob = a->out + (size_t)b * lq * a->ldo;
        for (int q0 = 0; q0 < lq && st == TS_OK; q0 += bq) {
            int n = lq - q0 < bq ? lq - q0 : bq;

            /* S_h (n, Lk) = scale * Q_h[q0:q0+n] (n, dh) @ K_h^T (dh, Lk), all heads. */
            ts_matmul_args sm = {.batch = heads,
                                 .m = n,
                                 .n = lk,
                                 .k = dh,
                                 .a = qb + (size_t)q0 * a->ldq,
                                 .lda = a->ldq,
                                 .sa = dh,
                                 .b = kb,
                                 .ldb = a->ldk,
                                 .sb = dh,
                                 .trans_b = 1,
                                 .c = s,
                                 .ldc = lk,
                                 .sc = (int64_t)n * lk,
                                 .alpha = a->scale};
            st = ts_dnnl_matmul(d, &sm, err);
            if (st != TS_OK)
                break;

            /* Causal mask: query q0+i sees keys 0..q0+i. */
            if (a->causal) {
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < n; i++)
                        for (int j = q0 + i + 1; j < lk; j++)
                            s[((size_t)h * n + i) * lk + j] = -INFINITY;
            }
            ts_op_softmax_rows(s, (size_t)heads * n, (size_t)lk, 1.0f);

            /* O_h[q0:q0+n] (n, dh) = P_h (n, Lk) @ V_h (Lk, dh). */
            ts_matmul_args om = {.batch = heads,
                                 .m = n,
                                 .n = dh,
                                 .k = lk,
                                 .a = s,
                                 .lda = lk,
                                 .sa = (int64_t)n * lk,
                                 .b = vb,
                                 .ldb = a->ldv,
                                 .sb = dh,
                                 .trans_b = 0,
                                 .c = ob + (size_t)q0 * a->ldo,
                                 .ldc = a->ldo,
                                 .sc = dh,
                                 .alpha = 1.0f};
            st = ts_dnnl_matmul(d, &om, err);
        }
    }
    ts_arena_restore(arena, mark);
    return st;
}
