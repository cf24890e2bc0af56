/*
 * ts_engine.h - the TogetherShot inference engine: Stable Diffusion-family
 * text-to-image and image-to-image in C on oneDNN.
 *
 * Usage:
 *
 *     ts_model *model;
 *     ts_error err;
 *     if (ts_model_load("models/togethershot-mini", NULL, &model, &err) != TS_OK)
 *         ...err.message names the file or tensor at fault...
 *     ts_gen_params p;
 *     ts_gen_params_default(&p);
 *     p.prompt = "a red heart";
 *     p.seed = 42;
 *     ts_image out;
 *     ts_generate(model, &p, on_progress, user, &out, &err);
 *     ...
 *     ts_image_free(&out);
 *     ts_model_destroy(model);
 *
 * A model is a diffusers-format folder (model_index.json, text_encoder/,
 * tokenizer/, unet/, vae/, scheduler/) or a single-file original checkpoint
 * (.safetensors) of SD 1.x or 2.x. The architecture comes from the
 * configuration files (or, for single files, from tensor names and shapes).
 *
 * Ownership: the caller owns the model and every output image. A model may be
 * used by one ts_generate call at a time; the server keeps one model per
 * worker or serialises calls.
 */
#ifndef TS_ENGINE_H
#define TS_ENGINE_H

#include <stdint.h>

#include "ts_error.h"
#include "ts_image.h"

typedef struct ts_model ts_model;

typedef struct ts_model_options {
    int force_f32; /* 1: never use bf16 kernels even where the CPU has them */
    int threads;   /* 0: all cores */
    /* Single-file checkpoints only: a folder with CLIP's vocab.json and
     * merges.txt (NULL: "tokenizer/" next to the file). */
    const char *tokenizer_dir;
} ts_model_options;

typedef struct ts_model_info {
    char family[32];  /* "sd1", "sd2", "togethershot-mini", ... */
    int native_width; /* the size the model was trained at */
    int native_height;
    int latent_channels;
    int vae_scale;        /* pixels per latent cell (8 for SD) */
    int unet_in_channels; /* 4, or 9 for inpainting UNets */
    int prediction_v;     /* 1: v-prediction, 0: epsilon */
    int default_steps;
    float default_guidance;
} ts_model_info;

ts_status ts_model_load(const char *path, const ts_model_options *opts, ts_model **out,
                        ts_error *err);
void ts_model_destroy(ts_model *model);
void ts_model_get_info(const ts_model *model, ts_model_info *info);

typedef enum ts_sampler {
    TS_SAMPLER_DEFAULT = 0, /* the scheduler config's choice */
    TS_SAMPLER_EULER,
    TS_SAMPLER_EULER_A,
    TS_SAMPLER_DPMPP_2M,
    TS_SAMPLER_DPMPP_2M_KARRAS,
    TS_SAMPLER_DDIM,
    TS_SAMPLER_LCM,
} ts_sampler;

/* Parses "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "lcm". */
int ts_sampler_parse(const char *name, ts_sampler *out);

typedef struct ts_gen_params {
    const char *prompt;          /* any length; chunked past 77 tokens */
    const char *negative_prompt; /* NULL or "" for none */
    int width, height;           /* 0: the model's native size; multiples of vae_scale */
    int steps;                   /* 0: model default */
    float guidance;              /* < 0: model default; <= 1 disables the negative pass */
    uint64_t seed;
    ts_sampler sampler;
    int clip_skip;              /* 0 or 1: last layer; 2: penultimate, ... */
    int philox_noise;           /* 1: GPU-compatible Philox noise for seed portability */
    const ts_image *init_image; /* img2img / inpaint source, or NULL */
    float strength;             /* img2img: 0 returns the input, 1 equals txt2img */
    const ts_image *mask;       /* inpaint: white = repaint, black = keep; or NULL */
} ts_gen_params;

void ts_gen_params_default(ts_gen_params *p);

/* Called after each sampler step. preview is a small RGB image projected from
 * the latent (cheap), or NULL. Return nonzero to cancel: ts_generate then
 * stops between steps and returns TS_ERR_CANCELLED. */
typedef int (*ts_progress_fn)(void *user, int step, int total, const ts_image *preview);

ts_status ts_generate(ts_model *model, const ts_gen_params *params, ts_progress_fn progress,
                      void *user, ts_image *out, ts_error *err);

/* n images (1..TS_GENERATE_MAX_IMAGES) from one request: image i uses seed
 * params->seed + i, recorded in seeds[i] (seeds may be NULL). The prompt is
 * encoded once. progress counts steps over all images (total = n * steps).
 * On failure every image made so far is released. */
#define TS_GENERATE_MAX_IMAGES 16
ts_status ts_generate_n(ts_model *model, const ts_gen_params *params, int n,
                        ts_progress_fn progress, void *user, ts_image *outs, uint64_t *seeds,
                        ts_error *err);

/* Rounds *width and *height to the nearest size the model accepts (a
 * multiple of vae_scale * 2^(unet blocks - 1), at least one multiple, at most
 * TS_GENERATE_SIDE_MAX); 0 means the native size. Callers resize or report
 * the actual size. */
#define TS_GENERATE_SIDE_MAX 2048
void ts_engine_round_size(const ts_model *model, int *width, int *height);

#endif
