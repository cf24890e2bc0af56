/*
 * fuzz_model_config.c - the JSON configuration files of a model folder
 * (text_encoder/, unet/, vae/ config.json), parsed and checked as the loader
 * does. A config decides every allocation size of the networks, so the
 * checks must hold for any bytes (POLICY.md P11).
 */
#include <stdint.h>

#include "ts_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_error err;
    ts_clip_config clip;
    if (ts_clip_config_parse((const char *)data, size, &clip, &err) == TS_OK)
        ts_clip_config_check(&clip, &err);
    ts_unet_config unet;
    if (ts_unet_config_parse((const char *)data, size, &unet, &err) == TS_OK)
        ts_unet_config_check(&unet, &err);
    ts_vae_config vae;
    if (ts_vae_config_parse((const char *)data, size, &vae, &err) == TS_OK)
        ts_vae_config_check(&vae, &err);
    return 0;
}
