/*
 * ts_gallery.h - the protected-persons gallery: names, aliases and face
 * descriptors, never photos (POLICY.md P13).
 *
 * The file is JSON, small enough to read and diff:
 *
 *     {
 *       "format": "togethershot-gallery",
 *       "version": 1,
 *       "descriptor_dim": 128,
 *       "persons": [
 *         {"name": "Ada Example", "aliases": ["Ada E"],
 *          "descriptors": [[0.0123, -0.0456, ...128 numbers], ...]}
 *       ]
 *     }
 *
 * Each photo added for a person is kept as its own descriptor (at most
 * TS_GALLERY_DESCRIPTORS_MAX): a face matches the person when it is close
 * to any of them, which copes with photos at different ages and angles
 * better than one average. Nothing else is stored: no photo, no crop, no
 * landmark, no file name.
 *
 * Writes are atomic: a temporary file in the same folder, written, synced,
 * chmod 0600, renamed over the old one; the folder is created 0700 if
 * missing. A missing file loads as an empty gallery; any other problem is an
 * error and the caller keeps what it had.
 *
 * Names are compared in normalised form (ts_names.h): adding "ADA EXAMPLE"
 * again adds a descriptor to "Ada Example" instead of a second person.
 */
#ifndef TS_GALLERY_H
#define TS_GALLERY_H

#include "ts_error.h"
#include "ts_face_nets.h"
#include "ts_names.h"

#define TS_GALLERY_PERSONS_MAX     10000
#define TS_GALLERY_ALIASES_MAX     16
#define TS_GALLERY_DESCRIPTORS_MAX 32
#define TS_GALLERY_FILE_MAX        ((size_t)256 << 20)

typedef struct ts_gallery_person {
    char *name;
    char *aliases[TS_GALLERY_ALIASES_MAX];
    int n_aliases;
    float (*descriptors)[TS_FACE_DESCRIPTOR_DIM];
    int n_descriptors;
    /* Normalised name and aliases (name first), for prompt screening. */
    ts_names_key keys[1 + TS_GALLERY_ALIASES_MAX];
    int n_keys;
} ts_gallery_person;

typedef struct ts_gallery {
    ts_gallery_person *persons;
    int count;
} ts_gallery;

/* An empty gallery. */
ts_status ts_gallery_new(ts_gallery **out, ts_error *err);

/* Reads path (TS_OK with an empty gallery if it does not exist). */
ts_status ts_gallery_load(const char *path, ts_gallery **out, ts_error *err);

/* Writes atomically with mode 0600. */
ts_status ts_gallery_save(const ts_gallery *g, const char *path, ts_error *err);

void ts_gallery_free(ts_gallery *g);

/* Index of the person whose name normalises like name, or -1. */
int ts_gallery_find(const ts_gallery *g, const char *name);

/* Adds a person, or, if the name is already there, merges the aliases and
 * appends the descriptors. TS_ERR_LIMIT past the maxima above. */
ts_status ts_gallery_add(ts_gallery *g, const char *name, const char *const *aliases, int n_aliases,
                         const float (*descriptors)[TS_FACE_DESCRIPTOR_DIM], int n_descriptors,
                         ts_error *err);

/* Removes the person called name; returns 1 if one was removed. */
int ts_gallery_remove(ts_gallery *g, const char *name);

/* The person with a descriptor within threshold of d (the closest one), or
 * -1. *distance (may be NULL) receives the smallest distance seen, or -1 for
 * an empty gallery. */
int ts_gallery_match_face(const ts_gallery *g, const float *d, float threshold, float *distance);

/* The first person whose name or an alias occurs in the prompt, or -1. */
int ts_gallery_match_text(const ts_gallery *g, const ts_names_text *text);

#endif
