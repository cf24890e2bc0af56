/*
 * ts_ops_ref.c - the reference kernels: the definitions, written as plainly
 * as the formulas, accumulated in double. Not used by the networks.
 */
#include "ts_ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ts_ref_conv2d(const float *x, int b, int cin, int h, int w, const float *wt, const float *bias,
                   int cout, int k, int stride, int pad_t, int pad_l, int pad_b, int pad_r,
                   float *y)
{
    int ho = (h + pad_t + pad_b - k) / stride + 1;
    int wo = (w + pad_l + pad_r - k) / stride + 1;
    for (int n = 0; n < b; n++)
        for (int o = 0; o < cout; o++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int c = 0; c < cin; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int yi = i * stride + ki - pad_t;
                                int xj = j * stride + kj - pad_l;
                                if (yi < 0 || yi >= h || xj < 0 || xj >= w)
                                    continue;
                                acc += (double)x[(((size_t)n * cin + c) * h + yi) * w + xj] *
                                       wt[(((size_t)o * cin + c) * k + ki) * k + kj];
                            }
                    y[(((size_t)n * cout + o) * ho + i) * wo + j] = (float)acc;
                }
}

void ts_ref_matmul(int batch, int m, int n, int k, const float *a, const float *bm, int trans_b,
                   const float *bias, float alpha, int accumulate, float *c)
{
    for (int z = 0; z < batch; z++) {
        const float *az = a + (size_t)z * m * k;
        const float *bz = bm + (size_t)z * k * n;
        float *cz = c + (size_t)z * m * n;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int p = 0; p < k; p++)
                    acc += (double)az[(size_t)i * k + p] *
                           (trans_b ? bz[(size_t)j * k + p] : bz[(size_t)p * n + j]);
                double v = alpha * acc + (bias ? bias[j] : 0.0);
                cz[(size_t)i * n + j] = (float)(accumulate ? cz[(size_t)i * n + j] + v : v);
            }
    }
}

void ts_ref_silu(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
}

void ts_ref_gelu(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

void ts_ref_quick_gelu(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(x[i] / (1.0 + exp(-1.702 * x[i])));
}

void ts_ref_geglu(const float *x, size_t m, size_t f, float *y)
{
    for (size_t r = 0; r < m; r++)
        for (size_t i = 0; i < f; i++) {
            double h = x[r * 2 * f + i], g = x[r * 2 * f + f + i];
            y[r * f + i] = (float)(h * 0.5 * g * (1.0 + erf(g / sqrt(2.0))));
        }
}

void ts_ref_group_norm(const float *x, int b, int c, size_t hw, int groups, const float *gamma,
                       const float *beta, float eps, int silu, float *y)
{
    int cg = c / groups;
    for (int n = 0; n < b; n++)
        for (int g = 0; g < groups; g++) {
            double sum = 0, sq = 0;
            size_t cnt = (size_t)cg * hw;
            for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                for (size_t p = 0; p < hw; p++)
                    sum += x[((size_t)n * c + ch) * hw + p];
            double mean = sum / (double)cnt;
            for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                for (size_t p = 0; p < hw; p++) {
                    double dv = x[((size_t)n * c + ch) * hw + p] - mean;
                    sq += dv * dv;
                }
            double var = sq / (double)cnt;
            for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                for (size_t p = 0; p < hw; p++) {
                    size_t i = ((size_t)n * c + ch) * hw + p;
                    double v = (x[i] - mean) / sqrt(var + eps) * gamma[ch] + beta[ch];
                    if (silu)
                        v = v / (1.0 + exp(-v));
                    y[i] = (float)v;
                }
        }
}

void ts_ref_layer_norm(const float *x, size_t m, int d, const float *gamma, const float *beta,
                       float eps, float *y)
{
    for (size_t r = 0; r < m; r++) {
        double sum = 0, sq = 0;
        for (int i = 0; i < d; i++)
            sum += x[r * d + i];
        double mean = sum / d;
        for (int i = 0; i < d; i++)
            sq += (x[r * d + i] - mean) * (x[r * d + i] - mean);
        double var = sq / d;
        for (int i = 0; i < d; i++)
            y[r * d + i] = (float)((x[r * d + i] - mean) / sqrt(var + eps) * gamma[i] + beta[i]);
    }
}

void ts_ref_softmax_rows(float *x, size_t m, size_t n, float scale)
{
    for (size_t r = 0; r < m; r++) {
        double mx = -INFINITY, sum = 0;
        for (size_t i = 0; i < n; i++)
            if ((double)x[r * n + i] * scale > mx)
                mx = (double)x[r * n + i] * scale;
        for (size_t i = 0; i < n; i++)
            sum += exp((double)x[r * n + i] * scale - mx);
        for (size_t i = 0; i < n; i++)
            x[r * n + i] = (float)(exp((double)x[r * n + i] * scale - mx) / sum);
    }
}

void ts_ref_upsample_nearest2x(const float *x, int b, int c, int h, int w, float *y)
{
    for (int n = 0; n < b * c; n++)
        for (int i = 0; i < 2 * h; i++)
            for (int j = 0; j < 2 * w; j++)
                y[((size_t)n * 2 * h + i) * 2 * w + j] = x[((size_t)n * h + i / 2) * w + j / 2];
}

void ts_ref_concat_channels(const float *a, int ca, const float *bb, int cb, int batch, size_t hw,
                            float *y)
{
    for (int n = 0; n < batch; n++)
        for (int ch = 0; ch < ca + cb; ch++)
            for (size_t p = 0; p < hw; p++)
                y[((size_t)n * (ca + cb) + ch) * hw + p] =
                    ch < ca ? a[((size_t)n * ca + ch) * hw + p]
                            : bb[((size_t)n * cb + ch - ca) * hw + p];
}

void ts_ref_timestep_embedding(float t, int dim, int flip_sin_to_cos, float freq_shift, float *out)
{
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        double f = exp(-log(10000.0) * i / (half - freq_shift));
        double sv = sin(t * f), cv = cos(t * f);
        out[i] = (float)(flip_sin_to_cos ? cv : sv);
        out[half + i] = (float)(flip_sin_to_cos ? sv : cv);
    }
}

void ts_ref_attention(int batch, int heads, int lq, int lk, int dh, const float *q, const float *k,
                      const float *v, float scale, int causal, float *out)
{
    int d = heads * dh;
    double *s = malloc((size_t)lk * sizeof(double));
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < lq; i++) {
                const float *qi = q + ((size_t)b * lq + i) * d + h * dh;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < lk; j++) {
                    const float *kj = k + ((size_t)b * lk + j) * d + h * dh;
                    double acc = 0;
                    for (int p = 0; p < dh; p++)
                        acc += (double)qi[p] * kj[p];
                    s[j] = (causal && j > i) ? -INFINITY : acc * scale;
                    if (s[j] > mx)
                        mx = s[j];
                }
                for (int j = 0; j < lk; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (int p = 0; p < dh; p++) {
                    double acc = 0;
                    for (int j = 0; j < lk; j++)
                        acc += s[j] * v[((size_t)b * lk + j) * d + h * dh + p];
                    out[((size_t)b * lq + i) * d + h * dh + p] = (float)(acc / sum);
                }
            }
    free(s);
}
