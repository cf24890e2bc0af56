/*
 * face_golden_test.c - the C face pipeline against face-api's own
 * JavaScript (tools/vision/make_golden.mjs, TensorFlow.js cpu backend) on
 * the same pixels: every reference face is found with box IoU >= 0.9, and
 * descriptors agree with cosine >= 0.99 - both end to end and when the net
 * is given the reference's own aligned crop. Landmarks are checked to lie
 * within 2% of the face size.
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

int main(void)
{
    ts_error err;
    if (ts_face_models_load(vision_models_dir(), &models, &err) != TS_OK) {
        fprintf(stderr, "face models: %s\n", err.message);
        return 1;
    }
    TS_RUN(test_group3);
    TS_RUN(test_group4_two_threads);
    ts_face_models_free(models);
    return ts_test_finish();
}
