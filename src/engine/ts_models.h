/*
 * ts_models.h - the engine's three networks as the pipeline sees them
 * (internal to src/engine; the public surface is ts_engine.h).
 *
 * The pipeline (tokenizer, samplers, guidance, img2img) calls only these
 * functions; how the networks are stored and computed (oneDNN, bf16/f32,
 * blocked attention) stays behind them.
 *
 * Layout conventions: tensors are plain row-major float arrays, images and
 * latents in (B, C, H, W), token sequences in (B, T, D). Callers own every
 * buffer they pass; the networks keep scratch memory between calls (their
 * own, or a ts_nn_scratch shared by the networks of one model).
 */
#ifndef TS_MODELS_H
#define TS_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

typedef struct ts_clip ts_clip;
typedef struct ts_unet ts_unet;
typedef struct ts_vae ts_vae;
typedef struct ts_weights ts_weights;

/* -------------------------------------------------------------- config */

typedef struct ts_clip_config {
    int vocab_size;
    int hidden; /* D: 768 for SD 1.x, 1024 for SD 2.x */
    int layers;
    int heads;
    int intermediate;
    int max_positions; /* 77 */
    int act_gelu;      /* 1: gelu (OpenCLIP), 0: quick_gelu (OpenAI CLIP) */
    int bos_id, eos_id, pad_id;
    /* Added after the first version: */
    float layer_norm_eps; /* 1e-5 */
} ts_clip_config;

typedef struct ts_unet_config {
    int in_channels, out_channels;
    int sample_size; /* native latent size */
    int n_blocks;    /* len(block_out_channels) */
    int block_out_channels[6];
    int down_cross_attn[6]; /* 1 where the down block is CrossAttnDownBlock2D */
    int up_cross_attn[6];   /* 1 where the up block is CrossAttnUpBlock2D */
    int layers_per_block;
    int head_dim[6]; /* per block; SD 1.x: 8 heads, SD 2.x: dim 64 */
    int heads[6];    /* per block; one of head_dim/heads is derived */
    int cross_attention_dim;
    int norm_groups;
    float norm_eps;
    int use_linear_projection; /* SD 2.x: Linear proj_in/proj_out */
    int transformer_layers;    /* per attention, normally 1 */
    int flip_sin_to_cos;
    float freq_shift;
    /* Added after the first version: */
    int time_embed_dim;     /* 4 * block_out_channels[0] */
    int downsample_padding; /* 1 */
} ts_unet_config;

typedef struct ts_vae_config {
    int in_channels, out_channels, latent_channels;
    int n_blocks;
    int block_out_channels[6];
    int layers_per_block;
    int norm_groups;
    int sample_size;
    float scaling_factor; /* 0.18215 for SD */
    /* Added after the first version: */
    float shift_factor;      /* 0 for SD; latents are (z - shift) * scale */
    int use_quant_conv;      /* 1 for SD */
    int use_post_quant_conv; /* 1 for SD */
    int mid_attention;       /* 1 for SD: the mid block has self-attention */
} ts_vae_config;

/* -------------------------------------------------------------- scratch */

/* Scratch memory shared by the networks of one model: one oneDNN context
 * (primitive cache, blocked-activation and widened-weight buffers) and one
 * arena. The pipeline runs one network at a time, so a model holds the
 * largest network's scratch (the VAE decode's, about 1.2 GiB at 512x512)
 * instead of the sum, and keeps it for the next image. Passing NULL to a
 * create function gives that network scratch of its own (tests).
 * Destroy it after every network that uses it. */
typedef struct ts_nn_scratch ts_nn_scratch;

ts_status ts_nn_scratch_create(ts_nn_scratch **out, ts_error *err);
void ts_nn_scratch_destroy(ts_nn_scratch *scratch);

/* --------------------------------------------------------- text encoder */

/* Builds the encoder from weights (names as in diffusers' CLIPTextModel,
 * "text_model.*"; the loader maps other layouts onto these names). */
ts_status ts_clip_create(const ts_clip_config *cfg, ts_weights *w, const char *prefix,
                         ts_nn_scratch *scratch, ts_clip **out, ts_error *err);
void ts_clip_destroy(ts_clip *clip);

/* ids: (T) token ids, T == cfg->max_positions. out: (T, hidden).
 * clip_skip 0/1 = last layer (then final layer norm); k >= 2 = output of layer
 * L-k+1 (then final layer norm, as the popular front ends do). */
ts_status ts_clip_encode(ts_clip *clip, const int32_t *ids, int clip_skip, float *out,
                         ts_error *err);

/* ----------------------------------------------------------------- UNet */

ts_status ts_unet_create(const ts_unet_config *cfg, ts_weights *w, const char *prefix,
                         ts_nn_scratch *scratch, ts_unet **out, ts_error *err);
void ts_unet_destroy(ts_unet *unet);

/* x: (B, in_channels, h, w) latents; timestep: one value for the batch;
 * context: (B, T, cross_attention_dim); out: (B, out_channels, h, w).
 * h and w must be multiples of 2^(n_blocks-1). */
ts_status ts_unet_forward(ts_unet *unet, const float *x, int batch, int h, int w, float timestep,
                          const float *context, int tokens, float *out, ts_error *err);

/* The same with one timestep per batch element, timesteps: (B). */
ts_status ts_unet_forward_t(ts_unet *unet, const float *x, int batch, int h, int w,
                            const float *timesteps, const float *context, int tokens, float *out,
                            ts_error *err);

/* ------------------------------------------------------------------ VAE */

ts_status ts_vae_create(const ts_vae_config *cfg, ts_weights *w, const char *prefix,
                        ts_nn_scratch *scratch, ts_vae **out, ts_error *err);
void ts_vae_destroy(ts_vae *vae);

/* latent: (1, latent_channels, h, w) already divided by scaling_factor;
 * out: (1, 3, h*f, w*f) in [-1, 1] (not clamped). f = 2^(n_blocks-1). */
ts_status ts_vae_decode(ts_vae *vae, const float *latent, int h, int w, float *out, ts_error *err);

/* image: (1, 3, H, W) in [-1, 1]; mean and logvar: (1, latent_channels, H/f, W/f),
 * not yet multiplied by scaling_factor. */
ts_status ts_vae_encode(ts_vae *vae, const float *image, int height, int width, float *mean,
                        float *logvar, ts_error *err);

/* ------------------------------------------------------------ benchmarks */

/* FLOPs (2 per multiply-add, conv and matmul only) spent by the last forward
 * call of each network, for GFLOP/s = flops / seconds of that call. */
uint64_t ts_clip_last_flops(const ts_clip *clip);
uint64_t ts_unet_last_flops(const ts_unet *unet);
uint64_t ts_vae_last_flops(const ts_vae *vae);

/* Bytes of arena scratch each network holds between calls (networks that
 * share a ts_nn_scratch report the same, shared arena). */
size_t ts_unet_scratch_bytes(const ts_unet *unet);
size_t ts_vae_scratch_bytes(const ts_vae *vae);

#endif
