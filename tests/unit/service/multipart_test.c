/* multipart_test.c - ts_multipart against bodies built here part by part, as
 * browsers and HTTP clients send them, and against hostile variations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_multipart.h"
#include "ts_test.h"

typedef struct built {
    char *data;
    size_t len;
} built;

/* Builds a body with CRLF line ends from (name, filename or NULL, content). */
static built build(const char *boundary, int n, const char *const names[],
                   const char *const filenames[], const char *const contents[], const size_t lens[])
{
    built b = {malloc(1 << 16), 0};
    for (int i = 0; i < n; i++) {
        b.len +=
            (size_t)sprintf(b.data + b.len, "--%s\r\nContent-Disposition: form-data; name=\"%s\"",
                            boundary, names[i]);
        if (filenames[i])
            b.len += (size_t)sprintf(b.data + b.len, "; filename=\"%s\"\r\nContent-Type: image/png",
                                     filenames[i]);
        b.len += (size_t)sprintf(b.data + b.len, "\r\n\r\n");
        memcpy(b.data + b.len, contents[i], lens[i]);
        b.len += lens[i];
        b.len += (size_t)sprintf(b.data + b.len, "\r\n");
    }
    b.len += (size_t)sprintf(b.data + b.len, "--%s--\r\n", boundary);
    return b;
}

static void test_boundary_header(void)
{
    char b[TS_MULTIPART_BOUNDARY_MAX + 1];
    ts_error err;
    TS_CHECK_INT_EQ(ts_multipart_boundary("multipart/form-data; boundary=abc123", b, &err), TS_OK);
    TS_CHECK_STR_EQ(b, "abc123");
    TS_CHECK_INT_EQ(
        ts_multipart_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b'c\"", b, &err),
        TS_OK);
    TS_CHECK_STR_EQ(b, "a b'c");
    TS_CHECK_INT_EQ(ts_multipart_boundary("application/json", b, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK_INT_EQ(ts_multipart_boundary(NULL, b, &err), TS_ERR_UNSUPPORTED);
    TS_CHECK_INT_EQ(ts_multipart_boundary("multipart/form-data", b, &err), TS_ERR_FORMAT);
    TS_CHECK_INT_EQ(ts_multipart_boundary("multipart/form-data; boundary=", b, &err),
                    TS_ERR_FORMAT);
    char longb[200] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 71);
    TS_CHECK_INT_EQ(ts_multipart_boundary(longb, b, &err), TS_ERR_FORMAT);
    TS_CHECK_INT_EQ(ts_multipart_boundary("multipart/form-data; boundary=a<b", b, &err),
                    TS_ERR_FORMAT);
}

static void test_parts_round_trip(void)
{
    /* Binary content that contains CR, LF, "--" and a near-boundary. */
    static const char bin[] = "\x89PNG\r\n\x1a\n--XyZ\r\n--Xy\0\r\n";
    const char *names[] = {"prompt", "image[]", "image[]", "empty"};
    const char *files[] = {NULL, "a.png", "b.png", NULL};
    const char *contents[] = {"a cat\r\non two lines", bin, "second", ""};
    size_t lens[] = {strlen(contents[0]), sizeof bin - 1, 6, 0};
    built b = build("XyZ", 4, names, files, contents, lens);

    ts_multipart_part parts[8];
    int n = -1;
    ts_error err;
    ts_error_clear(&err);
    TS_CHECK_INT_EQ(ts_multipart_parse((uint8_t *)b.data, b.len, "XyZ", parts, 8, &n, &err), TS_OK);
    TS_CHECK_INT_EQ(n, 4);
    for (int i = 0; i < n && i < 4; i++) {
        TS_CHECK_STR_EQ(parts[i].name, names[i]);
        TS_CHECK_INT_EQ(parts[i].len, lens[i]);
        TS_CHECK(memcmp(parts[i].data, contents[i], lens[i]) == 0);
        TS_CHECK_INT_EQ(parts[i].is_file, files[i] != NULL);
    }
    TS_CHECK_STR_EQ(parts[1].content_type, "image/png");
    TS_CHECK_STR_EQ(parts[0].content_type, "");

    /* A preamble before the first boundary is skipped. */
    char *pre = malloc(b.len + 32);
    size_t plen = (size_t)sprintf(pre, "ignore me\r\n");
    memcpy(pre + plen, b.data, b.len);
    TS_CHECK_INT_EQ(ts_multipart_parse((uint8_t *)pre, plen + b.len, "XyZ", parts, 8, &n, &err),
                    TS_OK);
    TS_CHECK_INT_EQ(n, 4);

    /* Too many parts for the caller's array. */
    TS_CHECK_INT_EQ(ts_multipart_parse((uint8_t *)b.data, b.len, "XyZ", parts, 3, &n, &err),
                    TS_ERR_LIMIT);

    /* Every truncation is an error, never a crash or a silent partial form. */
    for (size_t cut = 0; cut + 4 < b.len; cut++) {
        ts_status st = ts_multipart_parse((uint8_t *)b.data, cut, "XyZ", parts, 8, &n, &err);
        TS_CHECK(st == TS_ERR_FORMAT);
    }
    free(pre);
    free(b.data);
}

static void test_hostile(void)
{
    ts_multipart_part parts[4];
    int n;
    ts_error err;
    static const char *const bad[] = {
        "",
        "no boundary here",
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue",       /* no end */
        "--B\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--B--",                /* no disposition */
        "--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--B--", /* not form-data */
        "--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--",              /* no name */
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nvalue\r\n--B--",  /* no blank line */
        "--BX\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ts_error_clear(&err);
        ts_status st =
            ts_multipart_parse((const uint8_t *)bad[i], strlen(bad[i]), "B", parts, 4, &n, &err);
        TS_CHECK(st == TS_ERR_FORMAT);
        TS_CHECK(err.message[0] != '\0');
    }

    /* A field name longer than the limit. */
    char body[512];
    char name[100];
    memset(name, 'n', 99);
    name[99] = '\0';
    int len =
        snprintf(body, sizeof body,
                 "--B\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\nv\r\n--B--", name);
    TS_CHECK_INT_EQ(ts_multipart_parse((const uint8_t *)body, (size_t)len, "B", parts, 4, &n, &err),
                    TS_ERR_FORMAT);

    /* Part headers beyond 8 KiB. */
    size_t big = 20000;
    char *hb = malloc(big + 64);
    size_t hl = (size_t)sprintf(hb, "--B\r\nX-Pad: ");
    memset(hb + hl, 'p', big);
    hl += big;
    hl += (size_t)sprintf(hb + hl, "\r\n\r\nv\r\n--B--");
    TS_CHECK_INT_EQ(ts_multipart_parse((const uint8_t *)hb, hl, "B", parts, 4, &n, &err),
                    TS_ERR_FORMAT);
    free(hb);

    /* LF-only part headers (some hand-written clients) are tolerated. */
    static const char lf[] = "--B\r\nContent-Disposition: form-data; name=\"a\"\n\nxy\r\n--B--";
    TS_CHECK_INT_EQ(ts_multipart_parse((const uint8_t *)lf, sizeof lf - 1, "B", parts, 4, &n, &err),
                    TS_OK);
    TS_CHECK_INT_EQ(n, 1);
    TS_CHECK_INT_EQ(parts[0].len, 2);
}

int main(void)
{
    TS_RUN(test_boundary_header);
    TS_RUN(test_parts_round_trip);
    TS_RUN(test_hostile);
    return ts_test_finish();
}
