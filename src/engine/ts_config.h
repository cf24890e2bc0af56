/*
 * ts_config.h - diffusers config.json files into the config structs of
 * ts_models.h.
 *
 *     ts_unet_config uc;
 *     if (ts_unet_config_load("m/unet/config.json", &uc, err) != TS_OK) ...
 *
 * Heads, as diffusers resolves them for UNet2DConditionModel: the per-block
 * number of heads is num_attention_heads when present, else
 * attention_head_dim (a historical misnomer: SD 1.x writes 8 meaning 8
 * heads, SD 2.x writes [5, 10, 20, 20] meaning 5..20 heads of 64 channels).
 * An int applies to every block; head_dim[i] = block_out_channels[i] /
 * heads[i]. The mid block uses the last block's heads; up block i uses the
 * heads of level n-1-i (diffusers reverses the list).
 *
 * Refused with TS_ERR_UNSUPPORTED, naming the key: block types other than
 * (CrossAttn)DownBlock2D / (CrossAttn)UpBlock2D / UNetMidBlock2DCrossAttn /
 * DownEncoderBlock2D / UpDecoderBlock2D, class or addition embeddings,
 * activations other than silu, a "scale_shift" time norm, per-block
 * transformer depths that differ, more than 6 blocks. Malformed JSON or a
 * wrong type is TS_ERR_FORMAT. Files above 1 MiB are refused.
 */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stddef.h>

#include "ts_error.h"
#include "ts_models.h"

#define TS_CONFIG_FILE_MAX (1u << 20)

ts_status ts_clip_config_parse(const char *json, size_t len, ts_clip_config *cfg, ts_error *err);
ts_status ts_unet_config_parse(const char *json, size_t len, ts_unet_config *cfg, ts_error *err);
ts_status ts_vae_config_parse(const char *json, size_t len, ts_vae_config *cfg, ts_error *err);

ts_status ts_clip_config_load(const char *path, ts_clip_config *cfg, ts_error *err);
ts_status ts_unet_config_load(const char *path, ts_unet_config *cfg, ts_error *err);
ts_status ts_vae_config_load(const char *path, ts_vae_config *cfg, ts_error *err);

/* Defaults of SD 1.5 (also the starting point of the parsers). */
void ts_clip_config_default(ts_clip_config *cfg);
void ts_unet_config_default(ts_unet_config *cfg);
void ts_vae_config_default(ts_vae_config *cfg);

/* Consistency checks the networks rely on (channels divisible by groups and
 * heads, sizes positive and bounded); TS_ERR_FORMAT naming the field. */
ts_status ts_clip_config_check(const ts_clip_config *cfg, ts_error *err);
ts_status ts_unet_config_check(const ts_unet_config *cfg, ts_error *err);
ts_status ts_vae_config_check(const ts_vae_config *cfg, ts_error *err);

#endif
