/*
 * ts_preview.h - cheap RGB previews of a latent while it is being denoised.
 *
 * A preview is one pixel per latent cell: rgb = A * latent + b, a fixed
 * linear map. The SD 1.x/2.x autoencoder gets the well-known SD latent-to-RGB
 * factors; any other VAE (the built-in model's) gets a map fitted at load by
 * least squares on one decode of a random latent (each latent cell against
 * the mean colour of the pixels it decodes to), falling back to the fixed
 * factors if the fit is degenerate. The colours are approximate by design.
 *
 *     ts_preview_map map;
 *     ts_preview_fit(vae, &vae_cfg, &map, &err);
 *     ts_image small;
 *     ts_preview_render(&map, latent, channels, h, w, &small, &err);
 */
#ifndef TS_PREVIEW_H
#define TS_PREVIEW_H

#include "ts_error.h"
#include "ts_image.h"
#include "ts_models.h"

#define TS_PREVIEW_MAX_CHANNELS 16

typedef struct ts_preview_map {
    int channels;
    float a[3][TS_PREVIEW_MAX_CHANNELS]; /* rgb[k] = sum_c a[k][c] * z[c] + b[k], in [-1, 1] */
    float b[3];
    int fitted; /* 1: fitted from the VAE, 0: the fixed SD factors */
} ts_preview_map;

/* The fixed SD 1.x factors (4 channels; other counts get a grey map). */
void ts_preview_default(int channels, ts_preview_map *map);

/* The fixed factors for the SD autoencoder, else a fit from one decode of a
 * random 16x16 latent. On failure map holds the defaults and the status says
 * why (callers may ignore it). */
ts_status ts_preview_fit(ts_vae *vae, const ts_vae_config *cfg, ts_preview_map *map, ts_error *err);

/* latent: (channels, h, w) in the model's space (as the UNet sees it, i.e.
 * already multiplied by scaling_factor). *out must be empty. */
ts_status ts_preview_render(const ts_preview_map *map, const float *latent, int h, int w,
                            ts_image *out, ts_error *err);

#endif
