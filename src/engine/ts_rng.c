/* ts_rng.c - xoshiro256** and Philox-4x32-10 Gaussian noise (see ts_rng.h). */
#include "ts_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void ts_rng_seed(ts_rng *r, uint64_t seed, int philox)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->philox = philox;
    r->seed = seed;
    r->philox_calls = 0;
}

void ts_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void randn_philox(ts_rng *r, float *out, size_t n)
{
    /* The layout's constants are float32 values used in double arithmetic. */
    const double inv32 = (double)2.3283064e-10f;
    const double inv32_2pi = (double)(float)(2.3283064e-10 * 6.2831855);
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    for (size_t i = 0; i < n; i++) {
        uint32_t ctr[4] = {r->philox_calls, 0, (uint32_t)i, 0}, w[4];
        ts_philox4x32_10(ctr, key, w);
        double u = w[0] * inv32 + inv32 / 2;
        double v = w[1] * inv32_2pi + inv32_2pi / 2;
        out[i] = (float)(sqrt(-2.0 * log(u)) * sin(v));
    }
    r->philox_calls++;
}

void ts_rng_randn(ts_rng *r, float *out, size_t n)
{
    if (r->philox) {
        randn_philox(r, out, n);
        return;
    }
    for (size_t i = 0; i < n; i += 2) {
        /* u1 in (0, 1], u2 in [0, 1): 53-bit uniforms. */
        double u1 = ((xoshiro_next(r->s) >> 11) + 1) * 0x1.0p-53;
        double u2 = (xoshiro_next(r->s) >> 11) * 0x1.0p-53;
        double rad = sqrt(-2.0 * log(u1));
        double a = 6.283185307179586 * u2;
        out[i] = (float)(rad * cos(a));
        if (i + 1 < n)
            out[i + 1] = (float)(rad * sin(a));
    }
}
