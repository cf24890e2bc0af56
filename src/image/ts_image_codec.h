/*
 * ts_image_codec.h - internal to src/image: what each codec file gives
 * ts_image.c. Not installed, not for other modules.
 *
 * Decoding happens in two steps. A codec's probe reads only the header and
 * reports the size AS STORED (before orientation); ts_image.c checks that
 * against the limits. Only then does the codec's decode fill a ts_image_raw
 * (RGB or straight-alpha RGBA, as stored), which ts_image.c turns upright and
 * composites. Every buffer here is zeroed when released.
 */
#ifndef TS_IMAGE_CODEC_H
#define TS_IMAGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"
#include "ts_image.h"

/* Pixels as a codec delivers them: channels is 3 (RGB) or 4 (RGBA). */
typedef struct ts_image_raw {
    int width;
    int height;
    int channels;
    uint8_t *pixels; /* width * height * channels bytes, owned */
} ts_image_raw;

ts_status ts_image_raw_alloc(ts_image_raw *raw, int width, int height, int channels, ts_error *err);
void ts_image_raw_free(ts_image_raw *raw);

/* Turns raw upright for an EXIF orientation 1..8 (others are taken as 1). */
ts_status ts_image_raw_orient(ts_image_raw *raw, int orientation, ts_error *err);

/* An encoder's output: grows up to max bytes; each growth copies into a new
 * block and zeroes the old one, so no stale copy of the file is left behind. */
typedef struct ts_image_outbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
} ts_image_outbuf;

/* 0 on success, -1 if it would pass max or memory ran out. */
int ts_image_outbuf_append(ts_image_outbuf *b, const void *p, size_t n);
void ts_image_outbuf_release(ts_image_outbuf *b);

/* EXIF orientation (1..8) from an EXIF block that is either raw TIFF
 * ("II*\0" / "MM\0*") or starts with "Exif\0\0"; 1 if absent or unreadable. */
int ts_image_exif_orientation(const uint8_t *data, size_t len);

/* The probes fill format, width/height AS STORED, has_alpha, animated and
 * orientation. The decoders get the probed info and fill *raw. */
ts_status ts_image_png_probe(const uint8_t *data, size_t len, ts_image_info *info, ts_error *err);
ts_status ts_image_png_decode(const uint8_t *data, size_t len, const ts_image_info *info,
                              ts_image_raw *raw, ts_error *err);
ts_status ts_image_png_encode(const ts_image *img, const ts_image_meta *meta, ts_image_outbuf *out,
                              ts_error *err);

ts_status ts_image_jpeg_probe(const uint8_t *data, size_t len, ts_image_info *info, ts_error *err);
ts_status ts_image_jpeg_decode(const uint8_t *data, size_t len, const ts_image_info *info,
                               ts_image_raw *raw, ts_error *err);
ts_status ts_image_jpeg_encode(const ts_image *img, int quality, const ts_image_meta *meta,
                               ts_image_outbuf *out, ts_error *err);

ts_status ts_image_webp_probe(const uint8_t *data, size_t len, ts_image_info *info, ts_error *err);
ts_status ts_image_webp_decode(const uint8_t *data, size_t len, const ts_image_info *info,
                               ts_image_raw *raw, ts_error *err);
ts_status ts_image_webp_encode(const ts_image *img, int quality, ts_image_outbuf *out,
                               ts_error *err);

/* HEIC sizes are reported after libheif's rotation/mirroring, and the
 * decoded pixels already have them applied: orientation is always 1. */
ts_status ts_image_heic_probe(const uint8_t *data, size_t len, int max_side, ts_image_info *info,
                              ts_error *err);
ts_status ts_image_heic_decode(const uint8_t *data, size_t len, int max_side,
                               const ts_image_info *info, ts_image_raw *raw, ts_error *err);

#endif
