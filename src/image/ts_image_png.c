/*
 * ts_image_png.c - PNG through libpng, with hostile files in mind.
 *
 * Probe: walks the chunk list up to the first IDAT by hand (IHDR with its
 * CRC, tRNS, acTL, eXIf) without inflating anything.
 * Decode: libpng with every ancillary chunk except tRNS ignored unread, so a
 * compressed text chunk (zTXt, iTXt) or an ICC profile is never inflated; a
 * cap on chunk allocations; errors come back through longjmp; png_read_end is
 * never called, so compressed data past the last row is never inflated
 * either (an IDAT deflate bomb costs no more than the declared image).
 */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#include "ts_image_codec.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ts_status ts_image_png_probe(const uint8_t *data, size_t len, ts_image_info *info, ts_error *err)
{
    if (len < 33)
        return ts_error_set(err, TS_ERR_FORMAT, "PNG data ends early (truncated file)");
    if (be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0)
        return ts_error_set(err, TS_ERR_FORMAT, "PNG is corrupt: it does not start with IHDR");
    if (be32(data + 29) != (uint32_t)crc32(0, data + 12, 17))
        return ts_error_set(err, TS_ERR_FORMAT, "PNG is corrupt: IHDR checksum is wrong");
    uint32_t w = be32(data + 16), h = be32(data + 20);
    if (w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff)
        return ts_error_set(err, TS_ERR_FORMAT, "PNG declares an impossible size %ux%u", w, h);
    int color_type = data[25];
    info->width = (int)w; /* at most 2^31 - 1: fits, and the caller checks limits */
    info->height = (int)h;
    info->has_alpha = (color_type & 4) != 0;
    info->orientation = 1;

    /* Ancillary chunks before the first IDAT. A list that runs off the end
     * is left for the decoder to report. */
    size_t off = 33;
    while (off + 12 <= len) {
        uint32_t clen = be32(data + off);
        const uint8_t *type = data + off + 4;
        if (clen > 0x7fffffff || clen > len - off - 12)
            break;
        const uint8_t *body = data + off + 8;
        if (!memcmp(type, "IDAT", 4) || !memcmp(type, "IEND", 4))
            break;
        if (!memcmp(type, "tRNS", 4))
            info->has_alpha = 1;
        else if (!memcmp(type, "acTL", 4))
            info->animated = 1;
        else if (!memcmp(type, "eXIf", 4))
            info->orientation = ts_image_exif_orientation(body, clen);
        off += 12 + (size_t)clen;
    }
    return TS_OK;
}

typedef struct png_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    int truncated;
    char message[160];
} png_reader;

static void png_read_cb(png_structp png, png_bytep out, size_t n)
{
    png_reader *r = png_get_io_ptr(png);
    if (n > r->len - r->pos) {
        r->truncated = 1;
        png_error(png, "truncated");
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static void png_error_cb(png_structp png, png_const_charp msg)
{
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->message, sizeof r->message, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Known ancillary chunks to skip unread; unknown ones are skipped too. tRNS
 * is the only one kept, and eXIf is read by the probe instead. */
static const png_byte skipped_chunks[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0"
                                         "pCAL\0pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";

ts_status ts_image_png_decode(const uint8_t *data, size_t len, const ts_image_info *info,
                              ts_image_raw *raw, ts_error *err)
{
    png_reader r = {.data = data, .len = len};
    png_structp png = NULL;
    png_infop pinfo = NULL;
    png_bytep *volatile rows = NULL;
    ts_status st = TS_OK;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_error_cb, png_warning_cb);
    if (!png)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the PNG decoder");
    pinfo = png_create_info_struct(png);
    if (!pinfo) {
        png_destroy_read_struct(&png, NULL, NULL);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the PNG decoder");
    }
    if (setjmp(png_jmpbuf(png))) {
        if (r.truncated)
            st = ts_error_set(err, TS_ERR_FORMAT, "PNG data ends early (truncated file)");
        else
            st = ts_error_set(err, TS_ERR_FORMAT, "PNG is corrupt: %s", r.message);
        ts_image_raw_free(raw);
        goto out;
    }

    png_set_read_fn(png, &r, png_read_cb);
    png_set_user_limits(png, TS_IMAGE_SIDE_MAX, TS_IMAGE_SIDE_MAX);
    png_set_chunk_cache_max(png, 128);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)1 << 20);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped_chunks,
                                (int)(sizeof skipped_chunks / 5));
    png_read_info(png, pinfo);

    png_uint_32 w, h;
    int depth, color_type, interlace;
    png_get_IHDR(png, pinfo, &w, &h, &depth, &color_type, &interlace, NULL, NULL);
    if ((int)w != info->width || (int)h != info->height)
        png_error(png, "IHDR changed between probe and decode");
    int alpha = (color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, pinfo, PNG_INFO_tRNS);
    int channels = alpha ? 4 : 3;

    png_set_expand(png); /* palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha */
    png_set_scale_16(png);
    png_set_gray_to_rgb(png);
    if (!alpha)
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    if (png_get_rowbytes(png, pinfo) != (size_t)w * channels || png_get_bit_depth(png, pinfo) != 8)
        png_error(png, "unexpected row layout");

    st = ts_image_raw_alloc(raw, (int)w, (int)h, channels, err);
    if (st != TS_OK)
        goto out;
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory decoding a PNG");
        ts_image_raw_free(raw);
        goto out;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = raw->pixels + (size_t)y * w * channels;
    png_read_image(png, rows);

out:
    free(rows);
    png_destroy_read_struct(&png, &pinfo, NULL);
    return st;
}

/* ------------------------------------------------------------------ encode */

typedef struct png_writer {
    ts_image_outbuf *out;
    int full;
    char message[160];
} png_writer;

static void png_write_cb(png_structp png, png_bytep p, size_t n)
{
    png_writer *w = png_get_io_ptr(png);
    if (ts_image_outbuf_append(w->out, p, n) != 0) {
        w->full = 1;
        png_error(png, "output too large");
    }
}

static void png_flush_cb(png_structp png)
{
    (void)png;
}

static void png_werror_cb(png_structp png, png_const_charp msg)
{
    png_writer *w = png_get_error_ptr(png);
    snprintf(w->message, sizeof w->message, "%s", msg);
    png_longjmp(png, 1);
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

ts_status ts_image_png_encode(const ts_image *img, const ts_image_meta *meta, ts_image_outbuf *out,
                              ts_error *err)
{
    png_writer wr = {.out = out};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &wr, png_werror_cb, png_warning_cb);
    if (!png)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the PNG encoder");
    png_infop pinfo = png_create_info_struct(png);
    png_text *volatile texts = NULL;
    ts_status st = TS_OK;
    if (!pinfo) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the PNG encoder");
        goto out;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = wr.full ? ts_error_set(err, TS_ERR_LIMIT, "encoded PNG is unexpectedly large")
                     : ts_error_set(err, TS_ERR_INTERNAL, "PNG encoder failed: %s", wr.message);
        goto out;
    }
    png_set_write_fn(png, &wr, png_write_cb, png_flush_cb);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, pinfo, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (meta && meta->count) {
        texts = calloc(meta->count, sizeof *texts);
        if (!texts)
            png_error(png, "out of memory");
        for (size_t i = 0; i < meta->count; i++) {
            texts[i].key = (png_charp)meta->entries[i].key;
            texts[i].text = (png_charp)meta->entries[i].value;
            texts[i].compression = is_ascii(meta->entries[i].value) ? PNG_TEXT_COMPRESSION_NONE
                                                                    : PNG_ITXT_COMPRESSION_NONE;
        }
        png_set_text(png, pinfo, texts, (int)meta->count);
    }
    png_write_info(png, pinfo);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, img->pixels + (size_t)y * img->width * 3);
    png_write_end(png, NULL);

out:
    free(texts);
    png_destroy_write_struct(&png, &pinfo);
    return st;
}
