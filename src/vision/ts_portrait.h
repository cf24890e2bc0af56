/*
 * ts_portrait.h - the portrait-rights check (POLICY.md P13).
 *
 * Finds faces in an image, computes a 128-d descriptor for each, and compares
 * them with a gallery of protected persons chosen by the operator; screens
 * prompts for those persons' names and aliases. The gallery file holds names
 * and descriptors only, never photos. Descriptors of users' faces live in
 * memory for the duration of one check and are wiped afterwards.
 *
 *     ts_portrait *pc;
 *     ts_portrait_open(&opts, &pc, &err);
 *     ts_portrait_verdict v;
 *     ts_portrait_check_image(pc, &img, &v, &err);   // v.refused
 *     ts_portrait_check_prompt(pc, prompt, &v);
 *     ts_portrait_reload(pc, &err);                  // after `gallery add`
 *     ts_portrait_close(pc);
 *
 * Thread safety: checks may run from several threads at once; reload swaps
 * the gallery atomically.
 */
#ifndef TS_PORTRAIT_H
#define TS_PORTRAIT_H

#include "ts_error.h"
#include "ts_image.h"

typedef struct ts_portrait ts_portrait;

typedef struct ts_portrait_options {
    const char *models_dir;   /* folder with the face-api weight files */
    const char *gallery_path; /* gallery file; need not exist yet */
    float threshold;          /* descriptor distance at or below which faces match; <= 0: default */
} ts_portrait_options;

typedef struct ts_portrait_verdict {
    int refused;     /* 1 when a protected person was found */
    int faces_found; /* faces detected in the image (0 for prompt checks) */
} ts_portrait_verdict;

ts_status ts_portrait_open(const ts_portrait_options *opts, ts_portrait **out, ts_error *err);
void ts_portrait_close(ts_portrait *pc);

/* Re-reads the gallery file. On error the old gallery stays in force. */
ts_status ts_portrait_reload(ts_portrait *pc, ts_error *err);

/* Number of protected persons currently loaded. */
int ts_portrait_gallery_size(const ts_portrait *pc);

ts_status ts_portrait_check_image(ts_portrait *pc, const ts_image *img, ts_portrait_verdict *v,
                                  ts_error *err);
void ts_portrait_check_prompt(ts_portrait *pc, const char *prompt, ts_portrait_verdict *v);

#endif
