/*
 * ts_image.h - pixels in memory, and the codecs that move them in and out.
 *
 * A ts_image is always 8-bit RGB, interleaved, top row first, with EXIF
 * orientation already applied and alpha already composited (see
 * ts_image_decode). Pixel buffers hold user content: they are zeroed when
 * released (POLICY.md P1/P2), so always release them with ts_image_free.
 *
 * Everything that reads bytes treats them as hostile (POLICY.md P11):
 *
 *   - the format is sniffed from magic bytes only, never from a file name
 *     or a declared content type;
 *   - width, height and byte size are checked against ts_image_limits from
 *     the header alone, before any pixel buffer is allocated;
 *   - codec errors come back as values, never as exit() or a crash.
 *
 * Usage (an upload in memory):
 *
 *     ts_image_limits lim = ts_image_limits_default();
 *     ts_image img = {0};
 *     ts_image_info info;
 *     ts_error err;
 *     ts_status st = ts_image_decode(body, body_len, &lim, &img, &info, &err);
 *     if (st != TS_OK)   // TS_ERR_FORMAT -> 400, TS_ERR_UNSUPPORTED -> 415,
 *         return st;     // TS_ERR_LIMIT -> 413; err.message says why
 *     ...
 *     uint8_t *png;
 *     size_t png_len;
 *     st = ts_image_encode(&img, TS_IMAGE_PNG, 0, NULL, &png, &png_len, &err);
 *     ...
 *     ts_image_buffer_free(png, png_len);
 *     ts_image_free(&img);
 *
 * Error mapping, for every function that reads bytes:
 *   TS_ERR_FORMAT       empty, corrupt, truncated, or lies about itself (a header
 *                       that contradicts the data, a bad checksum, too many scans)
 *   TS_ERR_UNSUPPORTED  not a PNG, JPEG, WebP or HEIC file (the message names
 *                       what it looks like: SVG, HTML, GIF, ...)
 *   TS_ERR_LIMIT        bigger than ts_image_limits allow (bytes or pixels)
 *   TS_ERR_NOMEM        an allocation failed
 *   TS_ERR_ARG          the caller passed NULL or a nonsensical size
 *
 * Threads: every function may run on many threads at once; there is no
 * global state (each call owns its codec contexts).
 *
 * Known limits (also in docs/LIMITS.md):
 *   - ICC profiles and gamma chunks are ignored: pixels are taken as sRGB.
 *   - CMYK JPEG is converted with the plain formula R = (255 - C)(255 - K) / 255
 *     (likewise G, B), not through a colour profile: colours are approximate.
 *   - 16-bit channels are scaled to 8 bits.
 *   - Animated WebP: only the first frame is decoded; APNG: the default image.
 *   - EXIF orientation is read from JPEG APP1, WebP EXIF and PNG eXIf chunks
 *     (a PNG eXIf placed after the image data is not seen).
 *   - HEIC: primary image only; its rotation and mirroring boxes are applied
 *     by libheif, and an EXIF orientation inside a HEIC file is ignored so the
 *     turn is applied exactly once.
 *   - JPEG is strict: a file that ends before its EOI marker, or with more
 *     than 256 stray bytes before a marker, is refused (browsers may show
 *     such files); 12-bit JPEG is unsupported; libjpeg may use at most
 *     512 MiB for a progressive image's coefficients.
 *   - Scratch buffers inside the codec libraries (and libpng's copy of text
 *     embedded on request) are freed by those libraries without being
 *     zeroed; our own buffers are zeroed.
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

/* ------------------------------------------------------------------ lifecycle */

/* Largest side ts_image_alloc accepts; keeps width * height * 3 far from
 * overflowing any int or size_t arithmetic. */
#define TS_IMAGE_SIDE_MAX 32768

/* Allocates a zeroed width x height image. */
ts_status ts_image_alloc(ts_image *img, int width, int height, ts_error *err);

/* Zeroes and frees the pixels; leaves *img empty. Safe on an empty image. */
void ts_image_free(ts_image *img);

/* Deep copy into *dst (which must be empty or freed). */
ts_status ts_image_copy(const ts_image *src, ts_image *dst, ts_error *err);

/* ------------------------------------------------------------------ formats */

typedef enum ts_image_format {
    TS_IMAGE_UNKNOWN = 0,
    TS_IMAGE_PNG,
    TS_IMAGE_JPEG,
    TS_IMAGE_WEBP,
    TS_IMAGE_HEIC,
} ts_image_format;

/* "png", "jpeg", "webp", "heic", or "unknown". */
const char *ts_image_format_name(ts_image_format format);

/* "image/png", "image/jpeg", "image/webp", "image/heic", or
 * "application/octet-stream". */
const char *ts_image_format_mime(ts_image_format format);

/* Parses an output format name as a user writes it ("png", "jpeg", "jpg",
 * "webp", any case); TS_IMAGE_UNKNOWN if it is none of them. For choosing an
 * OUTPUT format only: input formats are always sniffed from the bytes. */
ts_image_format ts_image_format_from_name(const char *name);

/* Sniffs the magic bytes. Returns TS_IMAGE_UNKNOWN for anything else. */
ts_image_format ts_image_sniff(const uint8_t *data, size_t len);

/* ------------------------------------------------------------------ limits */

/* A zero (or negative) field means its default below; a NULL limits
 * pointer means all defaults. */
typedef struct ts_image_limits {
    size_t max_bytes;    /* size of the encoded file                      */
    int max_width;       /* after orientation is applied, in pixels       */
    int max_height;      /* after orientation is applied, in pixels       */
    uint64_t max_pixels; /* width * height                                */
} ts_image_limits;

/* 32 MiB, 16384 x 16384, 40 megapixels. */
#define TS_IMAGE_DEFAULT_MAX_BYTES  ((size_t)32 << 20)
#define TS_IMAGE_DEFAULT_MAX_SIDE   16384
#define TS_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)40000000)

ts_image_limits ts_image_limits_default(void);

/* ------------------------------------------------------------------ probe and decode */

typedef struct ts_image_info {
    ts_image_format format;
    int width;       /* as displayed: after EXIF orientation / HEIC rotation */
    int height;      /*                                                      */
    int animated;    /* 1 for an animated WebP or PNG (APNG): only the first
                        frame (WebP) or the default image (APNG) is decoded */
    int has_alpha;   /* 1 if the file has an alpha channel or tRNS           */
    int orientation; /* EXIF orientation 1..8 that decode applies; 1 if none
                        (and always 1 for HEIC, whose turn libheif applies)  */
} ts_image_info;

/* Reads only the header of data[0..len): format from magic bytes, size,
 * alpha, animation, orientation, and checks them against limits (NULL means
 * ts_image_limits_default). Never allocates a pixel buffer. */
ts_status ts_image_probe(const uint8_t *data, size_t len, const ts_image_limits *limits,
                         ts_image_info *info, ts_error *err);

/* Probes (so the limits hold before anything big is allocated), then decodes
 * into *img (which must be empty): 8-bit RGB, upright (EXIF orientation
 * applied, all 8 values), alpha composited on white. info may be NULL.
 *
 * PNG: any colour type and bit depth, palette + tRNS, interlaced; text, ICC
 * and other ancillary chunks are skipped unread (a compressed text chunk is
 * never inflated). JPEG: grayscale, YCbCr, RGB, CMYK and Adobe-inverted CMYK,
 * baseline and progressive (at most TS_IMAGE_JPEG_MAX_SCANS scans); a file
 * that ends early is an error, never grey filler. WebP: lossy, lossless,
 * alpha, animated (first frame). HEIC: primary image. */
ts_status ts_image_decode(const uint8_t *data, size_t len, const ts_image_limits *limits,
                          ts_image *img, ts_image_info *info, ts_error *err);

/* Progressive JPEGs with more scans than this are refused as hostile. */
#define TS_IMAGE_JPEG_MAX_SCANS 256

/* Decodes a mask image for inpainting into *mask (empty on entry): an RGB
 * image with R = G = B, where 255 means "repaint" and 0 means "keep".
 * If the file has an alpha channel that is not fully opaque, the mask is
 * 255 - alpha (transparent = repaint, as the OpenAI edits API defines it);
 * otherwise it is the luma of the pixels (white = repaint). Orientation is
 * applied as in ts_image_decode. */
ts_status ts_image_decode_mask(const uint8_t *data, size_t len, const ts_image_limits *limits,
                               ts_image *mask, ts_image_info *info, ts_error *err);

/* Reads a whole file (at most limits->max_bytes, checked before reading) and
 * decodes it. TS_ERR_NOT_FOUND / TS_ERR_IO for file problems. */
ts_status ts_image_load_file(const char *path, const ts_image_limits *limits, ts_image *img,
                             ts_image_info *info, ts_error *err);

/* ------------------------------------------------------------------ encode */

/* Key/value text to embed in an encoded file, only when the caller asks.
 * PNG: one tEXt chunk per entry (iTXt if the value is not plain ASCII).
 * JPEG: one COM segment holding "key: value" lines. WebP: not supported
 * (TS_ERR_UNSUPPORTED if entries are given). Keys are 1..79 printable ASCII
 * characters; values at most TS_IMAGE_META_VALUE_MAX bytes. */
typedef struct ts_image_meta_entry {
    const char *key;
    const char *value;
} ts_image_meta_entry;

typedef struct ts_image_meta {
    const ts_image_meta_entry *entries;
    size_t count;
} ts_image_meta;

#define TS_IMAGE_META_VALUE_MAX 16384
#define TS_IMAGE_META_COUNT_MAX 16

/* quality: 1..100 for JPEG and WebP (0 = default 90); ignored for PNG.
 * TS_IMAGE_QUALITY_LOSSLESS asks WebP for lossless (JPEG takes it as 100). */
#define TS_IMAGE_QUALITY_LOSSLESS 101

/* Encodes img into a new buffer *out of *out_len bytes; release it with
 * ts_image_buffer_free. The output carries no metadata at all (no EXIF, XMP,
 * ICC, text or time chunks; JPEG keeps only the JFIF header, which says
 * "square pixels") unless meta (may be NULL) lists entries to embed.
 * TS_ERR_LIMIT if the image is too big for the format (WebP: 16383 a side). */
ts_status ts_image_encode(const ts_image *img, ts_image_format format, int quality,
                          const ts_image_meta *meta, uint8_t **out, size_t *out_len, ts_error *err);

/* Zeroes len bytes of buf, then frees it. Safe on NULL. */
void ts_image_buffer_free(uint8_t *buf, size_t len);

/* Encodes and writes to path (created 0600, replaced atomically through a
 * temporary file in the same folder). */
ts_status ts_image_save_file(const ts_image *img, const char *path, ts_image_format format,
                             int quality, const ts_image_meta *meta, ts_error *err);

/* ------------------------------------------------------------------ geometry */

/* Resamples src to w x h into *dst (empty on entry). Each axis on its own:
 * shrinking averages the covered source area exactly (box filter with
 * fractional coverage); enlarging interpolates bilinearly between pixel
 * centres (edges clamped). */
ts_status ts_image_resize(const ts_image *src, int w, int h, ts_image *dst, ts_error *err);

/* Copies the w x h rectangle at (x, y) of src into *dst; TS_ERR_ARG if the
 * rectangle is not inside src. */
ts_status ts_image_crop(const ts_image *src, int x, int y, int w, int h, ts_image *dst,
                        ts_error *err);

/* Scales src to the largest size that fits box_w x box_h keeping its aspect
 * ratio, centres it, and fills the rest with pad_rgb. If placed is not NULL
 * it receives the rectangle {x, y, w, h} the picture occupies in *dst. */
ts_status ts_image_fit(const ts_image *src, int box_w, int box_h, const uint8_t pad_rgb[3],
                       ts_image *dst, int placed[4], ts_error *err);

/* ------------------------------------------------------------------ tensors */

/* Writes img as planar float (1, 3, H, W), values v / 127.5 - 1 in [-1, 1].
 * out holds 3 * width * height floats. */
void ts_image_to_tensor(const ts_image *img, float *out);

/* Reads planar float (1, 3, h, w) into *dst (empty on entry): each value is
 * clamped to [-1, 1] (NaN counts as -1), mapped by (v + 1) * 127.5 and
 * rounded to nearest. */
ts_status ts_image_from_tensor(const float *t, int w, int h, ts_image *dst, ts_error *err);

/* Writes a mask image (see ts_image_decode_mask) as float (1, 1, H, W) in
 * [0, 1]: the luma of each pixel / 255 (for a grey mask, simply R / 255).
 * out holds width * height floats. */
void ts_image_mask_to_tensor(const ts_image *mask, float *out);

#endif
