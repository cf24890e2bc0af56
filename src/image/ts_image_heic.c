/*
 * ts_image_heic.c - HEIC (HEVC in HEIF) through libheif, primary image only.
 *
 * libheif applies the file's rotation and mirroring boxes (irot, imir) while
 * decoding and reports sizes after them. Those boxes are the normative
 * orientation of a HEIF image; an EXIF orientation tag inside the file is
 * informative and is ignored here, so the turn is applied exactly once.
 * libheif's own limit on image size is set from the caller's limits.
 */
#include <string.h>

#include <libheif/heif.h>

#include "ts_image_codec.h"

static ts_status heif_failure(struct heif_error he, ts_error *err)
{
    /* libheif reports its security limits with the code of an allocation
     * failure: test the subcode first, or a hostile header (65535x65535
     * ispe, an extent far past the end) would read as our memory running out
     * (503, "try again") instead of a refused file. */
    if (he.subcode == heif_suberror_Security_limit_exceeded)
        return ts_error_set(err, TS_ERR_LIMIT, "HEIC exceeds a decoder limit: %s", he.message);
    if (he.code == heif_error_Memory_allocation_error)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory decoding a HEIC");
    if (he.subcode == heif_suberror_End_of_data)
        return ts_error_set(err, TS_ERR_FORMAT, "HEIC data ends early (truncated file)");
    if (he.code == heif_error_Unsupported_feature || he.code == heif_error_Unsupported_filetype)
        return ts_error_set(err, TS_ERR_UNSUPPORTED, "HEIC uses an unsupported feature: %s",
                            he.message);
    return ts_error_set(err, TS_ERR_FORMAT, "HEIC is corrupt: %s", he.message);
}

static ts_status open_primary(const uint8_t *data, size_t len, int max_side,
                              struct heif_context **ctx, struct heif_image_handle **handle,
                              ts_error *err)
{
    *handle = NULL;
    *ctx = heif_context_alloc();
    if (!*ctx)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the HEIC decoder");
    heif_context_set_maximum_image_size_limit(*ctx, max_side);
    heif_context_set_max_decoding_threads(*ctx, 0);
    struct heif_error he = heif_context_read_from_memory_without_copy(*ctx, data, len, NULL);
    if (he.code == heif_error_Ok)
        he = heif_context_get_primary_image_handle(*ctx, handle);
    if (he.code != heif_error_Ok) {
        ts_status st = heif_failure(he, err);
        heif_context_free(*ctx);
        *ctx = NULL;
        *handle = NULL;
        return st;
    }
    return TS_OK;
}

ts_status ts_image_heic_probe(const uint8_t *data, size_t len, int max_side, ts_image_info *info,
                              ts_error *err)
{
    struct heif_context *ctx;
    struct heif_image_handle *h;
    ts_status st = open_primary(data, len, max_side, &ctx, &h, err);
    if (st != TS_OK)
        return st;
    info->width = heif_image_handle_get_width(h);
    info->height = heif_image_handle_get_height(h);
    info->has_alpha = heif_image_handle_has_alpha_channel(h) != 0;
    info->animated = 0;
    info->orientation = 1;
    heif_image_handle_release(h);
    heif_context_free(ctx);
    return TS_OK;
}

ts_status ts_image_heic_decode(const uint8_t *data, size_t len, int max_side,
                               const ts_image_info *info, ts_image_raw *raw, ts_error *err)
{
    struct heif_context *ctx;
    struct heif_image_handle *h;
    struct heif_image *img = NULL;
    struct heif_decoding_options *opt = NULL;
    ts_status st = open_primary(data, len, max_side, &ctx, &h, err);
    if (st != TS_OK)
        return st;

    int channels = info->has_alpha ? 4 : 3;
    opt = heif_decoding_options_alloc();
    if (!opt) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the HEIC decoder");
        goto out;
    }
    opt->ignore_transformations = 0; /* rotation/mirroring applied here, once */
    opt->convert_hdr_to_8bit = 1;
    struct heif_error he = heif_decode_image(
        h, &img, heif_colorspace_RGB,
        channels == 4 ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, opt);
    if (he.code != heif_error_Ok) {
        st = heif_failure(he, err);
        goto out;
    }
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(img, heif_channel_interleaved, &stride);
    int w = heif_image_get_width(img, heif_channel_interleaved);
    int hh = heif_image_get_height(img, heif_channel_interleaved);
    if (!plane || w != info->width || hh != info->height ||
        heif_image_get_bits_per_pixel_range(img, heif_channel_interleaved) != 8 ||
        stride < w * channels) {
        st = ts_error_set(err, TS_ERR_FORMAT, "HEIC decoded to an unexpected size or depth");
        goto out;
    }
    st = ts_image_raw_alloc(raw, w, hh, channels, err);
    if (st != TS_OK)
        goto out;
    for (int y = 0; y < hh; y++)
        memcpy(raw->pixels + (size_t)y * w * channels, plane + (size_t)y * stride,
               (size_t)w * channels);
    /* We composite straight alpha; undo premultiplication if the file used it. */
    if (channels == 4 && heif_image_handle_is_premultiplied_alpha(h)) {
        for (size_t i = 0; i < (size_t)w * hh; i++) {
            uint8_t *p = raw->pixels + i * 4;
            unsigned a = p[3];
            for (int c = 0; c < 3 && a > 0; c++) {
                unsigned v = (p[c] * 255u + a / 2) / a;
                p[c] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
out:
    heif_image_release(img);
    heif_decoding_options_free(opt);
    heif_image_handle_release(h);
    heif_context_free(ctx);
    return st;
}
