/*
 * ts_image.c - the image record, format sniffing, limits, and the decode and
 * encode front doors that dispatch to the codec files.
 *
 * Invariant: nothing larger than a header is allocated before the probed
 * size has passed the caller's limits.
 */
#include "ts_image.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ts_image_codec.h"

/* ------------------------------------------------------------------ records */

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

ts_status ts_image_copy(const ts_image *src, ts_image *dst, ts_error *err)
{
    if (!src || !src->pixels || !dst)
        return ts_error_set(err, TS_ERR_ARG, "no image to copy");
    ts_status st = ts_image_alloc(dst, src->width, src->height, err);
    if (st != TS_OK)
        return st;
    memcpy(dst->pixels, src->pixels, (size_t)src->width * (size_t)src->height * 3);
    return TS_OK;
}

ts_status ts_image_raw_alloc(ts_image_raw *raw, int width, int height, int channels, ts_error *err)
{
    raw->width = 0;
    raw->height = 0;
    raw->channels = 0;
    raw->pixels = NULL;
    if (width <= 0 || height <= 0 || width > TS_IMAGE_SIDE_MAX || height > TS_IMAGE_SIDE_MAX ||
        (channels != 3 && channels != 4))
        return ts_error_set(err, TS_ERR_FORMAT, "image size %dx%d is not usable", width, height);
    raw->pixels = calloc((size_t)width * (size_t)height, (size_t)channels);
    if (!raw->pixels)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a %dx%d image", width, height);
    raw->width = width;
    raw->height = height;
    raw->channels = channels;
    return TS_OK;
}

void ts_image_raw_free(ts_image_raw *raw)
{
    if (!raw)
        return;
    if (raw->pixels) {
        sodium_memzero(raw->pixels,
                       (size_t)raw->width * (size_t)raw->height * (size_t)raw->channels);
        free(raw->pixels);
    }
    raw->pixels = NULL;
    raw->width = raw->height = raw->channels = 0;
}

/* Where output pixel (x, y) of an upright image comes from in the stored one
 * (w x h as stored), for each EXIF orientation:
 *   1 as is            2 mirrored left-right      3 turned 180
 *   4 mirrored top-bottom                         5 transposed (x <-> y)
 *   6 stored turned 90 counter-clockwise: turn it 90 clockwise to show it
 *   7 transversed (the anti-diagonal)             8 turn 90 counter-clockwise */
static void orient_source(int o, int w, int h, int x, int y, int *sx, int *sy)
{
    switch (o) {
    case 2:
        *sx = w - 1 - x, *sy = y;
        break;
    case 3:
        *sx = w - 1 - x, *sy = h - 1 - y;
        break;
    case 4:
        *sx = x, *sy = h - 1 - y;
        break;
    case 5:
        *sx = y, *sy = x;
        break;
    case 6:
        *sx = y, *sy = h - 1 - x;
        break;
    case 7:
        *sx = w - 1 - y, *sy = h - 1 - x;
        break;
    case 8:
        *sx = w - 1 - y, *sy = x;
        break;
    default:
        *sx = x, *sy = y;
        break;
    }
}

ts_status ts_image_raw_orient(ts_image_raw *raw, int orientation, ts_error *err)
{
    if (orientation < 2 || orientation > 8)
        return TS_OK;
    int w = raw->width, h = raw->height, c = raw->channels;
    int ow = orientation >= 5 ? h : w;
    int oh = orientation >= 5 ? w : h;
    ts_image_raw out;
    ts_status st = ts_image_raw_alloc(&out, ow, oh, c, err);
    if (st != TS_OK)
        return st;
    for (int y = 0; y < oh; y++) {
        uint8_t *dst = out.pixels + (size_t)y * ow * c;
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            orient_source(orientation, w, h, x, y, &sx, &sy);
            memcpy(dst + (size_t)x * c, raw->pixels + ((size_t)sy * w + sx) * c, (size_t)c);
        }
    }
    ts_image_raw_free(raw);
    *raw = out;
    return TS_OK;
}

/* ------------------------------------------------------------------ output buffers */

int ts_image_outbuf_append(ts_image_outbuf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n)
            cap = cap > b->max / 2 ? b->max : cap * 2;
        uint8_t *grown = malloc(cap);
        if (!grown)
            return -1;
        if (b->data) {
            memcpy(grown, b->data, b->len);
            sodium_memzero(b->data, b->cap);
            free(b->data);
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ts_image_outbuf_release(ts_image_outbuf *b)
{
    if (b->data) {
        sodium_memzero(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

void ts_image_buffer_free(uint8_t *buf, size_t len)
{
    if (!buf)
        return;
    sodium_memzero(buf, len);
    free(buf);
}

/* ------------------------------------------------------------------ formats */

const char *ts_image_format_name(ts_image_format format)
{
    switch (format) {
    case TS_IMAGE_PNG:
        return "png";
    case TS_IMAGE_JPEG:
        return "jpeg";
    case TS_IMAGE_WEBP:
        return "webp";
    case TS_IMAGE_HEIC:
        return "heic";
    default:
        return "unknown";
    }
}

const char *ts_image_format_mime(ts_image_format format)
{
    switch (format) {
    case TS_IMAGE_PNG:
        return "image/png";
    case TS_IMAGE_JPEG:
        return "image/jpeg";
    case TS_IMAGE_WEBP:
        return "image/webp";
    case TS_IMAGE_HEIC:
        return "image/heic";
    default:
        return "application/octet-stream";
    }
}

ts_image_format ts_image_format_from_name(const char *name)
{
    if (!name)
        return TS_IMAGE_UNKNOWN;
    if (!strcasecmp(name, "png"))
        return TS_IMAGE_PNG;
    if (!strcasecmp(name, "jpeg") || !strcasecmp(name, "jpg"))
        return TS_IMAGE_JPEG;
    if (!strcasecmp(name, "webp"))
        return TS_IMAGE_WEBP;
    return TS_IMAGE_UNKNOWN;
}

/* The name as people write it, for messages. */
static const char *format_title(ts_image_format format)
{
    switch (format) {
    case TS_IMAGE_PNG:
        return "PNG";
    case TS_IMAGE_JPEG:
        return "JPEG";
    case TS_IMAGE_WEBP:
        return "WebP";
    case TS_IMAGE_HEIC:
        return "HEIC";
    default:
        return "image";
    }
}

/* The ISO base media file brands that mean HEVC-coded HEIF. AVIF and other
 * brands are not HEIC even though they share the container. */
static int is_heic_brand(const uint8_t *b)
{
    static const char *const brands[] = {"heic", "heix", "heim", "heis", "hevc", "hevx"};
    for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++)
        if (!memcmp(b, brands[i], 4))
            return 1;
    return 0;
}

static int is_heic(const uint8_t *d, size_t len)
{
    if (len < 16 || memcmp(d + 4, "ftyp", 4) != 0)
        return 0;
    size_t box = (size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3];
    if (box < 16 || box > len)
        return 0;
    if (is_heic_brand(d + 8))
        return 1;
    if (memcmp(d + 8, "mif1", 4) != 0 && memcmp(d + 8, "msf1", 4) != 0)
        return 0;
    for (size_t off = 16; off + 4 <= box; off += 4)
        if (is_heic_brand(d + off))
            return 1;
    return 0;
}

ts_image_format ts_image_sniff(const uint8_t *d, size_t len)
{
    if (!d)
        return TS_IMAGE_UNKNOWN;
    if (len >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
        return TS_IMAGE_PNG;
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return TS_IMAGE_JPEG;
    if (len >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
        return TS_IMAGE_WEBP;
    if (is_heic(d, len))
        return TS_IMAGE_HEIC;
    return TS_IMAGE_UNKNOWN;
}

static int starts_with_ci(const uint8_t *d, size_t len, const char *s)
{
    size_t n = strlen(s);
    if (len < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower(d[i]) != s[i])
            return 0;
    return 1;
}

/* Names what an unsupported file looks like, for a helpful 415 message. */
static const char *describe_unknown(const uint8_t *d, size_t len)
{
    if (len >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6)))
        return "GIF";
    if (len >= 2 && !memcmp(d, "BM", 2))
        return "BMP";
    if (len >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        return "TIFF";
    if (len >= 5 && !memcmp(d, "%PDF-", 5))
        return "PDF";
    if (len >= 12 && !memcmp(d + 4, "ftyp", 4))
        return (!memcmp(d + 8, "avif", 4) || !memcmp(d + 8, "avis", 4)) ? "AVIF"
                                                                        : "another ISO media file";
    if (len >= 2 && d[0] == 0xff && d[1] == 0x0a)
        return "JPEG XL";
    if (len >= 4 && !memcmp(d, "8BPS", 4))
        return "Photoshop";
    if (len >= 4 && !memcmp(d, "PK\3\4", 4))
        return "a ZIP archive";
    /* Text formats: skip a UTF-8 byte order mark and leading white space. */
    size_t i = 0;
    if (len >= 3 && d[0] == 0xef && d[1] == 0xbb && d[2] == 0xbf)
        i = 3;
    while (i < len && i < 4096 && isspace(d[i]))
        i++;
    const uint8_t *t = d + i;
    size_t tl = len - i;
    if (starts_with_ci(t, tl, "<svg") ||
        (starts_with_ci(t, tl, "<?xml") && memmem(t, tl < 4096 ? tl : 4096, "<svg", 4)))
        return "SVG";
    if (starts_with_ci(t, tl, "<!doctype html") || starts_with_ci(t, tl, "<html") ||
        starts_with_ci(t, tl, "<head") || starts_with_ci(t, tl, "<body") ||
        starts_with_ci(t, tl, "<script") || starts_with_ci(t, tl, "<!--"))
        return "HTML";
    if (starts_with_ci(t, tl, "<?xml"))
        return "XML";
    if (starts_with_ci(t, tl, "{") || starts_with_ci(t, tl, "["))
        return "JSON or other text";
    return "something else";
}

/* ------------------------------------------------------------------ limits */

ts_image_limits ts_image_limits_default(void)
{
    ts_image_limits l = {
        .max_bytes = TS_IMAGE_DEFAULT_MAX_BYTES,
        .max_width = TS_IMAGE_DEFAULT_MAX_SIDE,
        .max_height = TS_IMAGE_DEFAULT_MAX_SIDE,
        .max_pixels = TS_IMAGE_DEFAULT_MAX_PIXELS,
    };
    return l;
}

/* The limits in force: the caller's, with each zero field taking its
 * default (so a zero-initialised ts_image_limits means "the defaults"). */
static ts_image_limits effective_limits(const ts_image_limits *limits)
{
    ts_image_limits l = ts_image_limits_default();
    if (limits) {
        if (limits->max_bytes)
            l.max_bytes = limits->max_bytes;
        if (limits->max_width > 0)
            l.max_width = limits->max_width;
        if (limits->max_height > 0)
            l.max_height = limits->max_height;
        if (limits->max_pixels)
            l.max_pixels = limits->max_pixels;
    }
    return l;
}

static int max_side(const ts_image_limits *l)
{
    int m = l->max_width > l->max_height ? l->max_width : l->max_height;
    return m > TS_IMAGE_SIDE_MAX ? TS_IMAGE_SIDE_MAX : m;
}

/* ------------------------------------------------------------------ probe and decode */

ts_status ts_image_probe(const uint8_t *data, size_t len, const ts_image_limits *limits,
                         ts_image_info *info, ts_error *err)
{
    ts_image_limits eff = effective_limits(limits);
    const ts_image_limits *l = &eff;
    ts_image_info tmp;
    ts_image_info *in = info ? info : &tmp;
    memset(in, 0, sizeof *in);
    in->orientation = 1;
    if (!data && len)
        return ts_error_set(err, TS_ERR_ARG, "no image data");
    if (len > l->max_bytes)
        return ts_error_set(err, TS_ERR_LIMIT, "image file is %zu bytes; the limit is %zu bytes",
                            len, l->max_bytes);

    if (len == 0)
        return ts_error_set(err, TS_ERR_FORMAT, "the image file is empty (0 bytes)");

    ts_status st;
    in->format = ts_image_sniff(data, len);
    switch (in->format) {
    case TS_IMAGE_PNG:
        st = ts_image_png_probe(data, len, in, err);
        break;
    case TS_IMAGE_JPEG:
        st = ts_image_jpeg_probe(data, len, in, err);
        break;
    case TS_IMAGE_WEBP:
        st = ts_image_webp_probe(data, len, in, err);
        break;
    case TS_IMAGE_HEIC:
        st = ts_image_heic_probe(data, len, max_side(l), in, err);
        break;
    default:
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "this is not a PNG, JPEG, WebP or HEIC image (looks like %s)",
                            describe_unknown(data, len));
    }
    if (st != TS_OK)
        return st;
    if (in->width <= 0 || in->height <= 0)
        return ts_error_set(err, TS_ERR_FORMAT, "%s declares an empty image (%dx%d pixels)",
                            format_title(in->format), in->width, in->height);
    if (in->orientation < 1 || in->orientation > 8)
        in->orientation = 1;
    if (in->orientation >= 5) {
        int t = in->width;
        in->width = in->height;
        in->height = t;
    }

    uint64_t px = (uint64_t)in->width * (uint64_t)in->height;
    if (px > l->max_pixels)
        return ts_error_set(err, TS_ERR_LIMIT, "image is %dx%d pixels; the limit is %g megapixels",
                            in->width, in->height, (double)l->max_pixels / 1e6);
    if (in->width > l->max_width || in->height > l->max_height || in->width > TS_IMAGE_SIDE_MAX ||
        in->height > TS_IMAGE_SIDE_MAX)
        return ts_error_set(err, TS_ERR_LIMIT, "image is %dx%d pixels; the limit is %dx%d",
                            in->width, in->height,
                            l->max_width < TS_IMAGE_SIDE_MAX ? l->max_width : TS_IMAGE_SIDE_MAX,
                            l->max_height < TS_IMAGE_SIDE_MAX ? l->max_height : TS_IMAGE_SIDE_MAX);
    return TS_OK;
}

/* Decodes to a raw RGB or RGBA buffer, upright. */
static ts_status decode_raw(const uint8_t *data, size_t len, const ts_image_limits *limits,
                            ts_image_raw *raw, ts_image_info *info, ts_error *err)
{
    ts_image_limits eff = effective_limits(limits);
    const ts_image_limits *l = &eff;
    ts_status st = ts_image_probe(data, len, l, info, err);
    if (st != TS_OK)
        return st;

    /* The codecs want the size as stored. */
    ts_image_info stored = *info;
    if (stored.orientation >= 5) {
        stored.width = info->height;
        stored.height = info->width;
    }
    switch (info->format) {
    case TS_IMAGE_PNG:
        st = ts_image_png_decode(data, len, &stored, raw, err);
        break;
    case TS_IMAGE_JPEG:
        st = ts_image_jpeg_decode(data, len, &stored, raw, err);
        break;
    case TS_IMAGE_WEBP:
        st = ts_image_webp_decode(data, len, &stored, raw, err);
        break;
    case TS_IMAGE_HEIC:
        st = ts_image_heic_decode(data, len, max_side(l), &stored, raw, err);
        break;
    default:
        st = ts_error_set(err, TS_ERR_INTERNAL, "probe accepted an unknown format");
        break;
    }
    if (st != TS_OK)
        return st;
    if (raw->width != stored.width || raw->height != stored.height) {
        ts_image_raw_free(raw);
        return ts_error_set(err, TS_ERR_FORMAT, "%s decoded to a size its header did not declare",
                            format_title(info->format));
    }
    st = ts_image_raw_orient(raw, info->orientation, err);
    if (st != TS_OK)
        ts_image_raw_free(raw);
    return st;
}

/* The opening of both public decoders: dst (named `what` in the error)
 * must exist and is emptied, then the file is decoded to raw samples;
 * info may be NULL. */
static ts_status decode_begin(const uint8_t *data, size_t len, const ts_image_limits *limits,
                              ts_image *dst, const char *what, ts_image_raw *raw,
                              ts_image_info *info, ts_error *err)
{
    if (!dst)
        return ts_error_set(err, TS_ERR_ARG, "no %s to decode into", what);
    dst->width = dst->height = 0;
    dst->pixels = NULL;
    ts_image_info tmp;
    return decode_raw(data, len, limits, raw, info ? info : &tmp, err);
}

ts_status ts_image_decode(const uint8_t *data, size_t len, const ts_image_limits *limits,
                          ts_image *img, ts_image_info *info, ts_error *err)
{
    ts_image_raw raw = {0};
    ts_status st = decode_begin(data, len, limits, img, "image", &raw, info, err);
    if (st != TS_OK)
        return st;

    if (raw.channels == 3) {
        img->width = raw.width;
        img->height = raw.height;
        img->pixels = raw.pixels; /* same layout: hand the buffer over */
        return TS_OK;
    }
    st = ts_image_alloc(img, raw.width, raw.height, err);
    if (st != TS_OK)
        goto out;
    /* Straight alpha over white: out = (c * a + 255 * (255 - a)) / 255, rounded. */
    size_t n = (size_t)raw.width * raw.height;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = raw.pixels + i * 4;
        unsigned a = s[3];
        for (int k = 0; k < 3; k++)
            img->pixels[i * 3 + k] = (uint8_t)((s[k] * a + 255u * (255u - a) + 127u) / 255u);
    }
out:
    ts_image_raw_free(&raw);
    return st;
}

ts_status ts_image_decode_mask(const uint8_t *data, size_t len, const ts_image_limits *limits,
                               ts_image *mask, ts_image_info *info, ts_error *err)
{
    ts_image_raw raw = {0};
    ts_status st = decode_begin(data, len, limits, mask, "mask", &raw, info, err);
    if (st != TS_OK)
        return st;
    st = ts_image_alloc(mask, raw.width, raw.height, err);
    if (st != TS_OK)
        goto out;

    size_t n = (size_t)raw.width * raw.height;
    int c = raw.channels;
    int use_alpha = 0;
    if (c == 4)
        for (size_t i = 0; i < n && !use_alpha; i++)
            use_alpha = raw.pixels[i * 4 + 3] != 255;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = raw.pixels + i * c;
        /* BT.601 luma, rounded; exact for grey (299 + 587 + 114 = 1000). */
        uint8_t v = use_alpha ? (uint8_t)(255 - s[3])
                              : (uint8_t)((299u * s[0] + 587u * s[1] + 114u * s[2] + 500u) / 1000u);
        mask->pixels[i * 3 + 0] = mask->pixels[i * 3 + 1] = mask->pixels[i * 3 + 2] = v;
    }
out:
    ts_image_raw_free(&raw);
    return st;
}

ts_status ts_image_load_file(const char *path, const ts_image_limits *limits, ts_image *img,
                             ts_image_info *info, ts_error *err)
{
    ts_image_limits eff = effective_limits(limits);
    const ts_image_limits *l = &eff;
    if (!path)
        return ts_error_set(err, TS_ERR_ARG, "no image path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_error_set(err, errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                            "cannot open image '%s': %s", path, strerror(errno));
    ts_status st;
    uint8_t *buf = NULL;
    size_t size = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = ts_error_set(err, TS_ERR_IO, "'%s' is not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size > l->max_bytes) {
        st =
            ts_error_set(err, TS_ERR_LIMIT, "image file '%s' is %lld bytes; the limit is %zu bytes",
                         path, (long long)sb.st_size, l->max_bytes);
        goto out;
    }
    size = (size_t)sb.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory reading '%s'", path);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = ts_error_set(err, TS_ERR_IO, "cannot read image '%s'", path);
            goto out;
        }
        got += (size_t)r;
    }
    st = ts_image_decode(buf, size, l, img, info, err);
    if (st != TS_OK)
        ts_error_wrap(err, "%s", path);
out:
    ts_image_buffer_free(buf, size);
    close(fd);
    return st;
}

/* ------------------------------------------------------------------ encode */

static ts_status check_meta(const ts_image_meta *meta, ts_error *err)
{
    if (!meta || meta->count == 0)
        return TS_OK;
    if (!meta->entries || meta->count > TS_IMAGE_META_COUNT_MAX)
        return ts_error_set(err, TS_ERR_ARG, "at most %d metadata entries can be embedded",
                            TS_IMAGE_META_COUNT_MAX);
    for (size_t i = 0; i < meta->count; i++) {
        const char *k = meta->entries[i].key, *v = meta->entries[i].value;
        size_t kl = k ? strlen(k) : 0;
        if (kl < 1 || kl > 79 || !v)
            return ts_error_set(err, TS_ERR_ARG, "metadata key must be 1 to 79 characters");
        for (size_t j = 0; j < kl; j++)
            if (k[j] < 0x20 || k[j] > 0x7e || (j == 0 && k[j] == ' '))
                return ts_error_set(err, TS_ERR_ARG, "metadata key must be printable ASCII");
        if (strlen(v) > TS_IMAGE_META_VALUE_MAX)
            return ts_error_set(err, TS_ERR_ARG, "metadata value is longer than %d bytes",
                                TS_IMAGE_META_VALUE_MAX);
    }
    return TS_OK;
}

ts_status ts_image_encode(const ts_image *img, ts_image_format format, int quality,
                          const ts_image_meta *meta, uint8_t **out, size_t *out_len, ts_error *err)
{
    if (!out || !out_len)
        return ts_error_set(err, TS_ERR_ARG, "no place for the encoded image");
    *out = NULL;
    *out_len = 0;
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 ||
        img->width > TS_IMAGE_SIDE_MAX || img->height > TS_IMAGE_SIDE_MAX)
        return ts_error_set(err, TS_ERR_ARG, "no image to encode");
    if (quality == 0)
        quality = 90;
    if (quality < 1 || quality > TS_IMAGE_QUALITY_LOSSLESS)
        return ts_error_set(err, TS_ERR_ARG, "quality %d is not between 1 and 100", quality);
    ts_status st = check_meta(meta, err);
    if (st != TS_OK)
        return st;

    /* No honest encoding is bigger than 4 bytes a pixel plus headers. */
    ts_image_outbuf buf = {0};
    buf.max = (size_t)img->width * img->height * 4 + ((size_t)1 << 20);
    switch (format) {
    case TS_IMAGE_PNG:
        st = ts_image_png_encode(img, meta, &buf, err);
        break;
    case TS_IMAGE_JPEG:
        st = ts_image_jpeg_encode(img, quality, meta, &buf, err);
        break;
    case TS_IMAGE_WEBP:
        if (meta && meta->count)
            st = ts_error_set(err, TS_ERR_UNSUPPORTED,
                              "WebP output cannot carry text metadata; use PNG or JPEG");
        else
            st = ts_image_webp_encode(img, quality, &buf, err);
        break;
    default:
        st = ts_error_set(err, TS_ERR_UNSUPPORTED, "cannot encode %s; use PNG, JPEG or WebP",
                          format_title(format));
        break;
    }
    if (st != TS_OK) {
        ts_image_outbuf_release(&buf);
        return st;
    }
    /* Hand over a block of exactly len bytes so the caller's free size is
     * the whole allocation. */
    uint8_t *exact = malloc(buf.len ? buf.len : 1);
    if (!exact) {
        ts_image_outbuf_release(&buf);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the encoded image");
    }
    memcpy(exact, buf.data, buf.len);
    *out = exact;
    *out_len = buf.len;
    ts_image_outbuf_release(&buf);
    return TS_OK;
}

ts_status ts_image_save_file(const ts_image *img, const char *path, ts_image_format format,
                             int quality, const ts_image_meta *meta, ts_error *err)
{
    if (!path || !*path)
        return ts_error_set(err, TS_ERR_ARG, "no output path");
    uint8_t *data = NULL;
    size_t len = 0;
    ts_status st = ts_image_encode(img, format, quality, meta, &data, &len, err);
    if (st != TS_OK)
        return st;

    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        ts_image_buffer_free(data, len);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) {
        st = ts_error_set(err, TS_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            st = ts_error_set(err, TS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0 && st == TS_OK)
        st = ts_error_set(err, TS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (st == TS_OK && rename(tmp, path) != 0)
        st = ts_error_set(err, TS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (st != TS_OK)
        unlink(tmp);
out:
    free(tmp);
    ts_image_buffer_free(data, len);
    return st;
}
