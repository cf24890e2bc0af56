/*
 * ts_model.h - what a loaded model holds (internal to src/engine; the public
 * surface is ts_engine.h). The pipeline reads these fields.
 *
 * Loading a diffusers folder reads, in order:
 *   model_index.json                       must be a JSON object
 *   togethershot.json                      optional: default_steps, default_guidance, family
 *   text_encoder/config.json, tokenizer/{vocab.json, merges.txt},
 *   unet/config.json, vae/config.json, scheduler/scheduler_config.json
 *   <part>/{model,diffusion_pytorch_model}[.fp16].safetensors
 * then checks that the parts fit together (context width, latent channels,
 * token window) before building the networks.
 *
 * A single .safetensors original checkpoint is mapped by ts_ckpt. CLIP's
 * vocabulary is not in such files and cannot be shipped with the program, so
 * the tokenizer comes from ts_model_options.tokenizer_dir, else from a
 * "tokenizer/" folder next to the file; without one, loading is refused
 * with a message saying where to put it. The schedule is SD's (scaled_linear,
 * leading, steps_offset 1, epsilon) unless a scheduler/scheduler_config.json
 * sits next to the file.
 */
#ifndef TS_MODEL_H
#define TS_MODEL_H

#include "ts_engine.h"
#include "ts_models.h"
#include "ts_preview.h"
#include "ts_sampler.h"
#include "ts_tokenizer.h"

#define TS_MODEL_PATH_MAX 1024

struct ts_model {
    ts_model_info info;
    ts_model_options opts;
    ts_weights *weights;
    ts_nn_scratch *scratch; /* shared by clip, unet and vae */
    ts_tokenizer *tok;
    ts_clip_config clip_cfg;
    ts_unet_config unet_cfg;
    ts_vae_config vae_cfg;
    ts_schedule_config sched_cfg;
    ts_clip *clip;
    ts_unet *unet;
    ts_vae *vae;
    int unet_factor; /* latent cells per UNet bottom cell: 2^(n_blocks-1) */
    ts_preview_map preview;
};

#endif
