/* ts_together.c - canvas and mask for the together shot (see ts_together.h). */
#include "ts_together.h"

#include <math.h>
#include <string.h>

#define KEEP_RX     0.35 /* ellipse radii as fractions of the placed photo */
#define KEEP_RY     0.425
#define FEATHER_IN  0.75 /* normalised radius where repainting starts */
#define CANVAS_GREY 127

static double smoothstep(double a, double b, double x)
{
    double t = (x - a) / (b - a);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

ts_status ts_together_compose(const ts_image *photos, int n, int width, int height,
                              ts_image *canvas, ts_image *mask, ts_error *err)
{
    if (!photos || n < 1 || n > TS_TOGETHER_MAX_PHOTOS)
        return ts_error_set(err, TS_ERR_ARG, "the together shot takes 1 to %d photos, not %d",
                            TS_TOGETHER_MAX_PHOTOS, n);
    if (width < 8 * n || height < 8 || width > TS_IMAGE_SIDE_MAX || height > TS_IMAGE_SIDE_MAX)
        return ts_error_set(err, TS_ERR_ARG, "canvas %dx%d is too small for %d photos", width,
                            height, n);
    for (int i = 0; i < n; i++)
        if (!photos[i].pixels || photos[i].width < 1 || photos[i].height < 1)
            return ts_error_set(err, TS_ERR_ARG, "photo %d is empty", i + 1);

    ts_status st = ts_image_alloc(canvas, width, height, err);
    if (st != TS_OK)
        return st;
    if ((st = ts_image_alloc(mask, width, height, err)) != TS_OK) {
        ts_image_free(canvas);
        return st;
    }
    memset(canvas->pixels, CANVAS_GREY, (size_t)width * height * 3);
    memset(mask->pixels, 255, (size_t)width * height * 3);

    static const uint8_t grey[3] = {CANVAS_GREY, CANVAS_GREY, CANVAS_GREY};
    for (int i = 0; i < n && st == TS_OK; i++) {
        int x0 = (int)((long)width * i / n), x1 = (int)((long)width * (i + 1) / n);
        ts_image slot = {0};
        int placed[4];
        st = ts_image_fit(&photos[i], x1 - x0, height, grey, &slot, placed, err);
        if (st != TS_OK)
            break;
        /* Paste the column, then carve the keep ellipse into the mask. */
        for (int y = 0; y < height; y++)
            memcpy(canvas->pixels + ((size_t)y * width + x0) * 3,
                   slot.pixels + (size_t)y * slot.width * 3, (size_t)slot.width * 3);
        double cx = x0 + placed[0] + placed[2] / 2.0, cy = placed[1] + placed[3] / 2.0;
        double rx = KEEP_RX * placed[2], ry = KEEP_RY * placed[3];
        for (int y = 0; y < height; y++)
            for (int x = x0; x < x1; x++) {
                double dx = (x + 0.5 - cx) / rx, dy = (y + 0.5 - cy) / ry;
                double d = sqrt(dx * dx + dy * dy);
                double repaint = smoothstep(FEATHER_IN, 1.0, d);
                uint8_t v = (uint8_t)lrint(255.0 * repaint);
                uint8_t *m = mask->pixels + ((size_t)y * width + x) * 3;
                if (v < m[0])
                    m[0] = m[1] = m[2] = v;
            }
        ts_image_free(&slot);
    }
    if (st != TS_OK) {
        ts_image_free(canvas);
        ts_image_free(mask);
    }
    return st;
}
