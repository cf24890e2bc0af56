/*
 * ts_half.c - f16/bf16 <-> f32 conversion (see ts_half.h).
 *
 * The vector paths are compiled with per-function target attributes so the
 * rest of the build stays at its baseline ISA; they run only after the CPU
 * check. Chunks of PAR_CHUNK elements go to OpenMP threads, so a 118 MB
 * kernel is widened by both cores.
 */
#include "ts_half.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HALF_X86 1
#else
#define HALF_X86 0
#endif

#define PAR_CHUNK ((size_t)1 << 16)

size_t ts_half_esize(ts_dtype dtype)
{
    return dtype == TS_DTYPE_F32 ? 4 : 2;
}

/* ---------------------------------------------------------------- scalar */

static void widen_scalar(ts_dtype dtype, const unsigned char *src, size_t n, float *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2); /* the data may be unaligned */
        dst[i] = dtype == TS_DTYPE_F16 ? ts_f16_to_f32(h) : ts_bf16_to_f32(h);
    }
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a NaN */
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(x >> 16);
}

static void narrow_scalar(ts_dtype dtype, const float *src, size_t n, unsigned char *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = dtype == TS_DTYPE_F16 ? ts_f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

/* ---------------------------------------------------------------- x86 */

#if HALF_X86
__attribute__((target("avx,f16c"))) static void widen_f16c(const unsigned char *src, size_t n,
                                                           float *dst)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    widen_scalar(TS_DTYPE_F16, src + 2 * i, n - i, dst + i);
}

__attribute__((target("avx,f16c"))) static void narrow_f16c(const float *src, size_t n,
                                                            unsigned char *dst)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + 2 * i), h);
    }
    narrow_scalar(TS_DTYPE_F16, src + i, n - i, dst + 2 * i);
}

/* bf16 is the high half of an f32: zero-extend and shift. */
__attribute__((target("avx2"))) static void widen_bf16_avx2(const unsigned char *src, size_t n,
                                                            float *dst)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_si256((__m256i *)(dst + i), w);
    }
    widen_scalar(TS_DTYPE_BF16, src + 2 * i, n - i, dst + i);
}

/* libgcc fills the CPU model before main; the checks are a load and a test.
 * F16C is read from CPUID leaf 1 (ECX bit 29) directly: clang's
 * __builtin_cpu_supports does not know the name "f16c". */
static int cpu_f16c(void)
{
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

static int cpu_avx2(void)
{
    return __builtin_cpu_supports("avx2");
}
#endif

/* One chunk, fastest path the CPU allows. */
static void widen(ts_dtype dtype, const unsigned char *src, size_t n, float *dst)
{
#if HALF_X86
    if (dtype == TS_DTYPE_F16 && cpu_f16c()) {
        widen_f16c(src, n, dst);
        return;
    }
    if (dtype == TS_DTYPE_BF16 && cpu_avx2()) {
        widen_bf16_avx2(src, n, dst);
        return;
    }
#endif
    widen_scalar(dtype, src, n, dst);
}

static void narrow(ts_dtype dtype, const float *src, size_t n, unsigned char *dst)
{
#if HALF_X86
    if (dtype == TS_DTYPE_F16 && cpu_f16c()) {
        narrow_f16c(src, n, dst);
        return;
    }
#endif
    narrow_scalar(dtype, src, n, dst);
}

/* ---------------------------------------------------------------- public */

void ts_half_to_f32(ts_dtype dtype, const void *src, size_t n, float *dst)
{
    if (dtype == TS_DTYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    const unsigned char *s = src;
    size_t chunks = (n + PAR_CHUNK - 1) / PAR_CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (size_t c = 0; c < chunks; c++) {
        size_t i = c * PAR_CHUNK, m = n - i < PAR_CHUNK ? n - i : PAR_CHUNK;
        widen(dtype, s + 2 * i, m, dst + i);
    }
}

void ts_f32_to_half(ts_dtype dtype, const float *src, size_t n, void *dst)
{
    unsigned char *d = dst;
    size_t chunks = (n + PAR_CHUNK - 1) / PAR_CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (size_t c = 0; c < chunks; c++) {
        size_t i = c * PAR_CHUNK, m = n - i < PAR_CHUNK ? n - i : PAR_CHUNK;
        narrow(dtype, src + i, m, d + 2 * i);
    }
}

void ts_half_to_f32_ref(ts_dtype dtype, const void *src, size_t n, float *dst)
{
    if (dtype == TS_DTYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    widen_scalar(dtype, src, n, dst);
}
