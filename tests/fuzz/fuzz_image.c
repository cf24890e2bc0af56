/*
 * fuzz_image.c - the image decoders as the service calls them on an upload:
 * probe, then decode (and decode as an inpainting mask) under the service's
 * default upload limits (POLICY.md P11). Any crash, leak, overflow or
 * undefined behaviour is a finding; error returns are expected.
 */
#include <stddef.h>
#include <stdint.h>

#include "ts_image.h"
#include "ts_limits.h"

/* The limits decode_upload (ts_api_jobs.c) derives from ts_limits. */
static ts_image_limits service_limits(void)
{
    ts_limits lim;
    ts_limits_default(&lim);
    ts_image_limits il = ts_image_limits_default();
    il.max_bytes = lim.max_upload_bytes;
    il.max_pixels = (uint64_t)lim.max_pixels;
    return il;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_image_limits il = service_limits();
    ts_image_info info;
    ts_error err;

    if (ts_image_probe(data, size, &il, &info, &err) != TS_OK)
        return 0;

    ts_image img = {0};
    if (ts_image_decode(data, size, &il, &img, &info, &err) == TS_OK) {
        /* Touch every pixel so a short buffer shows up under ASan. */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++)
            sum += img.pixels[i];
        (void)sum;
        ts_image_free(&img);

        ts_image mask = {0};
        if (ts_image_decode_mask(data, size, &il, &mask, &info, &err) == TS_OK)
            ts_image_free(&mask);
    }
    return 0;
}
