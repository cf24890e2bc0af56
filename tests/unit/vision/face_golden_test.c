/*
 * face_golden_test.c - the C face pipeline against face-api's own
 * JavaScript (tools/vision/make_golden.mjs, TensorFlow.js cpu backend) on
 * the same pixels: every reference face is found with box IoU >= 0.9, and
 * descriptors agree with cosine >= 0.99 - both end to end and when the net
 * is given the reference's own aligned crop. Landmarks are checked to lie
 * within 2% of the face size. Last, the detector's skipping of the padding
 * that squares a picture is held to the same picture framed in black.
 */
#include <jansson.h>
#include <math.h>

#include "ts_face.h"
#include "ts_test.h"
#include "vision_fixture.h"

static ts_face_models *models;

static double iou(const float *a, const double *b)
{
    double x0 = fmax(a[0], b[0]), y0 = fmax(a[1], b[1]);
    double x1 = fmin(a[0] + a[2], b[0] + b[2]), y1 = fmin(a[1] + a[3], b[1] + b[3]);
    double inter = fmax(0, x1 - x0) * fmax(0, y1 - y0);
    return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

static double cosine(const float *a, const double *b)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < TS_FACE_DESCRIPTOR_DIM; i++) {
        ab += a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

static void check_photo(const char *name, int threads)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vision/%.*s.golden.json", vision_fixtures(),
             (int)(strlen(name) - 5), name);
    json_error_t jerr;
    json_t *golden = json_load_file(path, 0, &jerr);
    TS_CHECK(golden != NULL);
    ts_image img = {0};
    TS_CHECK(vision_load_webp(name, &img));
    if (!golden || !img.pixels)
        return;
    TS_CHECK_INT_EQ(json_integer_value(json_object_get(golden, "width")), img.width);

    ts_face faces[TS_FACE_MAX];
    int n = 0;
    ts_error err;
    ts_face_options o = ts_face_options_default();
    o.threads = threads;
    TS_CHECK_INT_EQ(ts_face_detect(models, &img, &o, faces, TS_FACE_MAX, &n, &err), TS_OK);
    json_t *ref = json_object_get(golden, "faces");
    TS_CHECK_INT_EQ(n, json_array_size(ref));

    for (size_t r = 0; r < json_array_size(ref); r++) {
        json_t *rf = json_array_get(ref, r);
        double box[4], rect[4], desc[TS_FACE_DESCRIPTOR_DIM];
        for (int k = 0; k < 4; k++) {
            box[k] = json_number_value(json_array_get(json_object_get(rf, "box"), k));
            rect[k] = json_number_value(json_array_get(json_object_get(rf, "aligned_rect"), k));
        }
        for (int k = 0; k < TS_FACE_DESCRIPTOR_DIM; k++)
            desc[k] = json_number_value(json_array_get(json_object_get(rf, "descriptor"), k));

        /* The best-overlapping C face for this reference face. */
        int best = -1;
        double best_iou = 0;
        for (int i = 0; i < n; i++)
            if (iou(faces[i].box, box) > best_iou) {
                best_iou = iou(faces[i].box, box);
                best = i;
            }
        fprintf(stderr, "  %s face %zu: IoU %.6f", name, r, best_iou);
        TS_CHECK(best_iou >= 0.9);
        if (best < 0)
            continue;
        TS_CHECK_NEAR(faces[best].score, json_number_value(json_object_get(rf, "score")), 0.02);

        double worst = 0;
        json_t *lms = json_object_get(rf, "landmarks");
        for (int k = 0; k < TS_FACE_LANDMARKS; k++) {
            double dx = faces[best].landmarks[k][0] -
                        json_number_value(json_array_get(json_array_get(lms, k), 0));
            double dy = faces[best].landmarks[k][1] -
                        json_number_value(json_array_get(json_array_get(lms, k), 1));
            worst = fmax(worst, hypot(dx, dy));
        }
        TS_CHECK(worst <= 0.02 * box[2] + 0.5);

        TS_CHECK(faces[best].described);
        double cos_e2e = cosine(faces[best].descriptor, desc);
        TS_CHECK(cos_e2e >= 0.99);

        /* The recognition net alone, on the reference's own crop. */
        int irect[4] = {(int)rect[0], (int)rect[1], (int)rect[2], (int)rect[3]};
        float own[TS_FACE_DESCRIPTOR_DIM];
        TS_CHECK_INT_EQ(ts_face_describe(models, &img, irect, own, threads, &err), TS_OK);
        double cos_net = cosine(own, desc);
        TS_CHECK(cos_net >= 0.99);
        fprintf(stderr, ", landmarks within %.2f px, cosine %.7f (net alone %.7f)\n", worst,
                cos_e2e, cos_net);
    }
    ts_face_wipe(faces, n);
    free(img.pixels);
    json_decref(golden);
}

static void test_group3(void)
{
    check_photo("group3.webp", 1);
}

static void test_group4_two_threads(void)
{
    check_photo("group4.webp", 2);
}

/* ---------------------------------------------------------------- padding */

/* The part (x, y, w, h) of src, alone (canvas 0) or at the top left of a
 * canvas_w x canvas_h black picture. */
static int cut(const ts_image *src, int x, int y, int w, int h, int canvas_w, int canvas_h,
               ts_image *out)
{
    int cw = canvas_w ? canvas_w : w, ch = canvas_h ? canvas_h : h;
    if (ts_image_alloc(out, cw, ch, NULL) != TS_OK)
        return 0;
    for (int r = 0; r < h; r++)
        memcpy(out->pixels + (size_t)r * cw * 3,
               src->pixels + ((size_t)(y + r) * src->width + x) * 3, (size_t)w * 3);
    return 1;
}

/* The detector skips the padding that squares its input (computing one row
 * or column of it per layer and copying it). Black pixels are zeros too,
 * but inside the picture nothing is skipped: a cut-out must give the very
 * detector output (scores bit for bit) of the same cut-out on a black canvas
 * one pixel short of the square, and faces that agree within rounding (the
 * boxes are scaled back by the picture's own size, rounded as face-api
 * does, so they differ by a fraction of a pixel). */
static void check_padding(int x, int y, int w, int h, int canvas_w, int canvas_h)
{
    ts_image photo = {0}, alone = {0}, framed = {0};
    TS_CHECK(vision_load_webp("group4.webp", &photo));
    if (!photo.pixels)
        return;
    TS_CHECK(cut(&photo, x, y, w, h, 0, 0, &alone));
    TS_CHECK(cut(&photo, x, y, w, h, canvas_w, canvas_h, &framed));
    ts_face a[TS_FACE_MAX], b[TS_FACE_MAX];
    int na = 0, nb = 0;
    ts_error err;
    ts_face_options o = ts_face_options_default();
    o.threads = 2;
    TS_CHECK_INT_EQ(ts_face_detect(models, &alone, &o, a, TS_FACE_MAX, &na, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_face_detect(models, &framed, &o, b, TS_FACE_MAX, &nb, &err), TS_OK);
    TS_CHECK(na >= 2);
    TS_CHECK_INT_EQ(na, nb);
    for (int i = 0; i < na && i < nb; i++) {
        TS_CHECK(memcmp(&a[i].score, &b[i].score, sizeof a[i].score) == 0);
        double box[4] = {b[i].box[0], b[i].box[1], b[i].box[2], b[i].box[3]};
        TS_CHECK(iou(a[i].box, box) >= 0.98);
        TS_CHECK(a[i].described && b[i].described);
        double desc[TS_FACE_DESCRIPTOR_DIM];
        for (int k = 0; k < TS_FACE_DESCRIPTOR_DIM; k++)
            desc[k] = b[i].descriptor[k];
        double c = cosine(a[i].descriptor, desc);
        fprintf(stderr, "  %dx%d cut-out face %d: score %.6f, IoU %.4f, cosine %.6f\n", w, h, i,
                a[i].score, iou(a[i].box, box), c);
        TS_CHECK(c >= 0.99);
    }
    ts_face_wipe(a, na);
    ts_face_wipe(b, nb);
    ts_image_free(&alone);
    ts_image_free(&framed);
    free(photo.pixels);
}

static void test_padding_skipped_like_black_pixels(void)
{
    check_padding(140, 0, 200, 359, 358, 359); /* portrait: columns skipped */
    check_padding(0, 40, 448, 200, 448, 447);  /* landscape: rows skipped */
}

int main(void)
{
    ts_error err;
    if (ts_face_models_load(vision_models_dir(), &models, &err) != TS_OK) {
        fprintf(stderr, "face models: %s\n", err.message);
        return 1;
    }
    TS_RUN(test_group3);
    TS_RUN(test_group4_two_threads);
    TS_RUN(test_padding_skipped_like_black_pixels);
    ts_face_models_free(models);
    return ts_test_finish();
}
