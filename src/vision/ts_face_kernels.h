/*
 * ts_face_kernels.h - the hot loops of the face networks, built twice from
 * ts_face_kernels.c: once with AVX2 + FMA (suffix _avx2) and once for plain
 * x86-64 (suffix _generic). ts_face_ops.c picks one at run time; nothing
 * else calls these directly.
 *
 * Depthwise rows: output rows [oy0, oy1) of a (oh, ow, c) map, written to y,
 * which points at row oy0 (so a caller may collect a few rows in a small
 * buffer).
 *
 * Packed GEMM operand: B (k x n, row-major) is cut into panels of
 * TS_FACE_GEMM_NR columns (the last one zero-padded); panel p stores its k
 * rows of TS_FACE_GEMM_NR floats one after the other.
 */
#ifndef TS_FACE_KERNELS_H
#define TS_FACE_KERNELS_H

#define TS_FACE_GEMM_NR 16

#define TS_FACE_KERNEL_DECLS(sfx)                                                                  \
    void ts_face_gemm_rows_##sfx(const float *a, int lda, int m0, int m1, int k, int n,            \
                                 const float *packed, const float *mul, const float *add, int act, \
                                 float *c, int ldc);                                               \
    void ts_face_dw_rows_##sfx(const float *x, int ih, int iw, int c, const float *filters,        \
                               int kh, int kw, int stride, int pad_top, int pad_left,              \
                               const float *mul, const float *add, int act, float *y, int ow,      \
                               int oy0, int oy1);

TS_FACE_KERNEL_DECLS(avx2)
TS_FACE_KERNEL_DECLS(generic)

#endif
