/*
 * ts_image_geometry.c - resize, crop, fit, and the float tensors the engine
 * reads and writes.
 *
 * Resizing is separable: one 1-D weight table per axis, applied to rows,
 * then to columns, in float. Shrinking uses exact area coverage: output
 * pixel i of m covers source interval [i * n / m, (i + 1) * n / m), and each
 * source pixel weighs by the length of its overlap (so a 2x2 -> 1x1 shrink is
 * the plain average). Enlarging maps output centres to source coordinates
 * (i + 0.5) * n / m - 0.5 and interpolates linearly between the two nearest
 * source pixels, edges clamped.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ts_image.h"

/* The taps for one output index: source indices [first, first + count) with
 * weights w[offset .. offset + count). */
typedef struct axis_tap {
    int first;
    int count;
    size_t offset;
} axis_tap;

typedef struct axis_plan {
    axis_tap *taps; /* m entries */
    float *weights;
} axis_plan;

static void axis_plan_free(axis_plan *p)
{
    free(p->taps);
    free(p->weights);
    p->taps = NULL;
    p->weights = NULL;
}

/* Builds the taps that map n source samples to m output samples. */
static int axis_plan_make(axis_plan *p, int n, int m)
{
    p->taps = calloc((size_t)m, sizeof *p->taps);
    /* Area taps span at most ceil(n / m) + 1 pixels; linear ones 2. */
    size_t per = m < n ? (size_t)(n / m) + 2 : 2;
    p->weights = calloc((size_t)m * per, sizeof *p->weights);
    if (!p->taps || !p->weights) {
        axis_plan_free(p);
        return -1;
    }
    size_t at = 0;
    for (int i = 0; i < m; i++) {
        axis_tap *t = &p->taps[i];
        t->offset = at;
        if (m < n) {
            double scale = (double)n / m;
            double lo = i * scale, hi = (i + 1) * scale;
            int j0 = (int)floor(lo), j1 = (int)ceil(hi);
            if (j1 > n)
                j1 = n;
            t->first = j0;
            t->count = 0;
            for (int j = j0; j < j1; j++) {
                double cover = fmin(hi, j + 1.0) - fmax(lo, (double)j);
                p->weights[at + (size_t)t->count++] = (float)(cover / scale);
            }
        } else {
            double c = (i + 0.5) * n / m - 0.5;
            if (c < 0)
                c = 0;
            int j0 = (int)floor(c);
            if (j0 > n - 1)
                j0 = n - 1;
            double f = c - j0;
            t->first = j0;
            if (j0 + 1 < n && f > 0) {
                t->count = 2;
                p->weights[at] = (float)(1.0 - f);
                p->weights[at + 1] = (float)f;
            } else {
                t->count = 1;
                p->weights[at] = 1.0f;
            }
        }
        at += (size_t)t->count;
    }
    return 0;
}

static uint8_t to_u8(float v)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 255.0f)
        return 255;
    return (uint8_t)(v + 0.5f);
}

ts_status ts_image_resize(const ts_image *src, int w, int h, ts_image *dst, ts_error *err)
{
    if (!src || !src->pixels || !dst)
        return ts_error_set(err, TS_ERR_ARG, "no image to resize");
    ts_status st = ts_image_alloc(dst, w, h, err);
    if (st != TS_OK)
        return st;
    int sw = src->width, sh = src->height;
    axis_plan px = {0}, py = {0};
    float *tmp = NULL;
    size_t tmp_n = (size_t)sh * w * 3;
    if (axis_plan_make(&px, sw, w) != 0 || axis_plan_make(&py, sh, h) != 0 ||
        !(tmp = malloc(tmp_n * sizeof *tmp))) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory resizing to %dx%d", w, h);
        ts_image_free(dst);
        goto out;
    }

    /* Rows: src (sh, sw, 3) -> tmp (sh, w, 3). */
    for (int y = 0; y < sh; y++) {
        const uint8_t *row = src->pixels + (size_t)y * sw * 3;
        float *out = tmp + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            const axis_tap *t = &px.taps[x];
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < t->count; k++) {
                float wt = px.weights[t->offset + (size_t)k];
                const uint8_t *s = row + (size_t)(t->first + k) * 3;
                acc[0] += wt * s[0];
                acc[1] += wt * s[1];
                acc[2] += wt * s[2];
            }
            out[x * 3 + 0] = acc[0];
            out[x * 3 + 1] = acc[1];
            out[x * 3 + 2] = acc[2];
        }
    }
    /* Columns: tmp (sh, w, 3) -> dst (h, w, 3). */
    for (int y = 0; y < h; y++) {
        const axis_tap *t = &py.taps[y];
        uint8_t *out = dst->pixels + (size_t)y * w * 3;
        for (int x = 0; x < w * 3; x++) {
            float acc = 0;
            for (int k = 0; k < t->count; k++)
                acc += py.weights[t->offset + (size_t)k] * tmp[(size_t)(t->first + k) * w * 3 + x];
            out[x] = to_u8(acc);
        }
    }
out:
    if (tmp) {
        sodium_memzero(tmp, tmp_n * sizeof *tmp);
        free(tmp);
    }
    axis_plan_free(&px);
    axis_plan_free(&py);
    return st;
}

ts_status ts_image_crop(const ts_image *src, int x, int y, int w, int h, ts_image *dst,
                        ts_error *err)
{
    if (!src || !src->pixels || !dst)
        return ts_error_set(err, TS_ERR_ARG, "no image to crop");
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x > src->width - w || y > src->height - h)
        return ts_error_set(err, TS_ERR_ARG, "crop %dx%d at (%d, %d) is outside the %dx%d image", w,
                            h, x, y, src->width, src->height);
    ts_status st = ts_image_alloc(dst, w, h, err);
    if (st != TS_OK)
        return st;
    for (int r = 0; r < h; r++)
        memcpy(dst->pixels + (size_t)r * w * 3,
               src->pixels + ((size_t)(y + r) * src->width + x) * 3, (size_t)w * 3);
    return TS_OK;
}

ts_status ts_image_fit(const ts_image *src, int box_w, int box_h, const uint8_t pad_rgb[3],
                       ts_image *dst, int placed[4], ts_error *err)
{
    if (!src || !src->pixels || !dst || !pad_rgb)
        return ts_error_set(err, TS_ERR_ARG, "no image to fit");
    ts_status st = ts_image_alloc(dst, box_w, box_h, err);
    if (st != TS_OK)
        return st;
    /* Compare aspect ratios exactly in integers: the side that binds is the
     * one with the smaller box / source ratio. */
    int64_t lhs = (int64_t)box_w * src->height, rhs = (int64_t)box_h * src->width;
    int nw, nh;
    if (lhs <= rhs) { /* width binds */
        nw = box_w;
        nh = (int)(((int64_t)src->height * box_w * 2 + src->width) / (2 * (int64_t)src->width));
    } else {
        nh = box_h;
        nw = (int)(((int64_t)src->width * box_h * 2 + src->height) / (2 * (int64_t)src->height));
    }
    nw = nw < 1 ? 1 : nw > box_w ? box_w : nw;
    nh = nh < 1 ? 1 : nh > box_h ? box_h : nh;
    int ox = (box_w - nw) / 2, oy = (box_h - nh) / 2;

    ts_image scaled = {0};
    st = ts_image_resize(src, nw, nh, &scaled, err);
    if (st != TS_OK) {
        ts_image_free(dst);
        return st;
    }
    for (size_t i = 0; i < (size_t)box_w * box_h; i++)
        memcpy(dst->pixels + i * 3, pad_rgb, 3);
    for (int r = 0; r < nh; r++)
        memcpy(dst->pixels + ((size_t)(oy + r) * box_w + ox) * 3,
               scaled.pixels + (size_t)r * nw * 3, (size_t)nw * 3);
    ts_image_free(&scaled);
    if (placed) {
        placed[0] = ox;
        placed[1] = oy;
        placed[2] = nw;
        placed[3] = nh;
    }
    return TS_OK;
}

/* ------------------------------------------------------------------ tensors */

void ts_image_to_tensor(const ts_image *img, float *out)
{
    /* (H, W, 3) u8 -> (1, 3, H, W) f32 in [-1, 1] */
    size_t n = (size_t)img->width * img->height;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            out[(size_t)c * n + i] = img->pixels[i * 3 + (size_t)c] / 127.5f - 1.0f;
}

ts_status ts_image_from_tensor(const float *t, int w, int h, ts_image *dst, ts_error *err)
{
    if (!t || !dst)
        return ts_error_set(err, TS_ERR_ARG, "no tensor to convert");
    ts_status st = ts_image_alloc(dst, w, h, err);
    if (st != TS_OK)
        return st;
    /* (1, 3, H, W) f32 -> (H, W, 3) u8: clamp, (v + 1) * 127.5, round. */
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float v = t[(size_t)c * n + i];
            if (!(v > -1.0f)) /* also NaN */
                v = -1.0f;
            if (v > 1.0f)
                v = 1.0f;
            dst->pixels[i * 3 + (size_t)c] = (uint8_t)floorf((v + 1.0f) * 127.5f + 0.5f);
        }
    return TS_OK;
}

void ts_image_mask_to_tensor(const ts_image *mask, float *out)
{
    /* (H, W, 3) u8 -> (1, 1, H, W) f32 in [0, 1], BT.601 luma. */
    size_t n = (size_t)mask->width * mask->height;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = mask->pixels + i * 3;
        if (p[0] == p[1] && p[1] == p[2])
            out[i] = p[0] / 255.0f;
        else
            out[i] = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) / 255.0f;
    }
}
