/* ts_image.c - the image record: allocation, copies, and release. */
#include "ts_image.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

ts_status ts_image_alloc(ts_image *img, int width, int height, ts_error *err)
{
    if (!img)
        return ts_error_set(err, TS_ERR_ARG, "no image to allocate into");
    img->width = 0;
    img->height = 0;
    img->pixels = NULL;
    if (width <= 0 || height <= 0 || width > TS_IMAGE_SIDE_MAX || height > TS_IMAGE_SIDE_MAX)
        return ts_error_set(err, TS_ERR_ARG, "image size %dx%d is not between 1 and %d a side",
                            width, height, TS_IMAGE_SIDE_MAX);
    img->pixels = calloc((size_t)width * (size_t)height, 3);
    if (!img->pixels)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a %dx%d image", width, height);
    img->width = width;
    img->height = height;
    return TS_OK;
}

void ts_image_free(ts_image *img)
{
    if (!img)
        return;
    if (img->pixels) {
        sodium_memzero(img->pixels, (size_t)img->width * (size_t)img->height * 3);
        free(img->pixels);
    }
    img->pixels = NULL;
    img->width = 0;
    img->height = 0;
}
