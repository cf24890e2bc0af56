/*
 * ts_pipeline.h - the generation pipeline's internal entry point (the public
 * one is ts_generate in ts_engine.h).
 *
 * ts_generate_ex is ts_generate with hooks for tests and benchmarks: the
 * starting noise and the per-step noises can be given explicitly (to compare
 * a whole sampler run with a reference implementation on identical inputs),
 * and the final latent can be read out before (or instead of) decoding.
 *
 * The pipeline, step by step:
 *   1. resolve defaults (size, steps, guidance, sampler) and check sizes;
 *   2. encode the prompt (and, when guidance > 1, the negative prompt) in
 *      75-token chunks; emphasis weights scale the hidden states;
 *   3. starting latent: noise * init_noise_sigma (txt2img), or the init
 *      image's latent noised to the level of the first step that runs
 *      (img2img: max(1, floor(steps * strength)) steps run);
 *   4. per step: the UNet once on the batch [uncond; cond] (batch 1 without
 *      guidance), out = u + g (c - u), the sampler step, then for inpainting
 *      with an ordinary 4-channel UNet the kept region is replaced by the
 *      original latent noised to the next level; 9-channel inpainting UNets
 *      get the mask and the masked image's latent as extra channels;
 *   5. progress callback with a preview, cancellation between steps;
 *   6. VAE decode; for inpainting the kept pixels are composited back from
 *      the source with the (soft) mask, so they come back unchanged.
 */
#ifndef TS_PIPELINE_H
#define TS_PIPELINE_H

#include "ts_engine.h"

typedef struct ts_gen_debug {
    const float *init_noise;  /* (C, h, w) standard normal, replaces the generator's */
    const float *step_noise;  /* (steps, C, h, w) for Euler a / LCM, or NULL */
    const float *init_latent; /* img2img/inpaint: (C, h, w) in model space, replaces the
                                 VAE-encoded init image (which still sets size and the
                                 composited pixels) */
    float *out_latent;        /* receives the final latent (C, h, w) in model space, or NULL */
    int skip_decode;          /* 1: stop after sampling; *out stays empty */
} ts_gen_debug;

ts_status ts_generate_ex(ts_model *model, const ts_gen_params *params, const ts_gen_debug *dbg,
                         ts_progress_fn progress, void *user, ts_image *out, ts_error *err);

#endif
