/*
 * image_decode_test.c - decoding checked on pixels against references that
 * tools/fixtures/make_image_fixtures.py computed with PIL and numpy, and
 * every kind of hostile file refused with the right status.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_fixtures.h"
#include "ts_image.h"
#include "ts_test.h"

/* Decodes a fixture; returns the status and leaves err filled. */
static ts_status decode_fixture(const char *name, const ts_image_limits *lim, ts_image *img,
                                ts_image_info *info, ts_error *err)
{
    size_t len;
    uint8_t *data = fixture_read(name, &len);
    ts_error_clear(err);
    ts_status st = ts_image_decode(data, len, lim, img, info, err);
    if (st != TS_OK)
        fprintf(stderr, "  %s: %s: %s\n", name, ts_status_name(st), err->message);
    free(data);
    return st;
}

/* Decodes name and compares with the PPM reference within tol. */
static void check_against(const char *name, const char *ref_name, int tol)
{
    ts_image img = {0}, ref = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(decode_fixture(name, NULL, &img, &info, &err), TS_OK);
    TS_CHECK_INT_EQ(fixture_ppm(ref_name, &ref), 0);
    int diff = image_max_diff(&img, &ref);
    if (diff > tol)
        fprintf(stderr, "  %s vs %s: max difference %d > %d\n", name, ref_name, diff, tol);
    TS_CHECK(diff <= tol);
    ts_image_free(&img);
    ts_image_free(&ref);
}

/* Decoding must fail with status, leave the image empty, and (if given)
 * say something containing needle. */
static void check_refused(const char *name, ts_status status, const char *needle)
{
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    size_t len;
    uint8_t *data = fixture_read(name, &len);
    TS_CHECK(data != NULL || len == 0);
    ts_error_clear(&err);
    ts_status st = ts_image_decode(data, len, NULL, &img, &info, &err);
    if (st != status)
        fprintf(stderr, "  %s: got %s (%s)\n", name, ts_status_name(st), err.message);
    TS_CHECK_INT_EQ(st, status);
    TS_CHECK(img.pixels == NULL && img.width == 0);
    if (needle && !strstr(err.message, needle)) {
        fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", name, err.message, needle);
        TS_CHECK(strstr(err.message, needle) != NULL);
    }
    free(data);
}

/* ------------------------------------------------------------------ orientation */

static void test_exif_orientation_jpeg_all_eight(void)
{
    ts_image ref = {0};
    TS_CHECK_INT_EQ(fixture_ppm("quadrants.ppm", &ref), 0);
    for (int o = 1; o <= 8; o++) {
        char name[32];
        snprintf(name, sizeof name, "orient_%d.jpg", o);
        ts_image img = {0};
        ts_image_info info;
        ts_error err;
        TS_CHECK_INT_EQ(decode_fixture(name, NULL, &img, &info, &err), TS_OK);
        TS_CHECK_INT_EQ(info.format, TS_IMAGE_JPEG);
        TS_CHECK_INT_EQ(info.orientation, o);
        TS_CHECK_INT_EQ(info.width, 64);
        TS_CHECK_INT_EQ(info.height, 32);
        int diff = image_max_diff(&img, &ref);
        if (diff > 16)
            fprintf(stderr, "  orientation %d: max difference %d\n", o, diff);
        /* q95 4:4:4 with block-aligned quadrants stays within a few levels;
         * a wrong turn or mirror differs by more than 100. */
        TS_CHECK(diff <= 16);
        ts_image_free(&img);
    }
    ts_image_free(&ref);
}

static void test_exif_orientation_png_and_webp(void)
{
    check_against("orient_5.png", "quadrants.ppm", 0);
    check_against("orient_8.webp", "quadrants.ppm", 0);
    size_t len;
    uint8_t *data = fixture_read("orient_5.png", &len);
    ts_image_info info;
    TS_CHECK_INT_EQ(ts_image_probe(data, len, NULL, &info, NULL), TS_OK);
    TS_CHECK_INT_EQ(info.orientation, 5);
    TS_CHECK_INT_EQ(info.width, 64);
    TS_CHECK_INT_EQ(info.height, 32);
    free(data);
}

static void test_exif_written_by_hand(void)
{
    /* Big-endian TIFF applies; broken EXIF blocks are ignored, not fatal. */
    static const char *const names[] = {"exif_be_6.jpg", "exif_bad_value.jpg",
                                        "exif_bad_offset.jpg", "exif_long_type.jpg"};
    static const int want[] = {6, 1, 1, 1};
    ts_image ref = {0};
    TS_CHECK_INT_EQ(fixture_ppm("quadrants.ppm", &ref), 0);
    for (int i = 0; i < 4; i++) {
        ts_image img = {0};
        ts_image_info info;
        ts_error err;
        TS_CHECK_INT_EQ(decode_fixture(names[i], NULL, &img, &info, &err), TS_OK);
        TS_CHECK_INT_EQ(info.orientation, want[i]);
        TS_CHECK(image_max_diff(&img, &ref) <= 16);
        ts_image_free(&img);
    }
    ts_image_free(&ref);
}

static void test_zero_limits_mean_defaults(void)
{
    ts_image_limits zero = {0};
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(decode_fixture("orient_2.jpg", &zero, &img, &info, &err), TS_OK);
    ts_image_free(&img);
    check_refused("huge_dims.png", TS_ERR_LIMIT, "40 megapixels");
}

static void test_orientation_counts_for_limits(void)
{
    /* orient_6.jpg is stored 32x64 and shown 64x32: a 40-pixel width limit
     * must see the 64. */
    ts_image_limits lim = ts_image_limits_default();
    lim.max_width = 40;
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(decode_fixture("orient_6.jpg", &lim, &img, &info, &err), TS_ERR_LIMIT);
    TS_CHECK(img.pixels == NULL);
}

/* ------------------------------------------------------------------ colour types */

static void test_png_colour_types(void)
{
    check_against("gray.png", "gray.ppm", 0);
    check_against("gray2.png", "gray2.ppm", 0);
    check_against("gray_alpha.png", "gray_alpha.ppm", 0);
    check_against("rgba.png", "rgba.ppm", 0);
    check_against("palette_trns.png", "palette_trns.ppm", 0);
    check_against("rgb16.png", "rgb16.ppm", 0);
    check_against("interlaced.png", "interlaced.ppm", 0);
}

static void test_alpha_over_white_exact_values(void)
{
    /* rgba.png pixel 0 is (200, 100, 0, alpha 128): (c * 128 + 255 * 127) / 255
     * rounded gives 227, 177, 127. Pixel 1 is fully transparent: white.
     * Pixel 2 is opaque (10, 20, 30). */
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(decode_fixture("rgba.png", NULL, &img, &info, &err), TS_OK);
    TS_CHECK_INT_EQ(info.has_alpha, 1);
    if (img.pixels) {
        const uint8_t want[9] = {227, 177, 127, 255, 255, 255, 10, 20, 30};
        for (int i = 0; i < 9; i++)
            TS_CHECK_INT_EQ(img.pixels[i], want[i]);
    }
    ts_image_free(&img);
    /* 16-bit 0x8080 scales to 128, 0xffff to 255. */
    TS_CHECK_INT_EQ(decode_fixture("rgb16.png", NULL, &img, &info, &err), TS_OK);
    if (img.pixels) {
        TS_CHECK_INT_EQ(img.pixels[0], 128);
        TS_CHECK_INT_EQ(img.pixels[1], 255);
        TS_CHECK_INT_EQ(img.pixels[2], 0);
    }
    ts_image_free(&img);
}

static void test_jpeg_kinds(void)
{
    check_against("gray.jpg", "gray.ppm", 4);
    check_against("progressive.jpg", "quadrants.ppm", 16);
    /* CMYK through the plain formula; the reference is PIL's conversion. */
    check_against("cmyk_adobe.jpg", "cmyk.ppm", 6);
    check_against("cmyk_plain.jpg", "cmyk.ppm", 6);
}

static void test_webp_kinds(void)
{
    check_against("alpha_lossless.webp", "rgba.ppm", 0);
    check_against("alpha_lossy.webp", "alpha_lossy.ppm", 10);
    check_against("animated.webp", "quadrants.ppm", 0);
    size_t len;
    uint8_t *data = fixture_read("animated.webp", &len);
    ts_image_info info;
    TS_CHECK_INT_EQ(ts_image_probe(data, len, NULL, &info, NULL), TS_OK);
    TS_CHECK_INT_EQ(info.animated, 1);
    TS_CHECK_INT_EQ(info.format, TS_IMAGE_WEBP);
    free(data);
    data = fixture_read("alpha_lossless.webp", &len);
    TS_CHECK_INT_EQ(ts_image_probe(data, len, NULL, &info, NULL), TS_OK);
    TS_CHECK_INT_EQ(info.has_alpha, 1);
    TS_CHECK_INT_EQ(info.animated, 0);
    free(data);
}

static void test_heic(void)
{
    check_against("quadrants.heic", "quadrants.ppm", 8);
    /* Stored turned, marked with both irot and EXIF orientation 6: turned
     * back exactly once. */
    check_against("exif6_irot.heic", "quadrants.ppm", 8);
    size_t len;
    uint8_t *data = fixture_read("exif6_irot.heic", &len);
    ts_image_info info;
    TS_CHECK_INT_EQ(ts_image_probe(data, len, NULL, &info, NULL), TS_OK);
    TS_CHECK_INT_EQ(info.format, TS_IMAGE_HEIC);
    TS_CHECK_INT_EQ(info.orientation, 1);
    TS_CHECK_INT_EQ(info.width, 64);
    TS_CHECK_INT_EQ(info.height, 32);
    free(data);
}

/* ------------------------------------------------------------------ hostile files */

static void test_truncated(void)
{
    check_refused("trunc_interlaced.png", TS_ERR_FORMAT, "PNG");
    check_refused("trunc_orient_1.jpg", TS_ERR_FORMAT, "JPEG data ends early (truncated file)");
    check_refused("trunc_progressive.jpg", TS_ERR_FORMAT, "JPEG data ends early");
    check_refused("trunc_alpha_lossless.webp", TS_ERR_FORMAT, "WebP");
    check_refused("trunc_quadrants.heic", TS_ERR_FORMAT, "HEIC");
    check_refused("zero_size.heic", TS_ERR_FORMAT, "HEIC declares an empty image");
}

static void test_format_from_magic(void)
{
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(decode_fixture("png_named.jpg", NULL, &img, &info, &err), TS_OK);
    TS_CHECK_INT_EQ(info.format, TS_IMAGE_PNG);
    ts_image_free(&img);
    check_refused("svg_named.png", TS_ERR_UNSUPPORTED, "looks like SVG");
    check_refused("html_named.png", TS_ERR_UNSUPPORTED, "looks like HTML");
    check_refused("script_named.png", TS_ERR_UNSUPPORTED, "looks like HTML");
    check_refused("gif_named.png", TS_ERR_UNSUPPORTED, "looks like GIF");
    check_refused("empty.png", TS_ERR_FORMAT, "empty");
    check_refused("random.bin", TS_ERR_UNSUPPORTED, "not a PNG, JPEG, WebP or HEIC image");
    TS_CHECK_INT_EQ(ts_image_decode(NULL, 0, NULL, &img, &info, &err), TS_ERR_FORMAT);
}

static void test_size_limits_before_decode(void)
{
    size_t len;
    uint8_t *data = fixture_read("huge_dims.png", &len);
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(ts_image_probe(data, len, NULL, &info, &err), TS_ERR_LIMIT);
    TS_CHECK(strstr(err.message, "65535x65535") != NULL);
    TS_CHECK(strstr(err.message, "40 megapixels") != NULL);
    free(data);
    check_refused("huge_dims.png", TS_ERR_LIMIT, "65535x65535");
    check_refused("huge_dims.jpg", TS_ERR_LIMIT, "60000x60000");
    check_refused("huge_dims.webp", TS_ERR_LIMIT, "16384x16384");

    ts_image_limits lim = ts_image_limits_default();
    lim.max_bytes = 100;
    data = fixture_read("quadrants.heic", &len);
    TS_CHECK_INT_EQ(ts_image_probe(data, len, &lim, &info, &err), TS_ERR_LIMIT);
    lim = ts_image_limits_default();
    lim.max_pixels = 64 * 32 - 1;
    TS_CHECK_INT_EQ(ts_image_probe(data, len, &lim, &info, &err), TS_ERR_LIMIT);
    lim.max_pixels = 64 * 32;
    TS_CHECK_INT_EQ(ts_image_probe(data, len, &lim, &info, &err), TS_OK);
    free(data);
}

static void test_deflate_bombs(void)
{
    /* Both decode to the declared 16x16 picture without inflating the
     * megabytes behind it (text chunks are skipped unread; the IDAT is read
     * only as far as the last row). */
    check_against("idat_bomb.png", "small.ppm", 0);
    check_against("text_bomb.png", "small.ppm", 0);
}

static void test_broken_chunks(void)
{
    check_refused("bad_crc_ihdr.png", TS_ERR_FORMAT, "checksum");
    check_refused("bad_crc_idat.png", TS_ERR_FORMAT, "CRC");
    check_refused("bad_len.png", TS_ERR_FORMAT, "PNG");
}

static void test_jpeg_lies(void)
{
    check_refused("sof_bigger.jpg", TS_ERR_FORMAT, "JPEG");
    check_refused("sof_smaller.jpg", TS_ERR_FORMAT, "JPEG");
    check_refused("scans_many.jpg", TS_ERR_FORMAT, "scans");
    /* The same construction with 77 scans is a valid mid-grey picture. */
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(decode_fixture("scans_few.jpg", NULL, &img, &info, &err), TS_OK);
    int grey = 1;
    for (size_t i = 0; img.pixels && i < (size_t)img.width * img.height * 3; i++)
        grey &= img.pixels[i] == 128;
    TS_CHECK(img.pixels && grey);
    ts_image_free(&img);
}

/* ------------------------------------------------------------------ masks and files */

static void test_mask(void)
{
    size_t len;
    uint8_t *data = fixture_read("rgba.png", &len);
    ts_image mask = {0}, ref = {0};
    ts_error err;
    /* Alpha present and not opaque: repaint = 255 - alpha. */
    TS_CHECK_INT_EQ(ts_image_decode_mask(data, len, NULL, &mask, NULL, &err), TS_OK);
    if (mask.pixels) {
        TS_CHECK_INT_EQ(mask.pixels[0], 255 - 128);
        TS_CHECK_INT_EQ(mask.pixels[3], 255);
        TS_CHECK_INT_EQ(mask.pixels[6], 0);
        TS_CHECK_INT_EQ(mask.pixels[1], mask.pixels[0]);
    }
    ts_image_free(&mask);
    free(data);
    /* No alpha: the grey level. */
    data = fixture_read("gray.png", &len);
    TS_CHECK_INT_EQ(ts_image_decode_mask(data, len, NULL, &mask, NULL, &err), TS_OK);
    TS_CHECK_INT_EQ(fixture_ppm("gray.ppm", &ref), 0);
    TS_CHECK_INT_EQ(image_max_diff(&mask, &ref), 0);
    ts_image_free(&mask);
    ts_image_free(&ref);
    free(data);
}

static void test_load_file(void)
{
    const char *root = getenv("TS_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/image/orient_3.jpg", root ? root : "tests/fixtures");
    ts_image img = {0};
    ts_image_info info;
    ts_error err;
    TS_CHECK_INT_EQ(ts_image_load_file(path, NULL, &img, &info, &err), TS_OK);
    TS_CHECK_INT_EQ(img.width, 64);
    ts_image_free(&img);
    snprintf(path, sizeof path, "%s/image/no-such-file.png", root ? root : "tests/fixtures");
    TS_CHECK_INT_EQ(ts_image_load_file(path, NULL, &img, &info, &err), TS_ERR_NOT_FOUND);
    ts_image_limits lim = ts_image_limits_default();
    lim.max_bytes = 10;
    snprintf(path, sizeof path, "%s/image/orient_3.jpg", root ? root : "tests/fixtures");
    TS_CHECK_INT_EQ(ts_image_load_file(path, &lim, &img, &info, &err), TS_ERR_LIMIT);
}

/* Deterministic byte mutations of every decodable fixture: whatever
 * happens, the answer is a status from the documented set, and a success
 * carries pixels. (ASan and UBSan watch the rest.) */
static void test_mutations(void)
{
    static const char *const names[] = {
        "interlaced.png",  "palette_trns.png", "rgb16.png",           "orient_6.jpg",
        "progressive.jpg", "cmyk_adobe.jpg",   "alpha_lossless.webp", "alpha_lossy.webp",
        "animated.webp",   "orient_8.webp",    "quadrants.heic",      "orient_5.png",
    };
    uint32_t seed = 12345;
    int ok = 0, refused = 0;
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        size_t len;
        uint8_t *orig = fixture_read(names[n], &len);
        if (!orig)
            continue;
        uint8_t *data = malloc(len);
        for (int round = 0; round < 60; round++) {
            memcpy(data, orig, len);
            int flips = 1 + round % 4;
            for (int k = 0; k < flips; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 8) % len;
                seed = seed * 1103515245u + 12345u;
                data[at] ^= (uint8_t)(1u << ((seed >> 16) % 8));
            }
            size_t cut = round % 5 == 4 ? len - (seed >> 4) % (len / 2 + 1) : len;
            ts_image img = {0};
            ts_error err;
            ts_status st = ts_image_decode(data, cut, NULL, &img, NULL, &err);
            TS_CHECK(st == TS_OK || st == TS_ERR_FORMAT || st == TS_ERR_UNSUPPORTED ||
                     st == TS_ERR_LIMIT);
            if (st == TS_OK) {
                TS_CHECK(img.pixels != NULL && img.width > 0 && img.height > 0);
                ok++;
            } else {
                TS_CHECK(img.pixels == NULL && err.message[0] != '\0');
                refused++;
            }
            ts_image_free(&img);
        }
        free(data);
        free(orig);
    }
    fprintf(stderr, "  mutations: %d decoded, %d refused\n", ok, refused);
    TS_CHECK(refused > 0);
}

int main(void)
{
    TS_RUN(test_exif_orientation_jpeg_all_eight);
    TS_RUN(test_exif_orientation_png_and_webp);
    TS_RUN(test_exif_written_by_hand);
    TS_RUN(test_zero_limits_mean_defaults);
    TS_RUN(test_orientation_counts_for_limits);
    TS_RUN(test_png_colour_types);
    TS_RUN(test_alpha_over_white_exact_values);
    TS_RUN(test_jpeg_kinds);
    TS_RUN(test_webp_kinds);
    TS_RUN(test_heic);
    TS_RUN(test_truncated);
    TS_RUN(test_format_from_magic);
    TS_RUN(test_size_limits_before_decode);
    TS_RUN(test_deflate_bombs);
    TS_RUN(test_broken_chunks);
    TS_RUN(test_jpeg_lies);
    TS_RUN(test_mask);
    TS_RUN(test_load_file);
    TS_RUN(test_mutations);
    return ts_test_finish();
}
