/*
 * ts_image.h - pixels in memory, and the codecs that move them in and out.
 *
 * A ts_image is always 8-bit RGB, interleaved, top row first, with EXIF
 * orientation already applied and alpha already composited (see
 * ts_image_decode). Pixel buffers hold user content: they are zeroed when
 * released (POLICY.md P1/P2), so always release them with ts_image_free.
 */
#ifndef TS_IMAGE_H
#define TS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

typedef struct ts_image {
    int width;
    int height;
    uint8_t *pixels; /* width * height * 3 bytes, RGB, owned by the image */
} ts_image;

/* Allocates a zeroed width x height image. */
ts_status ts_image_alloc(ts_image *img, int width, int height, ts_error *err);

/* Zeroes and frees the pixels; leaves *img empty. Safe on an empty image. */
void ts_image_free(ts_image *img);

#endif
