/*
 * ts_face_kernels.c - GEMM and depthwise convolution inner loops.
 *
 * Compiled twice (see src/vision/CMakeLists.txt) with TS_FACE_KERNEL_SUFFIX
 * set to avx2 (-mavx2 -mfma) or generic; the code is written once with GCC
 * vector types so each build gets the widest instructions it may use.
 *
 * GEMM blocking: k is cut into equal slices of at most KC and rows into
 * MC-row blocks; inside, a 6 x 16 register tile (12 eight-float
 * accumulators, which is what 16 AVX2 registers hold with room for the two
 * B vectors and the broadcast) walks over the packed panels. The slice of a
 * panel (at most KC x 16 floats, 24 KiB) stays in L1 while the MC rows of A
 * it meets stay in L2. Equal slices matter: a 3x3 conv over 32 channels has
 * k = 288, which fixed 256-long slices would cut into 256 + 32, storing and
 * reloading every tile of C for a 32-step remainder. The slicing never
 * changes the result: each sum runs over k in order, carried between
 * slices in C.
 */
#include "ts_face_kernels.h"

#include <string.h>

#ifndef TS_FACE_KERNEL_SUFFIX
#error "build ts_face_kernels.c with TS_FACE_KERNEL_SUFFIX=avx2 or generic"
#endif
#define KCAT2(a, b) a##_##b
#define KCAT(a, b)  KCAT2(a, b)
#define KNAME(name) KCAT(name, TS_FACE_KERNEL_SUFFIX)

/* Eight floats; the aligned(4) lets loads and stores go to any float. */
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32), aligned(4)));

#define MR 6
#define NR TS_FACE_GEMM_NR
#define KC 384
#define MC 72

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 2 };

static inline v8f splat(float f)
{
    return (v8f){f, f, f, f, f, f, f, f};
}

static inline v8f activate(v8f v, int act)
{
    if (act == ACT_NONE)
        return v;
    v8i pos = v > splat(0.0f);
    v = (v8f)((v8i)v & pos);
    if (act == ACT_RELU6) {
        v8f six = splat(6.0f);
        v8i below = v < six;
        v = (v8f)(((v8i)v & below) | ((v8i)six & ~below));
    }
    return v;
}

/* c[rows, cols] (+)= a[rows, kc] . panel[kc, 16]; rows <= 6, cols <= 16.
 * first: start from zero instead of c; last: apply the epilogue. */
static void micro_6x16(const float *a, int lda, int rows, int kc, const float *bp, float *c,
                       int ldc, int cols, int first, int last, const float *mul, const float *add,
                       int act)
{
    const float *ar[MR];
    for (int r = 0; r < MR; r++)
        ar[r] = a + (size_t)(r < rows ? r : 0) * lda;

    v8f acc[MR][2];
    float tmp[MR][NR];
    if (first) {
        for (int r = 0; r < MR; r++)
            acc[r][0] = acc[r][1] = splat(0.0f);
    } else if (rows == MR && cols == NR) {
        for (int r = 0; r < MR; r++) {
            acc[r][0] = *(const v8f *)(c + (size_t)r * ldc);
            acc[r][1] = *(const v8f *)(c + (size_t)r * ldc + 8);
        }
    } else {
        memset(tmp, 0, sizeof tmp);
        for (int r = 0; r < rows; r++)
            memcpy(tmp[r], c + (size_t)r * ldc, (size_t)cols * sizeof(float));
        for (int r = 0; r < MR; r++) {
            acc[r][0] = *(const v8f *)&tmp[r][0];
            acc[r][1] = *(const v8f *)&tmp[r][8];
        }
    }

    for (int p = 0; p < kc; p++) {
        v8f b0 = *(const v8f *)(bp + (size_t)p * NR);
        v8f b1 = *(const v8f *)(bp + (size_t)p * NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            v8f av = splat(ar[r][p]);
            acc[r][0] += av * b0;
            acc[r][1] += av * b1;
        }
    }

    if (last) {
        float m16[NR] = {0}, a16[NR] = {0};
        memcpy(m16, mul, (size_t)cols * sizeof(float));
        memcpy(a16, add, (size_t)cols * sizeof(float));
        v8f m0 = *(const v8f *)&m16[0], m1 = *(const v8f *)&m16[8];
        v8f a0 = *(const v8f *)&a16[0], a1 = *(const v8f *)&a16[8];
        for (int r = 0; r < MR; r++) {
            acc[r][0] = activate(acc[r][0] * m0 + a0, act);
            acc[r][1] = activate(acc[r][1] * m1 + a1, act);
        }
    }

    if (cols == NR) {
        for (int r = 0; r < rows; r++) {
            *(v8f *)(c + (size_t)r * ldc) = acc[r][0];
            *(v8f *)(c + (size_t)r * ldc + 8) = acc[r][1];
        }
    } else {
        for (int r = 0; r < rows; r++) {
            *(v8f *)&tmp[r][0] = acc[r][0];
            *(v8f *)&tmp[r][8] = acc[r][1];
            memcpy(c + (size_t)r * ldc, tmp[r], (size_t)cols * sizeof(float));
        }
    }
}

/* micro_6x16 for a whole tile (6 rows, 16 columns), the common case: with
 * no ragged edge to handle, the twelve accumulators stay in registers from
 * the first multiply-add to the store. The same operations in the same
 * order as micro_6x16, so the same bits. */
static void micro_6x16_whole(const float *a, int lda, int kc, const float *bp, float *c, int ldc,
                             int first, int last, const float *mul, const float *add, int act)
{
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * (size_t)lda, *a3 = a + 3 * (size_t)lda;
    const float *a4 = a + 4 * (size_t)lda, *a5 = a + 5 * (size_t)lda;
    float *c0 = c, *c1 = c + ldc, *c2 = c + 2 * (size_t)ldc, *c3 = c + 3 * (size_t)ldc;
    float *c4 = c + 4 * (size_t)ldc, *c5 = c + 5 * (size_t)ldc;
    v8f z = splat(0.0f);
    v8f s00 = z, s01 = z, s10 = z, s11 = z, s20 = z, s21 = z;
    v8f s30 = z, s31 = z, s40 = z, s41 = z, s50 = z, s51 = z;
    if (!first) {
        s00 = *(const v8f *)c0, s01 = *(const v8f *)(c0 + 8);
        s10 = *(const v8f *)c1, s11 = *(const v8f *)(c1 + 8);
        s20 = *(const v8f *)c2, s21 = *(const v8f *)(c2 + 8);
        s30 = *(const v8f *)c3, s31 = *(const v8f *)(c3 + 8);
        s40 = *(const v8f *)c4, s41 = *(const v8f *)(c4 + 8);
        s50 = *(const v8f *)c5, s51 = *(const v8f *)(c5 + 8);
    }
    for (int p = 0; p < kc; p++) {
        v8f b0 = *(const v8f *)(bp + (size_t)p * NR);
        v8f b1 = *(const v8f *)(bp + (size_t)p * NR + 8);
        v8f av = splat(a0[p]);
        s00 += av * b0;
        s01 += av * b1;
        av = splat(a1[p]);
        s10 += av * b0;
        s11 += av * b1;
        av = splat(a2[p]);
        s20 += av * b0;
        s21 += av * b1;
        av = splat(a3[p]);
        s30 += av * b0;
        s31 += av * b1;
        av = splat(a4[p]);
        s40 += av * b0;
        s41 += av * b1;
        av = splat(a5[p]);
        s50 += av * b0;
        s51 += av * b1;
    }
    if (last) {
        v8f m0 = *(const v8f *)mul, m1 = *(const v8f *)(mul + 8);
        v8f d0 = *(const v8f *)add, d1 = *(const v8f *)(add + 8);
        s00 = activate(s00 * m0 + d0, act), s01 = activate(s01 * m1 + d1, act);
        s10 = activate(s10 * m0 + d0, act), s11 = activate(s11 * m1 + d1, act);
        s20 = activate(s20 * m0 + d0, act), s21 = activate(s21 * m1 + d1, act);
        s30 = activate(s30 * m0 + d0, act), s31 = activate(s31 * m1 + d1, act);
        s40 = activate(s40 * m0 + d0, act), s41 = activate(s41 * m1 + d1, act);
        s50 = activate(s50 * m0 + d0, act), s51 = activate(s51 * m1 + d1, act);
    }
    *(v8f *)c0 = s00, *(v8f *)(c0 + 8) = s01;
    *(v8f *)c1 = s10, *(v8f *)(c1 + 8) = s11;
    *(v8f *)c2 = s20, *(v8f *)(c2 + 8) = s21;
    *(v8f *)c3 = s30, *(v8f *)(c3 + 8) = s31;
    *(v8f *)c4 = s40, *(v8f *)(c4 + 8) = s41;
    *(v8f *)c5 = s50, *(v8f *)(c5 + 8) = s51;
}

void KNAME(ts_face_gemm_rows)(const float *a, int lda, int m0, int m1, int k, int n,
                              const float *packed, const float *mul, const float *add, int act,
                              float *c, int ldc)
{
    int panels = (n + NR - 1) / NR;
    int slices = (k + KC - 1) / KC;
    int kc_max = (k + slices - 1) / slices;
    for (int kb = 0; kb < k; kb += kc_max) {
        int kc = k - kb < kc_max ? k - kb : kc_max;
        int first = kb == 0, last = kb + kc == k;
        for (int mb = m0; mb < m1; mb += MC) {
            int me = mb + MC < m1 ? mb + MC : m1;
            for (int p = 0; p < panels; p++) {
                const float *bp = packed + (size_t)p * k * NR + (size_t)kb * NR;
                int cols = n - p * NR < NR ? n - p * NR : NR;
                for (int i = mb; i < me; i += MR) {
                    int rows = me - i < MR ? me - i : MR;
                    if (rows == MR && cols == NR) {
                        micro_6x16_whole(a + (size_t)i * lda + kb, lda, kc, bp,
                                         c + (size_t)i * ldc + (size_t)p * NR, ldc, first, last,
                                         mul + p * NR, add + p * NR, act);
                        continue;
                    }
                    micro_6x16(a + (size_t)i * lda + kb, lda, rows, kc, bp,
                               c + (size_t)i * ldc + (size_t)p * NR, ldc, cols, first, last,
                               mul + p * NR, add + p * NR, act);
                }
            }
        }
    }
}

void KNAME(ts_face_dw_rows)(const float *x, int ih, int iw, int c, const float *filters, int kh,
                            int kw, int stride, int pad_top, int pad_left, const float *mul,
                            const float *add, int act, float *y, int ow, int oy0, int oy1)
{
    for (int oy = oy0; oy < oy1; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *out = y + ((size_t)(oy - oy0) * ow + ox) * c;
            /* Eight channels at a time, the taps summed in a register. */
            int ch = 0;
            for (; ch + 8 <= c; ch += 8) {
                v8f acc = splat(0.0f);
                for (int i = 0; i < kh; i++) {
                    int iy = oy * stride - pad_top + i;
                    if (iy < 0 || iy >= ih)
                        continue;
                    for (int j = 0; j < kw; j++) {
                        int ix = ox * stride - pad_left + j;
                        if (ix < 0 || ix >= iw)
                            continue;
                        acc += *(const v8f *)(x + ((size_t)iy * iw + ix) * c + ch) *
                               *(const v8f *)(filters + ((size_t)i * kw + j) * c + ch);
                    }
                }
                *(v8f *)(out + ch) =
                    activate(acc * *(const v8f *)(mul + ch) + *(const v8f *)(add + ch), act);
            }
            /* The channels left over (none in face-api's nets). */
            for (; ch < c; ch++) {
                float v = 0.0f;
                for (int i = 0; i < kh; i++) {
                    int iy = oy * stride - pad_top + i;
                    if (iy < 0 || iy >= ih)
                        continue;
                    for (int j = 0; j < kw; j++) {
                        int ix = ox * stride - pad_left + j;
                        if (ix >= 0 && ix < iw)
                            v += x[((size_t)iy * iw + ix) * c + ch] *
                                 filters[((size_t)i * kw + j) * c + ch];
                    }
                }
                v = v * mul[ch] + add[ch];
                if (act != ACT_NONE && v < 0.0f)
                    v = 0.0f;
                if (act == ACT_RELU6 && v > 6.0f)
                    v = 6.0f;
                out[ch] = v;
            }
        }
    }
}
