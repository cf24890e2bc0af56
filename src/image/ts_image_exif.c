/*
 * ts_image_exif.c - the one EXIF field we use: orientation (tag 0x0112 in
 * IFD0), read with libexif. Everything else in EXIF is ignored and never
 * copied to an output.
 */
#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>
#include <sodium.h>

#include "ts_image_codec.h"

/* EXIF blocks larger than this are not believed (a JPEG APP1 segment holds
 * at most 64 KB; other containers are held to the same). */
#define EXIF_MAX_BYTES 65536

int ts_image_exif_orientation(const uint8_t *data, size_t len)
{
    static const uint8_t header[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (!data || len < 8 || len > EXIF_MAX_BYTES)
        return 1;
    /* libexif wants the "Exif\0\0" prefix; PNG eXIf and WebP EXIF chunks
     * usually hold bare TIFF. */
    size_t n = len;
    uint8_t *buf = NULL;
    const uint8_t *src = data;
    if (memcmp(data, header, 6) != 0) {
        n = len + 6;
        buf = malloc(n);
        if (!buf)
            return 1;
        memcpy(buf, header, 6);
        memcpy(buf + 6, data, len);
        src = buf;
    }
    int orientation = 1;
    ExifData *ed = exif_data_new();
    if (ed) {
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_load_data(ed, src, (unsigned int)n);
        ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
        if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->size >= 2 && e->data) {
            int v = exif_get_short(e->data, exif_data_get_byte_order(ed));
            if (v >= 1 && v <= 8)
                orientation = v;
        }
        exif_data_unref(ed);
    }
    if (buf) {
        sodium_memzero(buf, n);
        free(buf);
    }
    return orientation;
}
