/*
 * ts_ckpt.h - single-file original Stable Diffusion checkpoints
 * (.safetensors with model.diffusion_model.*, first_stage_model.*,
 * cond_stage_model.*), seen through diffusers' names.
 *
 *     ts_weights *w;
 *     ts_ckpt_info info;
 *     if (ts_ckpt_load("sd15.safetensors", &w, &info, err) != TS_OK) ...
 *     ts_clip_create(&info.clip, w, TS_CKPT_PREFIX_CLIP, &clip, err);
 *     ts_unet_create(&info.unet, w, TS_CKPT_PREFIX_UNET, &unet, err);
 *     ts_vae_create(&info.vae, w, TS_CKPT_PREFIX_VAE, &vae, err);
 *
 * The family comes from tensor names and shapes:
 *   sd1: CLIP ViT-L under cond_stage_model.transformer.text_model.*, 1x1
 *        convolution proj_in, 8 heads per attention;
 *   sd2: OpenCLIP-H under cond_stage_model.model.* (fused in_proj_weight),
 *        Linear proj_in/proj_out, heads of 64 channels.
 * inpaint is set when the UNet takes 9 input channels. The three configs are
 * derived from shapes (channels, depth, block kinds, context width), and
 * every tensor the networks need gets an alias under the diffusers name:
 * input_blocks/middle_block/output_blocks to down/mid/up blocks, the fused
 * OpenCLIP q/k/v split into q_proj/k_proj/v_proj, the VAE's 1x1-conv
 * attention seen as Linear layers.
 *
 * SD 2.x text encoders: the checkpoint holds all 24 OpenCLIP layers; like
 * diffusers' conversion, info.clip.layers is 23 (SD 2.x conditions on the
 * penultimate layer), so clip_skip 0/1 gives what SD 2.x pipelines use.
 *
 * What shapes cannot tell (heads per attention, GroupNorm groups, the
 * latent scaling factor, the text layer used, v-prediction) comes from an
 * "ldm_config" entry in the file's __metadata__ when present (a JSON string
 * with the original model's settings: unet.num_heads / num_head_channels /
 * norm_num_groups, vae.norm_num_groups, text.heads / layer_used,
 * scale_factor, parameterization), else from the published family defaults:
 * sd1 8 heads, sd2 64-channel heads, 32 groups, CLIP heads of 64 channels,
 * 0.18215. v-prediction (SD 2.x 768) cannot be seen in the weights: without
 * metadata prediction_v is -1 and the caller decides (a flag or a sidecar).
 */
#ifndef TS_CKPT_H
#define TS_CKPT_H

#include "ts_error.h"
#include "ts_models.h"

#define TS_CKPT_PREFIX_CLIP "text_encoder."
#define TS_CKPT_PREFIX_UNET "unet."
#define TS_CKPT_PREFIX_VAE  "vae."

typedef struct ts_ckpt_info {
    char family[16];  /* "sd1" or "sd2" */
    int inpaint;      /* 1 when the UNet has 9 input channels */
    int prediction_v; /* 1 v-prediction, 0 epsilon, -1 not stated in the file */
    ts_clip_config clip;
    ts_unet_config unet;
    ts_vae_config vae;
} ts_ckpt_info;

/* 1 when the weights look like an original single-file checkpoint. */
int ts_ckpt_detect(const ts_weights *w);

/* Opens path, detects the family and adds the aliases. On success the caller
 * owns *out (ts_weights_destroy). */
ts_status ts_ckpt_load(const char *path, ts_weights **out, ts_ckpt_info *info, ts_error *err);

/* The same on weights already opened with prefix "" (tests). */
ts_status ts_ckpt_map(ts_weights *w, ts_ckpt_info *info, ts_error *err);

#endif
