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
 *
 * How it decides (details in ts_face.h, ts_names.h, ts_gallery.h and
 * docs/PORTRAIT.md):
 *   - faces: face-api's SSD MobileNet v1 detector (score > 0.5), its
 *     68-point landmarks and its 128-d recognition net, reimplemented in C
 *     and checked against the package's JavaScript. A face is a protected
 *     person when its Euclidean distance to any of that person's gallery
 *     descriptors is at most the threshold.
 *   - threshold: TS_PORTRAIT_DEFAULT_THRESHOLD (0.5) unless the operator
 *     sets one. Measured on face-api's demo photos (docs/PORTRAIT.md): the
 *     same face re-cropped, rescaled or mirrored stays at 0.05-0.42, while
 *     22 different persons (similar-looking young women, a hard case) lie at
 *     0.47-0.90 with 1.3% of pairs at or below 0.5 and 9.5% at or below
 *     face-api's customary 0.6. Every protected person adds a chance of a
 *     false refusal for each face checked, so the gallery's size argues for
 *     the stricter 0.5; recall across photos comes from enrolling several
 *     photos per person (each kept as its own descriptor) rather than from a
 *     looser threshold.
 *   - prompts: whole-name matching after folding case, accents, look-alike
 *     letters, digits standing for letters, punctuation and spacing
 *     (ts_names.h); a surname alone matches only if listed as an alias.
 *
 * Costs: the detector always runs at 512 x 512 whatever the photo size (a
 * 12-megapixel photo costs the same as a small one; a 4:3 photo about 5%
 * less than a square one, as the padding rows or columns of the detector's
 * square input are computed once and copied); landmarks and a
 * descriptor follow for each face, and are skipped when the gallery is
 * empty. Figures: docs/BENCHMARKS.md ("Portrait check").
 *
 * Files: models from opts.models_dir (default ts_portrait_default_models_dir),
 * the gallery from opts.gallery_path (default ts_portrait_default_gallery_path).
 */
#ifndef TS_PORTRAIT_H
#define TS_PORTRAIT_H

#include <stddef.h>

#include "ts_error.h"
#include "ts_image.h"

typedef struct ts_portrait ts_portrait;

/* Descriptor distance at or below which a face is taken for a protected
 * person (see above and docs/PORTRAIT.md for the measurements). */
#define TS_PORTRAIT_DEFAULT_THRESHOLD 0.5f

/* Detector score above which a region counts as a face (face-api's default). */
#define TS_PORTRAIT_DEFAULT_MIN_FACE_SCORE 0.5f

typedef struct ts_portrait_options {
    const char *models_dir;   /* folder with the face-api weight files; NULL: default */
    const char *gallery_path; /* gallery file; need not exist yet; NULL: default */
    float threshold;          /* descriptor distance at or below which faces match; <= 0: default */
    int threads;              /* threads per check; <= 0: 1 (the server runs checks in parallel) */
    float min_face_score;     /* <= 0: TS_PORTRAIT_DEFAULT_MIN_FACE_SCORE */
} ts_portrait_options;

typedef struct ts_portrait_verdict {
    int refused;     /* 1 when a protected person was found */
    int faces_found; /* faces detected in the image (0 for prompt checks) */
} ts_portrait_verdict;

ts_status ts_portrait_open(const ts_portrait_options *opts, ts_portrait **out, ts_error *err);
void ts_portrait_close(ts_portrait *pc);

/* Re-reads the gallery file. On error the old gallery stays in force. */
ts_status ts_portrait_reload(ts_portrait *pc, ts_error *err);

/* 1 when the gallery file's modification time or size differs from what
 * the last (re)load saw, so a server can poll it and call reload. */
int ts_portrait_gallery_changed(ts_portrait *pc);

/* Number of protected persons currently loaded. */
int ts_portrait_gallery_size(const ts_portrait *pc);

/* Faces in img against the gallery. An error (TS_ERR_ARG for an empty image,
 * TS_ERR_NOMEM) leaves v->refused 0: the caller must treat a failed check
 * as a failed job, never as a pass. */
ts_status ts_portrait_check_image(ts_portrait *pc, const ts_image *img, ts_portrait_verdict *v,
                                  ts_error *err);

/* Names and aliases in the prompt (UTF-8). Fails closed: a prompt that
 * cannot be screened (out of memory) comes back refused. */
void ts_portrait_check_prompt(ts_portrait *pc, const char *prompt, ts_portrait_verdict *v);

/* $TOGETHERSHOT_FACE_MODELS, else the folder scripts/setup.sh fills
 * (models/face in the source tree). */
const char *ts_portrait_default_models_dir(void);

/* $TOGETHERSHOT_GALLERY, else $XDG_DATA_HOME/togethershot/gallery.json, else
 * $HOME/.local/share/togethershot/gallery.json. Not under the service's
 * --data-dir: that folder holds ephemeral encrypted items and is cleared at
 * start. Writes into buf (size n); returns buf, or NULL if it does not fit
 * or no home is known. */
const char *ts_portrait_default_gallery_path(char *buf, size_t n);

#endif
