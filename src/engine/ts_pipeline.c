/*
 * ts_pipeline.c - txt2img, img2img and inpainting over the three networks
 * (see ts_pipeline.h for the steps).
 *
 * Memory: every buffer of one generation is allocated here and freed before
 * return; prompt-derived buffers (token ids, hidden states) are wiped.
 * Shapes: latents (C, h, w) with h = height / vae_scale; the UNet input
 * (B, Cin, h, w) with Cin = C or 2C + 1; text context (B, T, D), T = 77 x
 * chunks.
 */
#include "ts_pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ts_model.h"
#include "ts_prompt.h"
#include "ts_rng.h"
#include "ts_sampler.h"

void ts_gen_params_default(ts_gen_params *p)
{
    memset(p, 0, sizeof(*p));
    p->prompt = "";
    p->guidance = -1.0f;
    p->sampler = TS_SAMPLER_DEFAULT;
    p->strength = 0.75f;
}

/* ------------------------------------------------------------ the request */

typedef struct plan {
    int width, height; /* pixels */
    int lh, lw, C;     /* latent */
    int cin;           /* UNet input channels */
    int steps, start;  /* steps of the schedule; the first that runs */
    int cfg;           /* 1: batch [uncond; cond] */
    float guidance;
    int use_init; /* img2img start from the init image's latent */
    int inpaint;  /* a mask is given */
    int ninech;   /* 9-channel inpainting UNet */
    ts_schedule sched;
} plan;

static ts_status make_plan(const ts_model *m, const ts_gen_params *p, plan *pl, ts_error *err)
{
    memset(pl, 0, sizeof(*pl));
    const ts_model_info *mi = &m->info;
    int q = mi->vae_scale * m->unet_factor;
    pl->width = p->width > 0 ? p->width : mi->native_width;
    pl->height = p->height > 0 ? p->height : mi->native_height;
    if (p->width < 0 || p->height < 0 || pl->width % q || pl->height % q ||
        pl->width > TS_GENERATE_SIDE_MAX || pl->height > TS_GENERATE_SIDE_MAX)
        return ts_error_set(err, TS_ERR_ARG,
                            "size %dx%d is not supported: each side must be a multiple of %d "
                            "up to %d (ts_engine_round_size gives the nearest)",
                            pl->width, pl->height, q, TS_GENERATE_SIDE_MAX);
    pl->lh = pl->height / mi->vae_scale;
    pl->lw = pl->width / mi->vae_scale;
    pl->C = mi->latent_channels;
    pl->cin = mi->unet_in_channels;
    pl->ninech = pl->cin == 2 * pl->C + 1;

    pl->steps = p->steps > 0 ? p->steps : mi->default_steps;
    if (p->steps < 0 || pl->steps > TS_SCHEDULE_MAX_STEPS)
        return ts_error_set(err, TS_ERR_ARG, "steps must be 1..%d", TS_SCHEDULE_MAX_STEPS);
    pl->guidance = p->guidance >= 0.0f ? p->guidance : mi->default_guidance;
    if (!(pl->guidance <= 100.0f))
        return ts_error_set(err, TS_ERR_ARG, "guidance must be 0..100");
    pl->cfg = pl->guidance > 1.0f;
    if (p->clip_skip < 0 || p->clip_skip > m->clip_cfg.layers)
        return ts_error_set(err, TS_ERR_ARG, "clip skip must be 0..%d", m->clip_cfg.layers);

    if (p->mask && !p->init_image)
        return ts_error_set(err, TS_ERR_ARG, "a mask needs an init image");
    if (pl->ninech && !p->mask)
        return ts_error_set(err, TS_ERR_ARG,
                            "this is an inpainting model: give an init image and a mask");
    if (p->init_image &&
        (!p->init_image->pixels || p->init_image->width < 1 || p->init_image->height < 1))
        return ts_error_set(err, TS_ERR_ARG, "the init image is empty");
    if (p->init_image && !(p->strength >= 0.0f && p->strength <= 1.0f))
        return ts_error_set(err, TS_ERR_ARG, "strength must be 0..1");
    pl->inpaint = p->mask != NULL;

    ts_status st = ts_schedule_make(&m->sched_cfg, p->sampler, pl->steps, &pl->sched, err);
    if (st != TS_OK)
        return st;
    pl->use_init = p->init_image && p->strength < 1.0f;
    if (pl->use_init) {
        int run = (int)((float)pl->steps * p->strength);
        if (run < 1)
            run = 1; /* a tiny strength still runs one step */
        pl->start = pl->steps - run;
    }
    return TS_OK;
}

/* ------------------------------------------------------------ text */

typedef struct text_cond {
    int tokens; /* T */
    int batch;
    size_t floats;
    float *context; /* (batch, T, D): [uncond; cond] when batch is 2 */
} text_cond;

static void text_cond_free(text_cond *tc)
{
    if (tc->context) {
        sodium_memzero(tc->context, tc->floats * sizeof(float));
        free(tc->context);
    }
    memset(tc, 0, sizeof(*tc));
}

static ts_status encode_chunks(ts_model *m, const ts_prompt_tokens *pt, int clip_skip, float *out,
                               ts_error *err)
{
    int W = pt->window, D = m->clip_cfg.hidden;
    for (int c = 0; c < pt->n_chunks; c++) {
        float *z = out + (size_t)c * W * D;
        ts_status st = ts_clip_encode(m->clip, pt->ids[c], clip_skip, z, err);
        if (st != TS_OK)
            return ts_error_wrap(err, "text encoder");
        if (pt->any_weight)
            ts_prompt_apply_weights(z, W, D, pt->weights[c]);
    }
    return TS_OK;
}

static ts_status encode_text(ts_model *m, const ts_gen_params *p, const plan *pl, text_cond *tc,
                             ts_error *err)
{
    memset(tc, 0, sizeof(*tc));
    ts_prompt_tokens *pos = malloc(sizeof(*pos)), *neg = malloc(sizeof(*neg));
    ts_status st = TS_OK;
    if (!pos || !neg) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory encoding the prompt");
        goto done;
    }
    int W = m->clip_cfg.max_positions, D = m->clip_cfg.hidden;
    if ((st = ts_prompt_tokenize(m->tok, p->prompt, W, pos, err)) != TS_OK)
        goto done;
    if ((st = ts_prompt_tokenize(m->tok, pl->cfg ? p->negative_prompt : NULL, W, neg, err)) !=
        TS_OK) {
        ts_error_wrap(err, "negative prompt");
        goto done;
    }
    /* Both halves of the batch need one token count. */
    int chunks = pos->n_chunks > neg->n_chunks ? pos->n_chunks : neg->n_chunks;
    ts_prompt_tokens_pad_to(m->tok, pos, chunks);
    ts_prompt_tokens_pad_to(m->tok, neg, chunks);

    tc->batch = pl->cfg ? 2 : 1;
    tc->tokens = chunks * W;
    tc->floats = (size_t)tc->batch * tc->tokens * D;
    tc->context = malloc(tc->floats * sizeof(float));
    if (!tc->context) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory for the text states");
        goto done;
    }
    float *cond = tc->context + (size_t)(tc->batch - 1) * tc->tokens * D;
    if ((st = encode_chunks(m, pos, p->clip_skip, cond, err)) != TS_OK)
        goto done;
    if (pl->cfg)
        st = encode_chunks(m, neg, p->clip_skip, tc->context, err);

done:
    if (pos)
        ts_prompt_tokens_wipe(pos);
    if (neg)
        ts_prompt_tokens_wipe(neg);
    free(pos);
    free(neg);
    if (st != TS_OK)
        text_cond_free(tc);
    return st;
}

/* ------------------------------------------------------------ images */

typedef struct source {
    ts_image image;    /* the init image at the output size */
    float *mask_px;    /* (H, W) in [0, 1], 1 = repaint; NULL without a mask */
    float *init_lat;   /* (C, h, w) model space */
    float *mask_lat;   /* (h, w): area mean of mask_px (blending) or nearest of the binary mask */
    float *masked_lat; /* (C, h, w): 9-channel models only */
} source;

static void source_free(source *s, const plan *pl)
{
    size_t px = (size_t)pl->width * pl->height, lat = (size_t)pl->C * pl->lh * pl->lw;
    ts_image_free(&s->image);
    if (s->mask_px)
        sodium_memzero(s->mask_px, px * sizeof(float));
    if (s->init_lat)
        sodium_memzero(s->init_lat, lat * sizeof(float));
    if (s->masked_lat)
        sodium_memzero(s->masked_lat, lat * sizeof(float));
    free(s->mask_px);
    free(s->init_lat);
    free(s->mask_lat);
    free(s->masked_lat);
    memset(s, 0, sizeof(*s));
}

/* An image at exactly w x h: a copy, or resized. */
static ts_status image_at(const ts_image *src, int w, int h, ts_image *dst, ts_error *err)
{
    if (src->width == w && src->height == h)
        return ts_image_copy(src, dst, err);
    return ts_image_resize(src, w, h, dst, err);
}

/* (1, 3, H, W) pixels in [-1, 1] -> (C, h, w) latent mean * scaling_factor. */
static ts_status encode_latent(ts_model *m, const plan *pl, const float *pixels, float *lat,
                               ts_error *err)
{
    size_t n = (size_t)pl->C * pl->lh * pl->lw;
    float *logvar = malloc(n * sizeof(float));
    if (!logvar)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory encoding the image");
    ts_status st = ts_vae_encode(m->vae, pixels, pl->height, pl->width, lat, logvar, err);
    free(logvar);
    if (st != TS_OK)
        return ts_error_wrap(err, "vae encode");
    /* The mean, not a sample: the same input always gives the same latent. */
    for (size_t i = 0; i < n; i++)
        lat[i] *= m->vae_cfg.scaling_factor;
    return TS_OK;
}

static ts_status prepare_source(ts_model *m, const ts_gen_params *p, const plan *pl,
                                const ts_gen_debug *dbg, source *s, ts_error *err)
{
    memset(s, 0, sizeof(*s));
    int W = pl->width, H = pl->height, f = m->info.vae_scale;
    size_t px = (size_t)W * H, lat = (size_t)pl->C * pl->lh * pl->lw,
           cells = (size_t)pl->lh * pl->lw;
    float *pixels = NULL;
    ts_image mask_img = {0};
    ts_status st = image_at(p->init_image, W, H, &s->image, err);
    if (st != TS_OK)
        goto done;
    pixels = malloc(3 * px * sizeof(float));
    s->init_lat = malloc(lat * sizeof(float));
    if (!pixels || !s->init_lat) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory for the init image");
        goto done;
    }
    ts_image_to_tensor(&s->image, pixels);
    if (dbg && dbg->init_latent)
        memcpy(s->init_lat, dbg->init_latent, lat * sizeof(float));
    else if ((st = encode_latent(m, pl, pixels, s->init_lat, err)) != TS_OK)
        goto done;
    if (!pl->inpaint)
        goto done;

    if ((st = image_at(p->mask, W, H, &mask_img, err)) != TS_OK)
        goto done;
    s->mask_px = malloc(px * sizeof(float));
    s->mask_lat = malloc(cells * sizeof(float));
    if (!s->mask_px || !s->mask_lat) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory for the mask");
        goto done;
    }
    ts_image_mask_to_tensor(&mask_img, s->mask_px);
    for (int y = 0; y < pl->lh; y++)
        for (int x = 0; x < pl->lw; x++) {
            float *o = &s->mask_lat[(size_t)y * pl->lw + x];
            if (pl->ninech) {
                /* As diffusers: binarise at 0.5, nearest-neighbour down. */
                *o = s->mask_px[(size_t)(y * f) * W + x * f] >= 0.5f ? 1.0f : 0.0f;
            } else {
                double sum = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++)
                        sum += s->mask_px[(size_t)(y * f + dy) * W + x * f + dx];
                *o = (float)(sum / (f * f));
            }
        }
    if (pl->ninech) {
        /* The masked image: repainted pixels set to 0 (mid grey). */
        for (size_t i = 0; i < px; i++)
            if (s->mask_px[i] >= 0.5f)
                pixels[i] = pixels[px + i] = pixels[2 * px + i] = 0.0f;
        s->masked_lat = malloc(lat * sizeof(float));
        if (!s->masked_lat) {
            st = ts_error_set(err, TS_ERR_NOMEM, "out of memory for the mask");
            goto done;
        }
        st = encode_latent(m, pl, pixels, s->masked_lat, err);
    }

done:
    ts_image_free(&mask_img);
    if (pixels) {
        sodium_memzero(pixels, 3 * px * sizeof(float));
        free(pixels);
    }
    if (st != TS_OK)
        source_free(s, pl);
    return st;
}

/* ------------------------------------------------------------ one image */

typedef struct progress_ctx {
    ts_progress_fn fn;
    void *user;
    int base, total;
} progress_ctx;

static ts_status run_one(ts_model *m, const ts_gen_params *p, const plan *pl, const text_cond *tc,
                         const source *src, uint64_t seed, const ts_gen_debug *dbg,
                         const progress_ctx *pc, ts_image *out, ts_error *err)
{
    const ts_schedule *s = &pl->sched;
    size_t cells = (size_t)pl->lh * pl->lw, n = (size_t)pl->C * cells;
    int B = tc->batch;
    float *x = malloc(n * sizeof(float));
    float *noise = malloc(n * sizeof(float));
    float *step_noise = malloc(n * sizeof(float));
    float *tmp = malloc(n * sizeof(float));
    float *x_in = malloc((size_t)B * pl->cin * cells * sizeof(float));
    float *model_out = malloc((size_t)B * n * sizeof(float));
    float *decoded = NULL;
    ts_sampler_state state = {0};
    ts_status st = TS_OK;
    if (!x || !noise || !step_noise || !tmp || !x_in || !model_out) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory for the latents");
        goto done;
    }
    if ((st = ts_sampler_state_init(&state, s, n, err)) != TS_OK)
        goto done;

    /* Starting latent. */
    ts_rng rng;
    ts_rng_seed(&rng, seed, p->philox_noise);
    if (dbg && dbg->init_noise)
        memcpy(noise, dbg->init_noise, n * sizeof(float));
    else
        ts_rng_randn(&rng, noise, n);
    if (pl->use_init)
        ts_schedule_add_noise(s, pl->start, src->init_lat, noise, x, n);
    else
        ts_schedule_start(s, noise, x, n);

    for (int i = pl->start; i < pl->steps; i++) {
        /* UNet input (B, Cin, h, w): the scaled latent, then for 9-channel
         * models the mask and the masked image's latent; copied per batch. */
        float scale = s->input_scale[i];
        for (int b = 0; b < B; b++) {
            float *xi = x_in + (size_t)b * pl->cin * cells;
            for (size_t k = 0; k < n; k++)
                xi[k] = x[k] * scale;
            if (pl->ninech) {
                memcpy(xi + n, src->mask_lat, cells * sizeof(float));
                memcpy(xi + n + cells, src->masked_lat, n * sizeof(float));
            }
        }
        st = ts_unet_forward(m->unet, x_in, B, pl->lh, pl->lw, s->timesteps[i], tc->context,
                             tc->tokens, model_out, err);
        if (st != TS_OK) {
            ts_error_wrap(err, "unet");
            goto done;
        }
        /* Guidance: out = u + g (c - u), written over the first half. */
        if (B == 2)
            for (size_t k = 0; k < n; k++)
                model_out[k] = model_out[k] + pl->guidance * (model_out[n + k] - model_out[k]);

        if (ts_sampler_is_stochastic(s->kind)) {
            if (dbg && dbg->step_noise)
                memcpy(step_noise, dbg->step_noise + (size_t)i * n, n * sizeof(float));
            else
                ts_rng_randn(&rng, step_noise, n);
        }
        ts_sampler_step(&state, s, i, x, model_out, step_noise);

        /* Inpainting with an ordinary UNet: keep the known region on the
         * original's trajectory (its latent noised to the next level). */
        if (pl->inpaint && !pl->ninech) {
            ts_schedule_add_noise(s, i + 1, src->init_lat, noise, tmp, n);
            for (int c = 0; c < pl->C; c++)
                for (size_t k = 0; k < cells; k++) {
                    float mk = src->mask_lat[k];
                    size_t at = (size_t)c * cells + k;
                    x[at] = mk * x[at] + (1.0f - mk) * tmp[at];
                }
        }

        if (pc->fn) {
            /* The preview reads the latent at unit scale. */
            float ps = 1.0f;
            if (s->kind == TS_SAMPLER_EULER || s->kind == TS_SAMPLER_EULER_A)
                ps = 1.0f / sqrtf(s->sigmas[i + 1] * s->sigmas[i + 1] + 1.0f);
            for (size_t k = 0; k < n; k++)
                tmp[k] = x[k] * ps;
            ts_image preview = {0};
            ts_error perr;
            int have =
                ts_preview_render(&m->preview, tmp, pl->lh, pl->lw, &preview, &perr) == TS_OK;
            int stop =
                pc->fn(pc->user, pc->base + (i - pl->start) + 1, pc->total, have ? &preview : NULL);
            ts_image_free(&preview);
            if (stop) {
                st = ts_error_set(err, TS_ERR_CANCELLED, "generation cancelled after step %d",
                                  i + 1);
                goto done;
            }
        }
    }

    if (dbg && dbg->out_latent)
        memcpy(dbg->out_latent, x, n * sizeof(float));
    if (dbg && dbg->skip_decode)
        goto done;

    /* Decode: the VAE takes the latent divided by the scaling factor. */
    size_t px = (size_t)pl->width * pl->height;
    decoded = malloc(3 * px * sizeof(float));
    if (!decoded) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory decoding the image");
        goto done;
    }
    for (size_t k = 0; k < n; k++)
        x[k] /= m->vae_cfg.scaling_factor;
    if ((st = ts_vae_decode(m->vae, x, pl->lh, pl->lw, decoded, err)) != TS_OK) {
        ts_error_wrap(err, "vae decode");
        goto done;
    }
    if ((st = ts_image_from_tensor(decoded, pl->width, pl->height, out, err)) != TS_OK)
        goto done;

    /* Inpainting: pixels outside the mask come back from the source. */
    if (pl->inpaint)
        for (size_t i = 0; i < px; i++) {
            float mk = src->mask_px[i];
            for (int k = 0; k < 3; k++) {
                float v = mk * out->pixels[i * 3 + k] + (1.0f - mk) * src->image.pixels[i * 3 + k];
                out->pixels[i * 3 + k] = (uint8_t)lrintf(v);
            }
        }

done:
    if (decoded) {
        sodium_memzero(decoded, 3 * (size_t)pl->width * pl->height * sizeof(float));
        free(decoded);
    }
    ts_sampler_state_free(&state);
    free(x);
    free(noise);
    free(step_noise);
    free(tmp);
    free(x_in);
    free(model_out);
    return st;
}

/* ------------------------------------------------------------ entry points */

static ts_status generate(ts_model *m, const ts_gen_params *p, int count, const ts_gen_debug *dbg,
                          ts_progress_fn progress, void *user, ts_image *outs, uint64_t *seeds,
                          ts_error *err)
{
    if (!m || !p || !outs)
        return ts_error_set(err, TS_ERR_ARG, "model, parameters and output are required");
    if (count < 1 || count > TS_GENERATE_MAX_IMAGES)
        return ts_error_set(err, TS_ERR_ARG, "number of images must be 1..%d",
                            TS_GENERATE_MAX_IMAGES);
    for (int i = 0; i < count; i++)
        memset(&outs[i], 0, sizeof(outs[i]));
    plan pl;
    ts_status st = make_plan(m, p, &pl, err);
    if (st != TS_OK)
        return st;

    /* Strength 0 changes nothing: the input comes back as it is. */
    if (p->init_image && p->strength <= 0.0f) {
        for (int i = 0; i < count && st == TS_OK; i++) {
            st = image_at(p->init_image, pl.width, pl.height, &outs[i], err);
            if (seeds)
                seeds[i] = p->seed + (uint64_t)i;
        }
        goto fail_check;
    }

    text_cond tc;
    if ((st = encode_text(m, p, &pl, &tc, err)) != TS_OK)
        return st;
    source src = {0};
    if (p->init_image && (st = prepare_source(m, p, &pl, dbg, &src, err)) != TS_OK) {
        text_cond_free(&tc);
        return st;
    }
    int per = pl.steps - pl.start;
    for (int i = 0; i < count && st == TS_OK; i++) {
        uint64_t seed = p->seed + (uint64_t)i;
        if (seeds)
            seeds[i] = seed;
        progress_ctx pc = {progress, user, i * per, count * per};
        st = run_one(m, p, &pl, &tc, &src, seed, dbg, &pc, &outs[i], err);
    }
    source_free(&src, &pl);
    text_cond_free(&tc);

fail_check:
    if (st != TS_OK)
        for (int i = 0; i < count; i++)
            ts_image_free(&outs[i]);
    return st;
}

ts_status ts_generate_ex(ts_model *model, const ts_gen_params *params, const ts_gen_debug *dbg,
                         ts_progress_fn progress, void *user, ts_image *out, ts_error *err)
{
    return generate(model, params, 1, dbg, progress, user, out, NULL, err);
}

ts_status ts_generate(ts_model *model, const ts_gen_params *params, ts_progress_fn progress,
                      void *user, ts_image *out, ts_error *err)
{
    return generate(model, params, 1, NULL, progress, user, out, NULL, err);
}

ts_status ts_generate_n(ts_model *model, const ts_gen_params *params, int n,
                        ts_progress_fn progress, void *user, ts_image *outs, uint64_t *seeds,
                        ts_error *err)
{
    return generate(model, params, n, NULL, progress, user, outs, seeds, err);
}
