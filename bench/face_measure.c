/*
 * face_measure.c - the figures behind the portrait check's defaults: faces
 * found per photo, and descriptor distances for the same person seen twice
 * and for different persons.
 *
 *     face_measure PHOTO...     (default: face-api's six demo photos)
 *
 * "Same person" pairs come from each face found in a photo against the same
 * face found again in (a) a re-cropped, 60%-scaled copy of its surroundings
 * and (b) that copy mirrored left to right: other pixels, same person.
 * "Different persons" pairs are all pairs of faces from the full photos
 * (the demo photos show different people in each; see docs/PORTRAIT.md).
 * Prints every count and distance, then a summary; never passes or fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_face.h"
#include "ts_image.h"

#define PHOTOS_MAX 16
#define FACES_MAX  256

typedef struct face_ref {
    int photo;
    float box[4];
    float d[TS_FACE_DESCRIPTOR_DIM];
} face_ref;

static face_ref all[FACES_MAX];
static int n_all;
static float same_d[2 * FACES_MAX], diff_d[FACES_MAX * FACES_MAX / 2];
static int n_same, n_diff;

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void mirror(ts_image *img)
{
    for (int y = 0; y < img->height; y++) {
        uint8_t *row = img->pixels + (size_t)y * img->width * 3;
        for (int x = 0; x < img->width / 2; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[x * 3 + c];
                row[x * 3 + c] = row[(img->width - 1 - x) * 3 + c];
                row[(img->width - 1 - x) * 3 + c] = t;
            }
    }
}

/* Descriptor of the face nearest the centre of img; 0 if none. */
static int describe_centre(const ts_face_models *m, const ts_image *img, float *d)
{
    static ts_face faces[TS_FACE_MAX];
    ts_face_options o = ts_face_options_default();
    o.threads = 2;
    int n = 0;
    ts_error err;
    if (ts_face_detect(m, img, &o, faces, TS_FACE_MAX, &n, &err) != TS_OK || n == 0)
        return 0;
    int best = -1;
    double best_dist = 1e18;
    for (int i = 0; i < n; i++) {
        double cx = faces[i].box[0] + faces[i].box[2] / 2 - img->width / 2.0;
        double cy = faces[i].box[1] + faces[i].box[3] / 2 - img->height / 2.0;
        if (faces[i].described && cx * cx + cy * cy < best_dist) {
            best_dist = cx * cx + cy * cy;
            best = i;
        }
    }
    if (best >= 0)
        memcpy(d, faces[best].descriptor, sizeof faces[best].descriptor);
    ts_face_wipe(faces, n);
    return best >= 0;
}

static void summary(const char *what, float *v, int n)
{
    if (n == 0) {
        printf("%s: none\n", what);
        return;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    printf("%s: %d pairs, min %.3f, 5%% %.3f, median %.3f, 95%% %.3f, max %.3f\n", what, n, v[0],
           v[n * 5 / 100], v[n / 2], v[n * 95 / 100], v[n - 1]);
}

int main(int argc, char **argv)
{
    static const char *demo[] = {"sample1.jpg", "sample2.jpg", "sample3.jpg",
                                 "sample4.jpg", "sample5.jpg", "sample6.jpg"};
    char paths[PHOTOS_MAX][4096];
    int n_photos = 0;
    if (argc > 1) {
        for (int i = 1; i < argc && n_photos < PHOTOS_MAX; i++)
            snprintf(paths[n_photos++], sizeof paths[0], "%s", argv[i]);
    } else {
        for (int i = 0; i < 6; i++)
            snprintf(paths[n_photos++], sizeof paths[0],
                     "%s/node_modules/@vladmandic/face-api/demo/%s", TS_SOURCE_ROOT, demo[i]);
    }
    const char *models_dir = getenv("TOGETHERSHOT_FACE_MODELS");
    ts_error err;
    ts_face_models *m;
    if (ts_face_models_load(models_dir ? models_dir : TS_SOURCE_ROOT "/models/face", &m, &err) !=
        TS_OK) {
        fprintf(stderr, "face_measure: %s\n", err.message);
        return 1;
    }

    static ts_face faces[TS_FACE_MAX];
    for (int p = 0; p < n_photos; p++) {
        ts_image img = {0};
        if (ts_image_load_file(paths[p], NULL, &img, NULL, &err) != TS_OK) {
            fprintf(stderr, "face_measure: %s: %s\n", paths[p], err.message);
            continue;
        }
        ts_face_options o = ts_face_options_default();
        o.threads = 2;
        int n = 0;
        if (ts_face_detect(m, &img, &o, faces, TS_FACE_MAX, &n, &err) != TS_OK) {
            fprintf(stderr, "face_measure: %s: %s\n", paths[p], err.message);
            ts_image_free(&img);
            continue;
        }
        printf("%s (%dx%d): %d faces, scores",
               strrchr(paths[p], '/') ? strrchr(paths[p], '/') + 1 : paths[p], img.width,
               img.height, n);
        for (int i = 0; i < n; i++)
            printf(" %.3f", faces[i].score);
        printf("\n");

        for (int i = 0; i < n && n_all < FACES_MAX; i++) {
            if (!faces[i].described)
                continue;
            face_ref *f = &all[n_all++];
            f->photo = p;
            memcpy(f->box, faces[i].box, sizeof f->box);
            memcpy(f->d, faces[i].descriptor, sizeof f->d);

            /* The same face again: its surroundings (2.2 x the box), scaled to 60%. */
            float cx = faces[i].box[0] + faces[i].box[2] / 2;
            float cy = faces[i].box[1] + faces[i].box[3] / 2;
            float side = 2.2f * fmaxf(faces[i].box[2], faces[i].box[3]);
            int x0 = (int)fmaxf(0, cx - side / 2), y0 = (int)fmaxf(0, cy - side / 2);
            int x1 = (int)fminf(img.width, cx + side / 2),
                y1 = (int)fminf(img.height, cy + side / 2);
            ts_image cut = {0}, small = {0};
            if (ts_image_crop(&img, x0, y0, x1 - x0, y1 - y0, &cut, &err) == TS_OK &&
                ts_image_resize(&cut, (int)((x1 - x0) * 0.6f), (int)((y1 - y0) * 0.6f), &small,
                                &err) == TS_OK) {
                float d[TS_FACE_DESCRIPTOR_DIM];
                if (describe_centre(m, &small, d))
                    same_d[n_same++] = ts_face_distance(f->d, d);
                mirror(&small);
                if (describe_centre(m, &small, d))
                    same_d[n_same++] = ts_face_distance(f->d, d);
            }
            ts_image_free(&cut);
            ts_image_free(&small);
        }
        ts_face_wipe(faces, n);
        ts_image_free(&img);
    }

    float nearest_other = 1e9f;
    int ni = -1, nj = -1;
    for (int i = 0; i < n_all; i++)
        for (int j = i + 1; j < n_all; j++) {
            float d = ts_face_distance(all[i].d, all[j].d);
            diff_d[n_diff++] = d;
            if (d < nearest_other) {
                nearest_other = d;
                ni = i;
                nj = j;
            }
        }
    printf("faces described: %d\n", n_all);
    summary("same person (rescaled crop, mirrored crop)", same_d, n_same);
    summary("different persons", diff_d, n_diff);
    if (ni >= 0)
        printf("closest different pair: photo %d face at (%.0f, %.0f) and photo %d face at "
               "(%.0f, %.0f): %.3f\n",
               all[ni].photo + 1, all[ni].box[0], all[ni].box[1], all[nj].photo + 1, all[nj].box[0],
               all[nj].box[1], nearest_other);
    for (float t = 0.40f; t <= 0.701f; t += 0.05f) {
        int fn = 0, fp = 0;
        for (int i = 0; i < n_same; i++)
            fn += same_d[i] > t;
        for (int i = 0; i < n_diff; i++)
            fp += diff_d[i] <= t;
        printf("threshold %.2f: same-person pairs missed %d/%d, different-person pairs matched "
               "%d/%d\n",
               t, fn, n_same, fp, n_diff);
    }
    ts_face_models_free(m);
    return 0;
}
