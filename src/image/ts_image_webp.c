/*
 * ts_image_webp.c - WebP through libwebp and its demuxer.
 *
 * The demuxer validates the RIFF container and yields the canvas size,
 * the feature flags and the EXIF chunk; still images decode straight into
 * our buffer, animated ones through WebPAnimDecoder, which composes frame 1
 * on its canvas as the format defines.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>

#include "ts_image_codec.h"

ts_status ts_image_webp_probe(const uint8_t *data, size_t len, ts_image_info *info, ts_error *err)
{
    WebPData wd = {data, len};
    WebPDemuxState state;
    WebPDemuxer *dmx = WebPDemuxPartial(&wd, &state);
    if (!dmx || state == WEBP_DEMUX_PARSE_ERROR) {
        WebPDemuxDelete(dmx);
        return ts_error_set(err, TS_ERR_FORMAT, "WebP is corrupt: its container is malformed");
    }
    if (state != WEBP_DEMUX_DONE) {
        WebPDemuxDelete(dmx);
        return ts_error_set(err, TS_ERR_FORMAT, "WebP data ends early (truncated file)");
    }
    uint32_t flags = WebPDemuxGetI(dmx, WEBP_FF_FORMAT_FLAGS);
    uint32_t w = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH);
    uint32_t h = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
    info->width = (int)w; /* 24-bit fields in the container: they fit */
    info->height = (int)h;
    info->animated = (flags & ANIMATION_FLAG) != 0;
    info->has_alpha = (flags & ALPHA_FLAG) != 0;
    info->orientation = 1;

    /* A simple-format file has no flags; its own header says whether the
     * bitstream carries alpha (lossless). */
    WebPBitstreamFeatures feat;
    if (!info->animated && WebPGetFeatures(data, len, &feat) == VP8_STATUS_OK && feat.has_alpha)
        info->has_alpha = 1;

    WebPChunkIterator it;
    if ((flags & EXIF_FLAG) && WebPDemuxGetChunk(dmx, "EXIF", 1, &it)) {
        info->orientation = ts_image_exif_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(dmx);
    return TS_OK;
}

static ts_status decode_first_frame(const uint8_t *data, size_t len, const ts_image_info *info,
                                    ts_image_raw *raw, ts_error *err)
{
    WebPData wd = {data, len};
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt))
        return ts_error_set(err, TS_ERR_INTERNAL, "libwebp version mismatch");
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opt);
    if (!dec)
        return ts_error_set(err, TS_ERR_FORMAT, "animated WebP is corrupt");
    ts_status st = TS_OK;
    WebPAnimInfo ai;
    uint8_t *canvas = NULL;
    int ts_ms = 0;
    if (!WebPAnimDecoderGetInfo(dec, &ai) || (int)ai.canvas_width != info->width ||
        (int)ai.canvas_height != info->height) {
        st = ts_error_set(err, TS_ERR_FORMAT, "animated WebP is corrupt: canvas size mismatch");
        goto out;
    }
    if (!WebPAnimDecoderGetNext(dec, &canvas, &ts_ms) || !canvas) {
        st = ts_error_set(err, TS_ERR_FORMAT, "animated WebP is corrupt: frame 1 does not decode");
        goto out;
    }
    st = ts_image_raw_alloc(raw, info->width, info->height, 4, err);
    if (st != TS_OK)
        goto out;
    memcpy(raw->pixels, canvas, (size_t)info->width * info->height * 4);
    /* The decoder's canvas is ours to clear before it goes back. */
    sodium_memzero(canvas, (size_t)info->width * info->height * 4);
out:
    WebPAnimDecoderDelete(dec);
    return st;
}

ts_status ts_image_webp_decode(const uint8_t *data, size_t len, const ts_image_info *info,
                               ts_image_raw *raw, ts_error *err)
{
    if (info->animated)
        return decode_first_frame(data, len, info, raw, err);

    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg))
        return ts_error_set(err, TS_ERR_INTERNAL, "libwebp version mismatch");
    VP8StatusCode vs = WebPGetFeatures(data, len, &cfg.input);
    if (vs == VP8_STATUS_OK && (cfg.input.width != info->width || cfg.input.height != info->height))
        return ts_error_set(err, TS_ERR_FORMAT,
                            "WebP is corrupt: its bitstream size differs from its canvas size");
    int channels = info->has_alpha ? 4 : 3;
    ts_status st = ts_image_raw_alloc(raw, info->width, info->height, channels, err);
    if (st != TS_OK)
        return st;
    cfg.output.colorspace = channels == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = raw->pixels;
    cfg.output.u.RGBA.stride = info->width * channels;
    cfg.output.u.RGBA.size = (size_t)info->width * info->height * channels;
    cfg.options.use_threads = 0;
    if (vs == VP8_STATUS_OK)
        vs = WebPDecode(data, len, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (vs == VP8_STATUS_OK)
        return TS_OK;
    ts_image_raw_free(raw);
    if (vs == VP8_STATUS_NOT_ENOUGH_DATA)
        return ts_error_set(err, TS_ERR_FORMAT, "WebP data ends early (truncated file)");
    if (vs == VP8_STATUS_UNSUPPORTED_FEATURE)
        return ts_error_set(err, TS_ERR_UNSUPPORTED, "WebP uses a feature libwebp cannot decode");
    if (vs == VP8_STATUS_OUT_OF_MEMORY)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory decoding a WebP");
    return ts_error_set(err, TS_ERR_FORMAT, "WebP is corrupt (libwebp status %d)", (int)vs);
}

/* ------------------------------------------------------------------ encode */

static int webp_writer(const uint8_t *data, size_t size, const WebPPicture *pic)
{
    return ts_image_outbuf_append(pic->custom_ptr, data, size) == 0;
}

ts_status ts_image_webp_encode(const ts_image *img, int quality, ts_image_outbuf *out,
                               ts_error *err)
{
    if (img->width > WEBP_MAX_DIMENSION || img->height > WEBP_MAX_DIMENSION)
        return ts_error_set(err, TS_ERR_LIMIT,
                            "WebP cannot hold %dx%d pixels; the limit is %d a side", img->width,
                            img->height, WEBP_MAX_DIMENSION);
    WebPConfig cfg;
    WebPPicture pic;
    if (!WebPConfigInit(&cfg) || !WebPPictureInit(&pic))
        return ts_error_set(err, TS_ERR_INTERNAL, "libwebp version mismatch");
    int lossless = quality == TS_IMAGE_QUALITY_LOSSLESS;
    cfg.lossless = lossless;
    cfg.quality = lossless ? 75.0f : (float)quality;
    cfg.method = 4;
    cfg.exact = lossless;
    pic.use_argb = lossless;
    pic.width = img->width;
    pic.height = img->height;
    pic.writer = webp_writer;
    pic.custom_ptr = out;
    ts_status st = TS_OK;
    if (!WebPValidateConfig(&cfg)) {
        st = ts_error_set(err, TS_ERR_INTERNAL, "WebP encoder settings are invalid");
    } else if (!WebPPictureImportRGB(&pic, img->pixels, img->width * 3)) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the WebP encoder");
    } else if (!WebPEncode(&cfg, &pic)) {
        st = pic.error_code == VP8_ENC_ERROR_BAD_WRITE
                 ? ts_error_set(err, TS_ERR_LIMIT, "encoded WebP is unexpectedly large")
                 : ts_error_set(err, TS_ERR_INTERNAL, "WebP encoder failed (code %d)",
                                (int)pic.error_code);
    }
    WebPPictureFree(&pic);
    return st;
}
