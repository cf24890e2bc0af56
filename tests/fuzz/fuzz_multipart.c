/*
 * fuzz_multipart.c - the multipart/form-data parser. The input is a
 * Content-Type header value, a newline, then the body: so the fuzzer works
 * on boundaries and bodies together (a boundary that is a prefix of data, one
 * that never closes, headers without end).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_multipart.h"

#define HEADER_MAX 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < HEADER_MAX ? size : HEADER_MAX);
    if (!nl)
        return 0;
    size_t hlen = (size_t)(nl - data);
    char header[HEADER_MAX + 1];
    memcpy(header, data, hlen);
    header[hlen] = '\0';

    /* The body in its own block, so reads past its end are caught. */
    size_t blen = size - hlen - 1;
    uint8_t *body = malloc(blen ? blen : 1);
    if (!body)
        return 0;
    memcpy(body, nl + 1, blen);

    ts_error err;
    char boundary[TS_MULTIPART_BOUNDARY_MAX + 1];
    if (ts_multipart_boundary(header, boundary, &err) == TS_OK) {
        ts_multipart_part parts[TS_MULTIPART_MAX_PARTS];
        int n = 0;
        if (ts_multipart_parse(body, blen, boundary, parts, TS_MULTIPART_MAX_PARTS, &n, &err) ==
            TS_OK) {
            unsigned sum = 0;
            for (int i = 0; i < n; i++) {
                sum += (unsigned)strlen(parts[i].name) + (unsigned)strlen(parts[i].content_type);
                for (size_t k = 0; k < parts[i].len; k++)
                    sum += parts[i].data[k];
            }
            (void)sum;
        }
    }
    free(body);
    return 0;
}
