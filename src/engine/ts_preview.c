/* ts_preview.c - latent-to-RGB previews (see ts_preview.h). */
#include "ts_preview.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ts_rng.h"

#define FIT_SIDE 16

void ts_preview_default(int channels, ts_preview_map *map)
{
    /* The SD 1.x latent-to-RGB factors popular front ends use for previews
     * (rows: latent channels, columns: R G B). */
    static const float sd[4][3] = {
        {0.3512f, 0.2297f, 0.3227f},
        {0.3250f, 0.4974f, 0.2350f},
        {-0.2829f, 0.1762f, 0.2721f},
        {-0.2120f, -0.2616f, -0.7177f},
    };
    memset(map, 0, sizeof(*map));
    map->channels = channels > TS_PREVIEW_MAX_CHANNELS ? TS_PREVIEW_MAX_CHANNELS : channels;
    for (int c = 0; c < map->channels; c++)
        for (int k = 0; k < 3; k++)
            map->a[k][c] = channels == 4 ? sd[c][k] : 1.0f / (float)map->channels;
}

/* Solves the (n x n) system m x = r in place by Gaussian elimination with
 * partial pivoting; returns -1 when it is (nearly) singular. */
static int solve(double *m, double *r, int n)
{
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int i = col + 1; i < n; i++)
            if (fabs(m[i * n + col]) > fabs(m[piv * n + col]))
                piv = i;
        if (fabs(m[piv * n + col]) < 1e-9)
            return -1;
        for (int j = 0; j < n; j++) {
            double t = m[col * n + j];
            m[col * n + j] = m[piv * n + j];
            m[piv * n + j] = t;
        }
        double t = r[col];
        r[col] = r[piv];
        r[piv] = t;
        for (int i = 0; i < n; i++) {
            if (i == col)
                continue;
            double f = m[i * n + col] / m[col * n + col];
            for (int j = col; j < n; j++)
                m[i * n + j] -= f * m[col * n + j];
            r[i] -= f * r[col];
        }
    }
    for (int i = 0; i < n; i++)
        r[i] /= m[i * n + i];
    return 0;
}

ts_status ts_preview_fit(ts_vae *vae, const ts_vae_config *cfg, ts_preview_map *map, ts_error *err)
{
    int C = cfg->latent_channels;
    ts_preview_default(C, map);
    /* The SD 1.x/2.x autoencoder (4 channels, 512 wide, scale 0.18215): the
     * fixed factors were made for it, and a fit would cost a decode. */
    if (C == 4 && cfg->n_blocks > 0 && cfg->block_out_channels[cfg->n_blocks - 1] == 512 &&
        fabsf(cfg->scaling_factor - 0.18215f) < 1e-4f)
        return TS_OK;
    if (C > TS_PREVIEW_MAX_CHANNELS)
        return ts_error_set(err, TS_ERR_UNSUPPORTED, "more than %d latent channels",
                            TS_PREVIEW_MAX_CHANNELS);
    int f = 1 << (cfg->n_blocks - 1);
    int H = FIT_SIDE * f, n = FIT_SIDE * FIT_SIDE;
    float *z = malloc((size_t)C * n * sizeof(float));
    float *zs = malloc((size_t)C * n * sizeof(float));
    float *img = malloc((size_t)3 * H * H * sizeof(float));
    ts_status st = TS_OK;
    if (!z || !zs || !img) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory fitting the preview map");
        goto done;
    }

    /* z: (C, 16, 16) standard normal in model space; the decoder sees z / s. */
    ts_rng rng;
    ts_rng_seed(&rng, 0x7072657669657721ull, 0);
    ts_rng_randn(&rng, z, (size_t)C * n);
    for (int i = 0; i < C * n; i++)
        zs[i] = z[i] / cfg->scaling_factor;
    if ((st = ts_vae_decode(vae, zs, FIT_SIDE, FIT_SIDE, img, err)) != TS_OK)
        goto done;

    /* Normal equations per colour: (X^T X) a = X^T y, X = [z_0..z_{C-1}, 1]. */
    int P = C + 1;
    double xtx[(TS_PREVIEW_MAX_CHANNELS + 1) * (TS_PREVIEW_MAX_CHANNELS + 1)];
    double xty[3][TS_PREVIEW_MAX_CHANNELS + 1];
    memset(xtx, 0, sizeof xtx);
    memset(xty, 0, sizeof xty);
    for (int y = 0; y < FIT_SIDE; y++)
        for (int x = 0; x < FIT_SIDE; x++) {
            double feat[TS_PREVIEW_MAX_CHANNELS + 1], rgb[3] = {0, 0, 0};
            for (int c = 0; c < C; c++)
                feat[c] = z[(size_t)c * n + y * FIT_SIDE + x];
            feat[C] = 1.0;
            for (int k = 0; k < 3; k++) {
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++)
                        rgb[k] += img[(size_t)k * H * H + (size_t)(y * f + dy) * H + x * f + dx];
                rgb[k] /= (double)(f * f);
            }
            for (int i = 0; i < P; i++) {
                for (int j = 0; j < P; j++)
                    xtx[i * P + j] += feat[i] * feat[j];
                for (int k = 0; k < 3; k++)
                    xty[k][i] += feat[i] * rgb[k];
            }
        }
    ts_preview_map fit;
    memset(&fit, 0, sizeof fit);
    fit.channels = C;
    fit.fitted = 1;
    for (int k = 0; k < 3; k++) {
        double m[(TS_PREVIEW_MAX_CHANNELS + 1) * (TS_PREVIEW_MAX_CHANNELS + 1)];
        memcpy(m, xtx, sizeof m);
        if (solve(m, xty[k], P) != 0) {
            st = ts_error_set(err, TS_ERR_INTERNAL, "the preview fit is degenerate");
            goto done;
        }
        for (int c = 0; c < C; c++)
            fit.a[k][c] = (float)xty[k][c];
        fit.b[k] = (float)xty[k][C];
    }
    *map = fit;

done:
    free(z);
    free(zs);
    free(img);
    return st;
}

ts_status ts_preview_render(const ts_preview_map *map, const float *latent, int h, int w,
                            ts_image *out, ts_error *err)
{
    ts_status st = ts_image_alloc(out, w, h, err);
    if (st != TS_OK)
        return st;
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            float v = map->b[k];
            for (int c = 0; c < map->channels; c++)
                v += map->a[k][c] * latent[(size_t)c * n + i];
            v = (v + 1.0f) * 127.5f;
            if (!(v >= 0.0f)) /* also NaN */
                v = 0.0f;
            if (v > 255.0f)
                v = 255.0f;
            out->pixels[i * 3 + k] = (uint8_t)lrintf(v);
        }
    return TS_OK;
}
