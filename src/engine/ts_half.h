/*
 * ts_half.h - half-precision weights (f16, bf16) widened to f32 just before
 * use, and narrowed back when a kernel is repacked at load.
 *
 *     float *buf = ...;                                 // n floats of scratch
 *     ts_half_to_f32(TS_DTYPE_F16, mapped, n, buf);     // mapped may be unaligned
 *     ...compute with buf...
 *
 * Keeping f16/bf16 weights as they are in the checkpoint halves the memory of
 * an SD model (2.1 GB instead of 4.3 GB of f32 copies for SD 1.5) at the cost
 * of one conversion pass per layer call. oneDNN 2.6 refuses convolutions and
 * matmuls with f16 weights on f32 data, and has no all-f16 ones for AVX2 CPUs
 * (checked on Zen 1), so the conversion is ours.
 *
 * The fast paths use F16C (f16) and AVX2 (bf16) when the CPU has them,
 * chosen at run time; the scalar loops over ts_f16_to_f32 / ts_bf16_to_f32
 * are the reference and the fallback. Both give identical results for every
 * finite value, infinity and denormal (F16C quiets a signalling NaN, the
 * scalar path keeps its payload as is). Long inputs are split over OpenMP
 * threads.
 */
#ifndef TS_HALF_H
#define TS_HALF_H

#include <stddef.h>

#include "ts_safetensors.h"

/* src: n values of dtype (TS_DTYPE_F16, TS_DTYPE_BF16 or TS_DTYPE_F32), any
 * alignment -> dst: n floats. dst must not overlap src. */
void ts_half_to_f32(ts_dtype dtype, const void *src, size_t n, float *dst);

/* The reverse, rounding to nearest even: exact for values that came from
 * dtype (a repacked kernel). dtype F16 or BF16. */
void ts_f32_to_half(ts_dtype dtype, const float *src, size_t n, void *dst);

/* The scalar reference of ts_half_to_f32 (tests hold the fast path to it). */
void ts_half_to_f32_ref(ts_dtype dtype, const void *src, size_t n, float *dst);

/* Bytes per element of dtype (2 for f16/bf16, 4 for f32). */
size_t ts_half_esize(ts_dtype dtype);

#endif
