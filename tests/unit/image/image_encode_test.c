/*
 * image_encode_test.c - encoders: round trips (PNG exact, JPEG and WebP
 * within tolerance), and the bytes carry no metadata unless asked for.
 * The container walks below are written here from the format specs, not
 * taken from the code under test.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_fixtures.h"
#include "ts_image.h"
#include "ts_test.h"

/* A smooth picture with some texture: three gradients plus a gentle
 * ripple on all channels (lossy coders are held to a mean error on it). */
static void make_picture(ts_image *img, int w, int h)
{
    TS_CHECK_INT_EQ(ts_image_alloc(img, w, h, NULL), TS_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->pixels + ((size_t)y * w + x) * 3;
            int ripple = (int)lround(20.0 * sin(x * 0.4) * cos(y * 0.3));
            p[0] = (uint8_t)(25 + x * 200 / (w - 1) + ripple);
            p[1] = (uint8_t)(25 + y * 200 / (h - 1) + ripple);
            p[2] = (uint8_t)(25 + (x + y) * 200 / (w + h - 2) + ripple);
        }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Writes the PNG chunk types, space-separated, into out. */
static void png_chunk_list(const uint8_t *d, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    size_t off = 8;
    while (off + 12 <= len) {
        uint32_t n = be32(d + off);
        if (strlen(out) + 6 < cap) {
            strncat(out, (const char *)d + off + 4, 4);
            strcat(out, " ");
        }
        off += 12 + (size_t)n;
    }
}

/* Writes the JPEG marker codes before the first SOS ("d8 e0 db ..."). */
static void jpeg_marker_list(const uint8_t *d, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    size_t off = 2;
    snprintf(out, cap, "d8 ");
    while (off + 4 <= len && d[off] == 0xff) {
        char m[8];
        snprintf(m, sizeof m, "%02x ", d[off + 1]);
        strncat(out, m, cap - strlen(out) - 1);
        if (d[off + 1] == 0xda)
            break;
        off += 2 + ((size_t)d[off + 2] << 8 | d[off + 3]);
    }
}

/* Writes the RIFF chunk FourCCs of a WebP. */
static void webp_chunk_list(const uint8_t *d, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    size_t off = 12;
    while (off + 8 <= len) {
        uint32_t n = le32(d + off + 4);
        if (strlen(out) + 6 < cap) {
            strncat(out, (const char *)d + off, 4);
            strcat(out, " ");
        }
        off += 8 + (size_t)n + (n & 1);
    }
}

static int contains(const uint8_t *d, size_t len, const char *needle)
{
    return memmem(d, len, needle, strlen(needle)) != NULL;
}

static void no_metadata_strings(const uint8_t *d, size_t len)
{
    TS_CHECK(!contains(d, len, "Exif"));
    TS_CHECK(!contains(d, len, "http://ns.adobe.com/xap"));
    TS_CHECK(!contains(d, len, "ICC_PROFILE"));
    TS_CHECK(!contains(d, len, "tEXt"));
    TS_CHECK(!contains(d, len, "iTXt"));
    TS_CHECK(!contains(d, len, "zTXt"));
    TS_CHECK(!contains(d, len, "tIME"));
}

/* Mean absolute difference per channel. */
static double mean_diff(const ts_image *a, const ts_image *b)
{
    if (!a->pixels || !b->pixels || a->width != b->width || a->height != b->height)
        return 256;
    double sum = 0;
    size_t n = (size_t)a->width * a->height * 3;
    for (size_t i = 0; i < n; i++)
        sum += abs((int)a->pixels[i] - (int)b->pixels[i]);
    return sum / (double)n;
}

/* tol: the largest difference for lossless formats, the mean one for lossy. */
static void round_trip(ts_image_format fmt, int quality, double tol, ts_image *src)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    ts_error err;
    ts_image back = {0};
    ts_image_info info;
    TS_CHECK_INT_EQ(ts_image_encode(src, fmt, quality, NULL, &buf, &len, &err), TS_OK);
    TS_CHECK(buf != NULL && len > 0);
    TS_CHECK_INT_EQ(ts_image_decode(buf, len, NULL, &back, &info, &err), TS_OK);
    TS_CHECK_INT_EQ(info.format, fmt);
    int lossless = fmt == TS_IMAGE_PNG || quality == TS_IMAGE_QUALITY_LOSSLESS;
    double diff = lossless ? image_max_diff(src, &back) : mean_diff(src, &back);
    fprintf(stderr, "  %s q%d: %s difference %.2f\n", ts_image_format_name(fmt), quality,
            lossless ? "max" : "mean", diff);
    TS_CHECK(diff <= tol);
    no_metadata_strings(buf, len);
    ts_image_free(&back);
    ts_image_buffer_free(buf, len);
}

static void test_round_trips(void)
{
    ts_image src = {0};
    make_picture(&src, 96, 64);
    round_trip(TS_IMAGE_PNG, 0, 0, &src);
    round_trip(TS_IMAGE_WEBP, TS_IMAGE_QUALITY_LOSSLESS, 0, &src);
    round_trip(TS_IMAGE_JPEG, 95, 2.0, &src);
    round_trip(TS_IMAGE_WEBP, 90, 3.0, &src);
    ts_image_free(&src);
}

static void test_png_has_only_structural_chunks(void)
{
    ts_image src = {0};
    make_picture(&src, 20, 10);
    uint8_t *buf;
    size_t len;
    char list[256];
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_PNG, 0, NULL, &buf, &len, NULL), TS_OK);
    png_chunk_list(buf, len, list, sizeof list);
    TS_CHECK_STR_EQ(list, "IHDR IDAT IEND ");
    ts_image_buffer_free(buf, len);

    /* Asked for: one tEXt per plain entry, iTXt for UTF-8. */
    const ts_image_meta_entry entries[] = {{"parameters", "a red heart, steps 20"},
                                           {"Comment", "caf\xc3\xa9"}};
    ts_image_meta meta = {entries, 2};
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_PNG, 0, &meta, &buf, &len, NULL), TS_OK);
    png_chunk_list(buf, len, list, sizeof list);
    TS_CHECK(strstr(list, "tEXt") != NULL);
    TS_CHECK(strstr(list, "iTXt") != NULL);
    TS_CHECK(contains(buf, len, "parameters"));
    TS_CHECK(memmem(buf, len, "parameters\0a red heart, steps 20", 32) != NULL);
    ts_image_buffer_free(buf, len);
    ts_image_free(&src);
}

static void test_jpeg_has_only_structural_markers(void)
{
    ts_image src = {0};
    make_picture(&src, 20, 10);
    uint8_t *buf;
    size_t len;
    char list[256];
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_JPEG, 85, NULL, &buf, &len, NULL), TS_OK);
    jpeg_marker_list(buf, len, list, sizeof list);
    /* SOI, JFIF APP0, tables, frame, Huffman tables, scan: no APP1 (EXIF /
     * XMP), APP2 (ICC), APP13 (IPTC) or COM. */
    TS_CHECK(strstr(list, "e1") == NULL && strstr(list, "e2") == NULL &&
             strstr(list, "ed") == NULL && strstr(list, "fe") == NULL);
    TS_CHECK(strncmp(list, "d8 e0 ", 6) == 0);
    ts_image_buffer_free(buf, len);

    const ts_image_meta_entry entries[] = {{"parameters", "seed 42"}};
    ts_image_meta meta = {entries, 1};
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_JPEG, 85, &meta, &buf, &len, NULL), TS_OK);
    jpeg_marker_list(buf, len, list, sizeof list);
    TS_CHECK(strstr(list, "fe") != NULL);
    TS_CHECK(contains(buf, len, "parameters: seed 42"));
    ts_image_buffer_free(buf, len);
    ts_image_free(&src);
}

static void test_webp_has_only_the_bitstream(void)
{
    ts_image src = {0};
    make_picture(&src, 20, 10);
    uint8_t *buf;
    size_t len;
    char list[256];
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_WEBP, 80, NULL, &buf, &len, NULL), TS_OK);
    webp_chunk_list(buf, len, list, sizeof list);
    TS_CHECK_STR_EQ(list, "VP8  ");
    ts_image_buffer_free(buf, len);
    TS_CHECK_INT_EQ(
        ts_image_encode(&src, TS_IMAGE_WEBP, TS_IMAGE_QUALITY_LOSSLESS, NULL, &buf, &len, NULL),
        TS_OK);
    webp_chunk_list(buf, len, list, sizeof list);
    TS_CHECK_STR_EQ(list, "VP8L ");
    ts_image_buffer_free(buf, len);

    const ts_image_meta_entry entries[] = {{"parameters", "x"}};
    ts_image_meta meta = {entries, 1};
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_WEBP, 80, &meta, &buf, &len, NULL),
                    TS_ERR_UNSUPPORTED);
    ts_image_free(&src);
}

static void test_decoded_metadata_does_not_survive(void)
{
    /* A JPEG with EXIF in, a JPEG and a PNG out: nothing of it remains. */
    size_t len;
    uint8_t *data = fixture_read("orient_6.jpg", &len);
    ts_image img = {0};
    TS_CHECK_INT_EQ(ts_image_decode(data, len, NULL, &img, NULL, NULL), TS_OK);
    free(data);
    uint8_t *buf;
    size_t n;
    TS_CHECK_INT_EQ(ts_image_encode(&img, TS_IMAGE_JPEG, 90, NULL, &buf, &n, NULL), TS_OK);
    no_metadata_strings(buf, n);
    ts_image_buffer_free(buf, n);
    TS_CHECK_INT_EQ(ts_image_encode(&img, TS_IMAGE_PNG, 0, NULL, &buf, &n, NULL), TS_OK);
    no_metadata_strings(buf, n);
    ts_image_buffer_free(buf, n);
    ts_image_free(&img);
}

static void test_bad_arguments(void)
{
    ts_image src = {0};
    make_picture(&src, 8, 8);
    uint8_t *buf = (uint8_t *)1;
    size_t len = 1;
    ts_error err;
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_JPEG, 102, NULL, &buf, &len, &err), TS_ERR_ARG);
    TS_CHECK(buf == NULL && len == 0);
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_HEIC, 90, NULL, &buf, &len, &err),
                    TS_ERR_UNSUPPORTED);
    TS_CHECK_INT_EQ(ts_image_encode(NULL, TS_IMAGE_PNG, 0, NULL, &buf, &len, &err), TS_ERR_ARG);
    const ts_image_meta_entry bad_key[] = {{"", "x"}};
    ts_image_meta meta = {bad_key, 1};
    TS_CHECK_INT_EQ(ts_image_encode(&src, TS_IMAGE_PNG, 0, &meta, &buf, &len, &err), TS_ERR_ARG);
    ts_image_buffer_free(NULL, 0);
    ts_image_free(&src);

    TS_CHECK_INT_EQ(ts_image_format_from_name("JPG"), TS_IMAGE_JPEG);
    TS_CHECK_INT_EQ(ts_image_format_from_name("webp"), TS_IMAGE_WEBP);
    TS_CHECK_INT_EQ(ts_image_format_from_name("gif"), TS_IMAGE_UNKNOWN);
    TS_CHECK_STR_EQ(ts_image_format_mime(TS_IMAGE_PNG), "image/png");
}

static void test_save_file(void)
{
    char dir[] = "/tmp/ts_image_test_XXXXXX";
    TS_CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/out.png", dir);
    ts_image src = {0}, back = {0};
    make_picture(&src, 30, 20);
    ts_error err;
    TS_CHECK_INT_EQ(ts_image_save_file(&src, path, TS_IMAGE_PNG, 0, NULL, &err), TS_OK);
    struct stat sb;
    TS_CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    TS_CHECK_INT_EQ(ts_image_load_file(path, NULL, &back, NULL, &err), TS_OK);
    TS_CHECK_INT_EQ(image_max_diff(&src, &back), 0);
    unlink(path);
    rmdir(dir);
    ts_image_free(&src);
    ts_image_free(&back);
}

int main(void)
{
    TS_RUN(test_round_trips);
    TS_RUN(test_png_has_only_structural_chunks);
    TS_RUN(test_jpeg_has_only_structural_markers);
    TS_RUN(test_webp_has_only_the_bitstream);
    TS_RUN(test_decoded_metadata_does_not_survive);
    TS_RUN(test_bad_arguments);
    TS_RUN(test_save_file);
    return ts_test_finish();
}
