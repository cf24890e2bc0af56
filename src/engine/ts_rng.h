/*
 * ts_rng.h - deterministic Gaussian noise for latents and ancestral steps.
 *
 * Two generators, chosen when seeding:
 *   - default: xoshiro256** (state from splitmix64 of the seed) with the
 *     Box-Muller transform, both outputs of each pair used. Fast, and the
 *     same seed gives bit-identical noise on every x86-64 build.
 *   - philox: Philox-4x32-10 in the layout of the popular front ends'
 *     "GPU-compatible" generator: call k of randn fills element i from the
 *     block function at counter (k, 0, i, 0) with key (seed low, seed high),
 *     and turns its first two words into one normal value by Box-Muller
 *     (radius from the first, sine of the angle from the second). The block
 *     function is checked against the published Random123 answers; that this
 *     reproduces torch.randn on a CUDA device could not be checked here (no
 *     GPU), so treat seed portability as unverified.
 *
 *     ts_rng r;
 *     ts_rng_seed(&r, 42, 0);
 *     ts_rng_randn(&r, latent, 4 * 64 * 64);
 */
#ifndef TS_RNG_H
#define TS_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct ts_rng {
    uint64_t s[4];
    int philox;
    uint64_t seed;
    uint32_t philox_calls; /* counter word 0: one per randn call */
} ts_rng;

void ts_rng_seed(ts_rng *r, uint64_t seed, int philox);

/* Fills out[0..n) with standard normal values. */
void ts_rng_randn(ts_rng *r, float *out, size_t n);

/* The Philox-4x32-10 block function: ctr and key in, 4 words out. */
void ts_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif
