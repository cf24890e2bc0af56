/* ts_multipart.c - multipart/form-data over an in-memory body.
 *
 * Shape of a body (CRLF line ends; LF alone is tolerated in part headers):
 *
 *     [preamble] --B CRLF headers CRLF CRLF data CRLF --B CRLF ... data CRLF --B-- [epilogue]
 *
 * A part's data ends right before the next "CRLF--B"; that delimiter is
 * searched with memmem, so the cost is linear in the body.
 */
#include "ts_multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define HEADERS_MAX 8192

static int is_bchar(char c)
{
    /* RFC 2046 bcharsnospace plus space (not allowed last). */
    return isalnum((unsigned char)c) || strchr("'()+_,-./:=? ", c) != NULL;
}

ts_status ts_multipart_boundary(const char *content_type, char out[TS_MULTIPART_BOUNDARY_MAX + 1],
                                ts_error *err)
{
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "the body must be multipart/form-data (or JSON for this endpoint)");
    const char *p = content_type + 19;
    while (*p) {
        while (*p == ';' || *p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "boundary=", 9) == 0) {
            p += 9;
            size_t n = 0;
            int quoted = *p == '"';
            if (quoted)
                p++;
            while (p[n] && (quoted ? p[n] != '"' : (p[n] != ';' && p[n] != ' ')))
                n++;
            if (n == 0 || n > TS_MULTIPART_BOUNDARY_MAX || (quoted && p[n] != '"'))
                break;
            for (size_t i = 0; i < n; i++)
                if (!is_bchar(p[i]))
                    goto bad;
            if (p[n - 1] == ' ')
                goto bad;
            memcpy(out, p, n);
            out[n] = '\0';
            return TS_OK;
        }
        while (*p && *p != ';')
            p++;
    }
bad:
    return ts_error_set(err, TS_ERR_FORMAT,
                        "the multipart Content-Type has no valid boundary parameter");
}

/* Copies the value of param (name="value" or name=value) from a header
 * line into out; returns 1 when found. */
static int header_param(const char *line, size_t len, const char *param, char *out, size_t cap,
                        int *found_empty)
{
    size_t plen = strlen(param);
    for (size_t i = 0; i + plen + 1 <= len; i++) {
        if ((i == 0 || line[i - 1] == ';' || line[i - 1] == ' ' || line[i - 1] == '\t') &&
            strncasecmp(line + i, param, plen) == 0 && line[i + plen] == '=') {
            size_t j = i + plen + 1, n = 0;
            int quoted = j < len && line[j] == '"';
            if (quoted)
                j++;
            while (j + n < len && (quoted ? line[j + n] != '"' : line[j + n] != ';'))
                n++;
            if (n >= cap)
                return -1;
            memcpy(out, line + j, n);
            out[n] = '\0';
            if (found_empty)
                *found_empty = n == 0;
            return 1;
        }
    }
    return 0;
}

static ts_status parse_headers(const uint8_t *h, size_t len, ts_multipart_part *part, ts_error *err)
{
    int have_disposition = 0;
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *eol = memchr(h + pos, '\n', len - pos);
        size_t end = eol ? (size_t)(eol - h) : len;
        size_t line_len = end - pos;
        const char *line = (const char *)h + pos;
        if (line_len && line[line_len - 1] == '\r')
            line_len--;
        for (size_t i = 0; i < line_len; i++)
            if (line[i] == '\0')
                return ts_error_set(err, TS_ERR_FORMAT, "a multipart part header contains NUL");

        if (line_len >= 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
            const char *v = line + 20;
            size_t vlen = line_len - 20;
            while (vlen && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            if (vlen < 9 || strncasecmp(v, "form-data", 9) != 0)
                return ts_error_set(err, TS_ERR_FORMAT,
                                    "a multipart part is not Content-Disposition: form-data");
            int r = header_param(v, vlen, "name", part->name, sizeof part->name, NULL);
            if (r < 0)
                return ts_error_set(err, TS_ERR_FORMAT,
                                    "a multipart field name is longer than %d bytes",
                                    TS_MULTIPART_NAME_MAX - 1);
            if (r == 0 || part->name[0] == '\0')
                return ts_error_set(err, TS_ERR_FORMAT, "a multipart part has no field name");
            char fname[8];
            int empty = 0;
            /* Only presence matters: file names are never used or stored. */
            part->is_file = header_param(v, vlen, "filename", fname, sizeof fname, &empty) != 0;
            have_disposition = 1;
        } else if (line_len >= 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
            const char *v = line + 13;
            size_t vlen = line_len - 13;
            while (vlen && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            if (vlen >= sizeof part->content_type)
                vlen = sizeof part->content_type - 1;
            memcpy(part->content_type, v, vlen);
            part->content_type[vlen] = '\0';
        }
        pos = end + 1;
    }
    if (!have_disposition)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "a multipart part has no Content-Disposition header");
    return TS_OK;
}

ts_status ts_multipart_parse(const uint8_t *body, size_t len, const char *boundary,
                             ts_multipart_part *parts, int max_parts, int *n_parts, ts_error *err)
{
    char delim[TS_MULTIPART_BOUNDARY_MAX + 5];
    size_t blen = strlen(boundary);
    *n_parts = 0;
    if (blen == 0 || blen > TS_MULTIPART_BOUNDARY_MAX)
        return ts_error_set(err, TS_ERR_FORMAT, "the multipart boundary is empty or too long");
    /* delim = CRLF "--" boundary; the first one may lack the CRLF. */
    delim[0] = '\r';
    delim[1] = '\n';
    delim[2] = '-';
    delim[3] = '-';
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 4;

    size_t pos;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        pos = dlen - 2;
    } else {
        const uint8_t *first = memmem(body, len, delim, dlen);
        if (!first)
            return ts_error_set(err, TS_ERR_FORMAT,
                                "the multipart body does not contain its boundary");
        pos = (size_t)(first - body) + dlen;
    }

    for (;;) {
        /* After a delimiter: "--" ends the body, else (whitespace) CRLF. */
        if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-')
            break;
        while (pos < len && (body[pos] == ' ' || body[pos] == '\t'))
            pos++;
        if (len - pos >= 2 && body[pos] == '\r' && body[pos + 1] == '\n')
            pos += 2;
        else if (pos < len && body[pos] == '\n')
            pos += 1;
        else
            return ts_error_set(err, TS_ERR_FORMAT,
                                "the multipart body ends without its closing boundary");

        if (*n_parts == max_parts)
            return ts_error_set(err, TS_ERR_LIMIT, "the form has more than %d fields", max_parts);

        /* Part headers end at the first empty line. */
        size_t hlimit = len - pos < HEADERS_MAX ? len - pos : HEADERS_MAX;
        const uint8_t *hend = memmem(body + pos, hlimit, "\r\n\r\n", 4);
        size_t hskip = 4;
        if (len - pos >= 2 && body[pos] == '\r' && body[pos + 1] == '\n') {
            hend = body + pos; /* no headers at all */
            hskip = 2;
        }
        if (!hend) {
            hend = memmem(body + pos, hlimit, "\n\n", 2);
            hskip = 2;
        }
        if (!hend)
            return ts_error_set(err, TS_ERR_FORMAT,
                                "a multipart part's headers are missing, unterminated or "
                                "longer than %d bytes",
                                HEADERS_MAX);
        ts_multipart_part *part = &parts[*n_parts];
        memset(part, 0, sizeof *part);
        ts_status st = parse_headers(body + pos, (size_t)(hend - (body + pos)), part, err);
        if (st != TS_OK)
            return st;
        pos = (size_t)(hend - body) + hskip;

        const uint8_t *next = memmem(body + pos, len - pos, delim, dlen);
        if (!next)
            return ts_error_set(err, TS_ERR_FORMAT,
                                "the multipart body ends without its closing boundary");
        part->data = body + pos;
        part->len = (size_t)(next - (body + pos));
        (*n_parts)++;
        pos = (size_t)(next - body) + dlen;
    }
    return TS_OK;
}
