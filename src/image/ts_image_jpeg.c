/*
 * ts_image_jpeg.c - JPEG through libjpeg-turbo, with hostile files in mind.
 *
 * Every libjpeg error lands in error_exit, which longjmps back with the
 * message; nothing calls exit(). Warnings that mean the data is damaged
 * (the file ends early, a segment stops short) are errors here: libjpeg would
 * otherwise fill the rest of the picture with grey and report success. A
 * progress monitor refuses progressive files with more than
 * TS_IMAGE_JPEG_MAX_SCANS scans, which otherwise cost a full pass over the
 * coefficients each (a classic decompression-time bomb).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "ts_image_codec.h"

typedef struct jpeg_fail {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    int too_many_scans;
    char message[JMSG_LENGTH_MAX];
} jpeg_fail;

static void jpeg_error_exit_cb(j_common_ptr cinfo)
{
    jpeg_fail *f = (jpeg_fail *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, f->message);
    longjmp(f->jump, 1);
}

/* Memory libjpeg may use for whole-image buffers (progressive JPEGs keep
 * every coefficient: about 6 bytes a pixel at 4:4:4). 40 megapixels fit. */
#define JPEG_MAX_MEMORY ((long)512 << 20)

/* Corrupt-data warnings we tolerate before giving up on a file. */
#define JPEG_MAX_WARNINGS 64

/* Stray bytes before a marker that we tolerate: some cameras pad a little,
 * but a frame header declaring less than the data holds leaves thousands. */
#define JPEG_MAX_EXTRANEOUS 256

static void jpeg_emit_message_cb(j_common_ptr cinfo, int level)
{
    jpeg_fail *f = (jpeg_fail *)cinfo->err;
    if (level >= 0)
        return; /* trace messages */
    int code = f->pub.msg_code;
    if (code == JWRN_JPEG_EOF) {
        f->truncated = 1;
        jpeg_error_exit_cb(cinfo);
    }
    if (code == JWRN_BOGUS_PROGRESSION)
        return; /* repeated scans are bounded by the scan limit instead */
    if (code == JWRN_EXTRANEOUS_DATA && f->pub.msg_parm.i[0] > JPEG_MAX_EXTRANEOUS) {
        snprintf(f->message, sizeof f->message,
                 "%d bytes of data that its frame header does not account for",
                 f->pub.msg_parm.i[0]);
        longjmp(f->jump, 1);
    }
    if (code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC ||
        ++f->pub.num_warnings > JPEG_MAX_WARNINGS)
        jpeg_error_exit_cb(cinfo);
}

static void jpeg_progress_cb(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor)
        return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > TS_IMAGE_JPEG_MAX_SCANS) {
        jpeg_fail *f = (jpeg_fail *)cinfo->err;
        f->too_many_scans = 1;
        snprintf(f->message, sizeof f->message, "too many scans");
        longjmp(f->jump, 1);
    }
}

/* Fails the current libjpeg call with our own message. */
static void jpeg_fail_now(j_common_ptr cinfo, const char *why)
{
    jpeg_fail *f = (jpeg_fail *)cinfo->err;
    snprintf(f->message, sizeof f->message, "%s", why);
    longjmp(f->jump, 1);
}

static ts_status jpeg_failure(const jpeg_fail *f, ts_error *err)
{
    if (f->truncated)
        return ts_error_set(err, TS_ERR_FORMAT, "JPEG data ends early (truncated file)");
    if (f->too_many_scans)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "JPEG has more than %d progressive scans; refusing it as hostile",
                            TS_IMAGE_JPEG_MAX_SCANS);
    if (f->pub.msg_code == JERR_BAD_PRECISION)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "JPEG uses a sample precision we do not "
                            "decode (only 8-bit JPEG is supported)");
    return ts_error_set(err, TS_ERR_FORMAT, "JPEG is corrupt: %s", f->message);
}

static void setup_decompress(struct jpeg_decompress_struct *d, jpeg_fail *f,
                             struct jpeg_progress_mgr *prog)
{
    d->err = jpeg_std_error(&f->pub);
    f->pub.error_exit = jpeg_error_exit_cb;
    f->pub.emit_message = jpeg_emit_message_cb;
    prog->progress_monitor = jpeg_progress_cb;
}

/* The orientation from the first APP1 segment that holds EXIF. */
static int saved_orientation(struct jpeg_decompress_struct *d)
{
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6))
            return ts_image_exif_orientation(m->data, m->data_length);
    return 1;
}

ts_status ts_image_jpeg_probe(const uint8_t *data, size_t len, ts_image_info *info, ts_error *err)
{
    struct jpeg_decompress_struct d;
    jpeg_fail f = {0};
    struct jpeg_progress_mgr prog = {0};
    memset(&d, 0, sizeof d);
    setup_decompress(&d, &f, &prog);
    if (setjmp(f.jump)) {
        jpeg_destroy_decompress(&d);
        return jpeg_failure(&f, err);
    }
    jpeg_create_decompress(&d);
    d.progress = &prog;
    jpeg_mem_src(&d, data, (unsigned long)len);
    jpeg_save_markers(&d, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&d, TRUE);
    info->width = (int)d.image_width;
    info->height = (int)d.image_height;
    info->has_alpha = 0;
    info->animated = 0;
    info->orientation = saved_orientation(&d);
    jpeg_destroy_decompress(&d);
    return TS_OK;
}

ts_status ts_image_jpeg_decode(const uint8_t *data, size_t len, const ts_image_info *info,
                               ts_image_raw *raw, ts_error *err)
{
    struct jpeg_decompress_struct d;
    jpeg_fail f = {0};
    struct jpeg_progress_mgr prog = {0};
    uint8_t *volatile row = NULL;
    volatile size_t row_len = 0;
    memset(&d, 0, sizeof d);
    setup_decompress(&d, &f, &prog);
    if (setjmp(f.jump)) {
        ts_image_buffer_free(row, row_len);
        ts_image_raw_free(raw);
        jpeg_destroy_decompress(&d);
        return jpeg_failure(&f, err);
    }
    jpeg_create_decompress(&d);
    d.progress = &prog;
    d.mem->max_memory_to_use = JPEG_MAX_MEMORY;
    jpeg_mem_src(&d, data, (unsigned long)len);
    jpeg_read_header(&d, TRUE);
    if ((int)d.image_width != info->width || (int)d.image_height != info->height)
        jpeg_fail_now((j_common_ptr)&d, "its size changed between probe and decode");

    int cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
    /* Photoshop writes CMYK inverted and says so with an Adobe APP14 marker;
     * without it the values are taken as plain ink amounts. */
    int inverted = cmyk && d.saw_Adobe_marker;
    d.out_color_space = cmyk ? JCS_CMYK : JCS_RGB; /* grey and YCbCr -> RGB */
    d.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&d);
    if ((int)d.output_width != info->width || (int)d.output_height != info->height ||
        d.output_components != (cmyk ? 4 : 3))
        jpeg_fail_now((j_common_ptr)&d, "unexpected output layout");

    ts_status st = ts_image_raw_alloc(raw, info->width, info->height, 3, err);
    if (st != TS_OK) {
        jpeg_destroy_decompress(&d);
        return st;
    }
    size_t w = (size_t)info->width;
    if (cmyk) {
        row_len = w * 4;
        row = malloc(row_len);
        if (!row) {
            ts_image_raw_free(raw);
            jpeg_destroy_decompress(&d);
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory decoding a JPEG");
        }
    }
    while (d.output_scanline < d.output_height) {
        uint8_t *dst = raw->pixels + (size_t)d.output_scanline * w * 3;
        JSAMPROW rp = cmyk ? row : dst;
        if (jpeg_read_scanlines(&d, &rp, 1) != 1)
            jpeg_fail_now((j_common_ptr)&d, "a row could not be decoded");
        if (!cmyk)
            continue;
        /* R = (255 - C)(255 - K) / 255, and likewise G from M and B from Y;
         * inverted files store 255 - ink. */
        for (size_t x = 0; x < w; x++) {
            const uint8_t *s = row + x * 4;
            unsigned k = inverted ? s[3] : 255u - s[3];
            for (int c = 0; c < 3; c++) {
                unsigned v = inverted ? s[c] : 255u - s[c];
                dst[x * 3 + c] = (uint8_t)((v * k + 127u) / 255u);
            }
        }
    }
    /* Reading to EOI makes a file cut after the last row still count as cut. */
    jpeg_finish_decompress(&d);
    ts_image_buffer_free(row, row_len);
    jpeg_destroy_decompress(&d);
    return TS_OK;
}

/* ------------------------------------------------------------------ encode */

#define JPEG_OUT_CHUNK 16384

typedef struct jpeg_sink {
    struct jpeg_destination_mgr pub;
    ts_image_outbuf *out;
    int full;
    JOCTET chunk[JPEG_OUT_CHUNK];
} jpeg_sink;

static void sink_init(j_compress_ptr c)
{
    jpeg_sink *s = (jpeg_sink *)c->dest;
    s->pub.next_output_byte = s->chunk;
    s->pub.free_in_buffer = JPEG_OUT_CHUNK;
}

static boolean sink_empty(j_compress_ptr c)
{
    jpeg_sink *s = (jpeg_sink *)c->dest;
    if (ts_image_outbuf_append(s->out, s->chunk, JPEG_OUT_CHUNK) != 0) {
        s->full = 1;
        ERREXIT(c, JERR_FILE_WRITE);
    }
    s->pub.next_output_byte = s->chunk;
    s->pub.free_in_buffer = JPEG_OUT_CHUNK;
    return TRUE;
}

static void sink_term(j_compress_ptr c)
{
    jpeg_sink *s = (jpeg_sink *)c->dest;
    size_t n = JPEG_OUT_CHUNK - s->pub.free_in_buffer;
    if (ts_image_outbuf_append(s->out, s->chunk, n) != 0) {
        s->full = 1;
        ERREXIT(c, JERR_FILE_WRITE);
    }
}

ts_status ts_image_jpeg_encode(const ts_image *img, int quality, const ts_image_meta *meta,
                               ts_image_outbuf *out, ts_error *err)
{
    struct jpeg_compress_struct c;
    jpeg_fail f = {0};
    jpeg_sink *volatile sink = NULL;
    char *volatile comment = NULL;
    volatile size_t comment_len = 0;
    volatile ts_status st = TS_OK;
    memset(&c, 0, sizeof c);
    c.err = jpeg_std_error(&f.pub);
    f.pub.error_exit = jpeg_error_exit_cb;
    if (setjmp(f.jump)) {
        st = sink && sink->full
                 ? ts_error_set(err, TS_ERR_LIMIT, "encoded JPEG is unexpectedly large")
                 : ts_error_set(err, TS_ERR_INTERNAL, "JPEG encoder failed: %s", f.message);
        goto out;
    }
    jpeg_create_compress(&c);
    sink = calloc(1, sizeof *sink);
    if (!sink) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory starting the JPEG encoder");
        goto out;
    }
    sink->out = out;
    sink->pub.init_destination = sink_init;
    sink->pub.empty_output_buffer = sink_empty;
    sink->pub.term_destination = sink_term;
    c.dest = &sink->pub;

    c.image_width = (JDIMENSION)img->width;
    c.image_height = (JDIMENSION)img->height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality > 100 ? 100 : quality, TRUE);
    c.optimize_coding = TRUE;
    c.dct_method = JDCT_ISLOW;
    if (quality >= 90) { /* full-resolution colour at high quality (4:4:4) */
        c.comp_info[0].h_samp_factor = 1;
        c.comp_info[0].v_samp_factor = 1;
    }
    c.write_JFIF_header = TRUE; /* version and square pixels only */
    c.density_unit = 0;
    c.X_density = 1;
    c.Y_density = 1;
    jpeg_start_compress(&c, TRUE);

    if (meta && meta->count) {
        size_t n = 0;
        for (size_t i = 0; i < meta->count; i++)
            n += strlen(meta->entries[i].key) + strlen(meta->entries[i].value) + 3;
        if (n > 65533) {
            st = ts_error_set(err, TS_ERR_ARG, "JPEG comment metadata is over 64 KB");
            goto out;
        }
        comment = malloc(n + 1);
        if (!comment) {
            st = ts_error_set(err, TS_ERR_NOMEM, "out of memory");
            goto out;
        }
        comment_len = n + 1;
        size_t at = 0;
        for (size_t i = 0; i < meta->count; i++)
            at += (size_t)snprintf(comment + at, n + 1 - at, "%s: %s\n", meta->entries[i].key,
                                   meta->entries[i].value);
        jpeg_write_marker(&c, JPEG_COM, (const JOCTET *)comment, (unsigned)at);
    }

    while (c.next_scanline < c.image_height) {
        JSAMPROW rp = img->pixels + (size_t)c.next_scanline * img->width * 3;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);

out:
    jpeg_destroy_compress(&c);
    if (sink) {
        ts_image_buffer_free((uint8_t *)sink, sizeof *sink);
    }
    ts_image_buffer_free((uint8_t *)comment, comment_len);
    return st;
}
