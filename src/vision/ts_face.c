/* ts_face.c - face-api's detect -> landmarks -> descriptor pipeline. */
#include "ts_face.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define NMS_IOU 0.5

ts_face_options ts_face_options_default(void)
{
    return (ts_face_options){.min_confidence = 0.5f, .threads = 1, .describe = 1};
}

ts_status ts_face_models_load(const char *dir, ts_face_models **out, ts_error *err)
{
    *out = NULL;
    ts_face_models *m = calloc(1, sizeof *m);
    if (!m)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory loading the face models");
    ts_status st = ts_face_ssd_load(dir, &m->ssd, err);
    if (st == TS_OK)
        st = ts_face_landmark_load(dir, &m->landmarks, err);
    if (st == TS_OK)
        st = ts_face_recog_load(dir, &m->recog, err);
    if (st != TS_OK) {
        ts_face_models_free(m);
        return st;
    }
    *out = m;
    return TS_OK;
}

void ts_face_models_free(ts_face_models *m)
{
    if (!m)
        return;
    ts_face_ssd_free(&m->ssd);
    ts_face_landmark_free(&m->landmarks);
    ts_face_recog_free(&m->recog);
    free(m);
}

/* ---------------------------------------------------------------- input sampling */

typedef enum norm_kind {
    NORM_SSD,  /* v / 127.5 - 1 */
    NORM_MEAN, /* (v - mean_rgb) / 255 */
} norm_kind;

/* JavaScript's Math.round (halves go up). */
static double js_round(double v)
{
    return floor(v + 0.5);
}

/* One axis of TF's legacy bilinear rule: output index -> the two source
 * taps (-1 where a tap falls in the padding) and the weight of the second. */
typedef struct taps {
    int t0, t1;
    double frac;
} taps;

static void axis_taps(int size, int side, double ratio, int off, int len, taps *t)
{
    for (int i = 0; i < size; i++) {
        double f = ratio * i;
        int a = (int)floor(f);
        int b = (int)ceil(f) < side - 1 ? (int)ceil(f) : side - 1;
        t[i].frac = f - a;
        a -= off;
        b -= off;
        t[i].t0 = a >= 0 && a < len ? a : -1;
        t[i].t1 = b >= 0 && b < len ? b : -1;
    }
}

/* Fills x (size, size, 3) from the crop (cx, cy, cw, ch) of img as face-api
 * does: pad the crop with zeros to a square (centred, or at the end), then
 * resample the square with TF's legacy bilinear rule, then normalise. The
 * padded square is never built: each tap reads the image or a zero. Rows
 * below the picture and columns right of it that fall wholly in the
 * padding are one value repeated: they are filled by copying and marked as
 * repeated in x (see ts_fmap), so the detector's convolutions skip most of
 * them. */
static ts_status sample_square(const ts_image *img, int cx, int cy, int cw, int ch, int centred,
                               int size, norm_kind norm, ts_fmap *x, ts_error *err)
{
    ts_status st = ts_fmap_alloc(x, size, size, 3, err);
    if (st != TS_OK)
        return st;
    taps *tx = malloc((size_t)size * 2 * sizeof *tx);
    if (!tx) {
        ts_fmap_free(x);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory sampling a face input");
    }
    taps *ty = tx + size;
    int side = cw > ch ? cw : ch;
    int diff = abs(cw - ch);
    int append = (int)js_round(diff * (centred ? 0.5 : 1.0));
    int before = diff - append; /* padding before the picture, on the short axis */
    int off_x = ch > cw ? before : 0, off_y = cw > ch ? before : 0;
    double ratio = (double)side / size;
    axis_taps(size, side, ratio, off_x, cw, tx);
    axis_taps(size, side, ratio, off_y, ch, ty);
    static const float mean[3] = {TS_FACE_MEAN_R, TS_FACE_MEAN_G, TS_FACE_MEAN_B};
    float zero[3]; /* the normalised value of a padding pixel */
    for (int k = 0; k < 3; k++)
        zero[k] = norm == NORM_SSD ? 0.0f / 127.5f - 1.0f : (0.0f - mean[k]) / 255.0f;

    /* The runs of rows at the bottom and of columns at the right whose taps
     * both lie in the padding. */
    int blank_from = size, blank_col_from = size;
    while (blank_from > 0 && ty[blank_from - 1].t0 < 0 && ty[blank_from - 1].t1 < 0)
        blank_from--;
    while (blank_col_from > 0 && tx[blank_col_from - 1].t0 < 0 && tx[blank_col_from - 1].t1 < 0)
        blank_col_from--;
    int last = blank_from < size ? blank_from + 1 : size; /* rows computed */

    size_t stride = (size_t)img->width * 3;
    const uint8_t *origin = img->pixels + (size_t)cy * stride + (size_t)cx * 3;
    for (int r = 0; r < last; r++) {
        const uint8_t *row0 = ty[r].t0 >= 0 ? origin + (size_t)ty[r].t0 * stride : NULL;
        const uint8_t *row1 = ty[r].t1 >= 0 ? origin + (size_t)ty[r].t1 * stride : NULL;
        double dy = ty[r].frac;
        float *out = x->data + (size_t)r * size * 3;
        for (int c = 0; c < size; c++, out += 3) {
            int x0 = tx[c].t0, x1 = tx[c].t1;
            if ((!row0 && !row1) || (x0 < 0 && x1 < 0)) {
                memcpy(out, zero, sizeof zero);
                continue;
            }
            const uint8_t *p[4] = {
                row0 && x0 >= 0 ? row0 + (size_t)x0 * 3 : NULL,
                row0 && x1 >= 0 ? row0 + (size_t)x1 * 3 : NULL,
                row1 && x0 >= 0 ? row1 + (size_t)x0 * 3 : NULL,
                row1 && x1 >= 0 ? row1 + (size_t)x1 * 3 : NULL,
            };
            double dx = tx[c].frac;
            for (int k = 0; k < 3; k++) {
                double tl = p[0] ? p[0][k] : 0, tr = p[1] ? p[1][k] : 0;
                double bl = p[2] ? p[2][k] : 0, br = p[3] ? p[3][k] : 0;
                double top = tl + (tr - tl) * dx, bottom = bl + (br - bl) * dx;
                float v = (float)(top + (bottom - top) * dy);
                out[k] = norm == NORM_SSD ? v / 127.5f - 1.0f : (v - mean[k]) / 255.0f;
            }
        }
    }
    for (int r = last; r < size; r++)
        memcpy(x->data + (size_t)r * size * 3, x->data + (size_t)blank_from * size * 3,
               (size_t)size * 3 * sizeof(float));
    if (size - blank_from >= 2) {
        x->rep_from = blank_from;
        x->rep_to = size;
    }
    if (size - blank_col_from >= 2) {
        x->rep_col_from = blank_col_from;
        x->rep_col_to = size;
    }
    free(tx);
    return TS_OK;
}

/* face-api's Box.clipAtImageBorders followed by floor(). */
static void clip_floor(double x, double y, double w, double h, int iw, int ih, int out[4])
{
    double cx = x > 0 ? x : 0, cy = y > 0 ? y : 0;
    double nw = x + w - cx, nh = y + h - cy;
    if (nw > iw - cx)
        nw = iw - cx;
    if (nh > ih - cy)
        nh = ih - cy;
    out[0] = (int)floor(cx);
    out[1] = (int)floor(cy);
    out[2] = (int)floor(nw);
    out[3] = (int)floor(nh);
}

/* ---------------------------------------------------------------- detection */

typedef struct cand {
    float score;
    int index;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index - y->index;
}

static double box_iou(const float *a, const float *b)
{
    double ay0 = fmin(a[0], a[2]), ax0 = fmin(a[1], a[3]), ay1 = fmax(a[0], a[2]),
           ax1 = fmax(a[1], a[3]);
    double by0 = fmin(b[0], b[2]), bx0 = fmin(b[1], b[3]), by1 = fmax(b[0], b[2]),
           bx1 = fmax(b[1], b[3]);
    double area_a = (ay1 - ay0) * (ax1 - ax0), area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0 || area_b <= 0)
        return 0.0;
    double ih = fmax(fmin(ay1, by1) - fmax(ay0, by0), 0.0);
    double iw = fmax(fmin(ax1, bx1) - fmax(ax0, bx0), 0.0);
    return ih * iw / (area_a + area_b - ih * iw);
}

/* Greedy non-maximum suppression over the candidates above min_score. */
static int nms(const float *boxes, const float *scores, float min_score, int max_out, int *selected)
{
    cand *c = malloc(TS_FACE_SSD_ANCHORS * sizeof *c);
    if (!c)
        return -1;
    int n = 0;
    for (int i = 0; i < TS_FACE_SSD_ANCHORS; i++)
        if (scores[i] > min_score)
            c[n++] = (cand){scores[i], i};
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    int kept = 0;
    for (int i = 0; i < n && kept < max_out; i++) {
        int ok = 1;
        for (int j = kept - 1; j >= 0 && ok; j--)
            if (box_iou(boxes + (size_t)c[i].index * 4, boxes + (size_t)selected[j] * 4) > NMS_IOU)
                ok = 0;
        if (ok)
            selected[kept++] = c[i].index;
    }
    free(c);
    return kept;
}

static ts_status detect_boxes(const ts_face_models *m, const ts_image *img, float min_score,
                              int threads, ts_face *faces, int max, int *count, ts_error *err)
{
    ts_fmap x = {0};
    float *boxes = malloc((size_t)TS_FACE_SSD_ANCHORS * 5 * sizeof(float));
    int *selected = malloc((size_t)(max > 0 ? max : 1) * sizeof(int));
    if (!boxes || !selected) {
        free(boxes);
        free(selected);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory in face detection");
    }
    float *scores = boxes + (size_t)TS_FACE_SSD_ANCHORS * 4;

    ts_status st =
        sample_square(img, 0, 0, img->width, img->height, 0, TS_FACE_SSD_INPUT, NORM_SSD, &x, err);
    if (st == TS_OK)
        st = ts_face_ssd_forward(&m->ssd, &x, boxes, scores, threads, err);
    ts_fmap_free(&x);
    if (st != TS_OK)
        goto done;

    int kept = nms(boxes, scores, min_score, max, selected);
    if (kept < 0) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory in face detection");
        goto done;
    }
    /* Boxes are relative to the padded square; scale them back to the image. */
    double scale =
        (double)TS_FACE_SSD_INPUT / (img->width > img->height ? img->width : img->height);
    double pad_x = TS_FACE_SSD_INPUT / js_round(img->width * scale);
    double pad_y = TS_FACE_SSD_INPUT / js_round(img->height * scale);
    for (int i = 0; i < kept; i++) {
        const float *b = boxes + (size_t)selected[i] * 4;
        double top = fmax(0.0, b[0]) * pad_y, bottom = fmin(1.0, b[2]) * pad_y;
        double left = fmax(0.0, b[1]) * pad_x, right = fmin(1.0, b[3]) * pad_x;
        ts_face *f = &faces[i];
        memset(f, 0, sizeof *f);
        f->score = scores[selected[i]];
        f->box[0] = (float)(left * img->width);
        f->box[1] = (float)(top * img->height);
        f->box[2] = (float)((right - left) * img->width);
        f->box[3] = (float)((bottom - top) * img->height);
    }
    *count = kept;
done:
    sodium_memzero(boxes, (size_t)TS_FACE_SSD_ANCHORS * 5 * sizeof(float));
    free(boxes);
    free(selected);
    return st;
}

/* ---------------------------------------------------------------- landmarks and descriptors */

ts_status ts_face_landmarks(const ts_face_models *m, const ts_image *img, const float box[4],
                            float out[TS_FACE_LANDMARKS][2], int crop_wh[2], int threads,
                            ts_error *err)
{
    int r[4];
    clip_floor(box[0], box[1], box[2], box[3], img->width, img->height, r);
    if (r[2] <= 0 || r[3] <= 0)
        return ts_error_set(err, TS_ERR_ARG, "face box lies outside the image");
    ts_fmap x = {0};
    float raw[136];
    ts_status st =
        sample_square(img, r[0], r[1], r[2], r[3], 1, TS_FACE_LANDMARK_INPUT, NORM_MEAN, &x, err);
    if (st == TS_OK)
        st = ts_face_landmark_forward(&m->landmarks, &x, raw, threads, err);
    ts_fmap_free(&x);
    if (st != TS_OK)
        return st;

    /* Undo the centred padding: relative to the crop, then to the image,
     * shifted by the (unclipped) detection box as face-api does. */
    float s = (float)TS_FACE_LANDMARK_INPUT / (float)(r[2] > r[3] ? r[2] : r[3]);
    float sw = r[2] * s, sh = r[3] * s;
    float pad_x = sw < sh ? fabsf(sw - sh) / 2 : 0, pad_y = sh < sw ? fabsf(sw - sh) / 2 : 0;
    for (int i = 0; i < TS_FACE_LANDMARKS; i++) {
        float rx = (raw[2 * i] * TS_FACE_LANDMARK_INPUT - pad_x) / sw;
        float ry = (raw[2 * i + 1] * TS_FACE_LANDMARK_INPUT - pad_y) / sh;
        out[i][0] = (float)((double)rx * r[2] + box[0]);
        out[i][1] = (float)((double)ry * r[3] + box[1]);
    }
    sodium_memzero(raw, sizeof raw);
    if (crop_wh) {
        crop_wh[0] = r[2];
        crop_wh[1] = r[3];
    }
    return TS_OK;
}

static void centre(const float lm[TS_FACE_LANDMARKS][2], int from, int to, double c[2])
{
    c[0] = c[1] = 0;
    for (int i = from; i < to; i++) {
        c[0] += lm[i][0];
        c[1] += lm[i][1];
    }
    c[0] /= to - from;
    c[1] /= to - from;
}

void ts_face_align(const float lm[TS_FACE_LANDMARKS][2], int crop_w, int crop_h, int rect[4])
{
    /* Points 36-41: left eye, 42-47: right eye, 48-67: mouth. */
    double le[2], re[2], mo[2];
    centre(lm, 36, 42, le);
    centre(lm, 42, 48, re);
    centre(lm, 48, 68, mo);
    double d = (hypot(mo[0] - le[0], mo[1] - le[1]) + hypot(mo[0] - re[0], mo[1] - re[1])) / 2;
    int size = (int)floor(d / 0.45);
    double ref_x = (le[0] + re[0] + mo[0]) / 3, ref_y = (le[1] + re[1] + mo[1]) / 3;
    int x = (int)floor(fmax(0.0, ref_x - 0.5 * size));
    int y = (int)floor(fmax(0.0, ref_y - 0.43 * size));
    rect[0] = x;
    rect[1] = y;
    rect[2] = size < crop_w + x ? size : crop_w + x;
    rect[3] = size < crop_h + y ? size : crop_h + y;
}

ts_status ts_face_describe(const ts_face_models *m, const ts_image *img, const int rect[4],
                           float out[TS_FACE_DESCRIPTOR_DIM], int threads, ts_error *err)
{
    int r[4];
    clip_floor(rect[0], rect[1], rect[2], rect[3], img->width, img->height, r);
    if (r[2] <= 0 || r[3] <= 0)
        return ts_error_set(err, TS_ERR_ARG, "aligned face box lies outside the image");
    ts_fmap x = {0};
    ts_status st =
        sample_square(img, r[0], r[1], r[2], r[3], 1, TS_FACE_RECOG_INPUT, NORM_MEAN, &x, err);
    if (st == TS_OK)
        st = ts_face_recog_forward(&m->recog, &x, out, threads, err);
    ts_fmap_free(&x);
    return st;
}

typedef struct describe_job {
    const ts_face_models *m;
    const ts_image *img;
    ts_face *faces;
    int threads;
    ts_status status; /* first failure, under lock */
    ts_error err;
    pthread_mutex_t lock;
} describe_job;

/* Landmarks, alignment and descriptor for faces[begin..end). A box too thin
 * to cut leaves its face found but not described. */
static void describe_part(void *ctx, int begin, int end)
{
    describe_job *j = ctx;
    for (int i = begin; i < end; i++) {
        ts_face *f = &j->faces[i];
        int crop[2];
        ts_error local;
        ts_error_clear(&local);
        ts_status st =
            ts_face_landmarks(j->m, j->img, f->box, f->landmarks, crop, j->threads, &local);
        if (st == TS_OK) {
            ts_face_align(f->landmarks, crop[0], crop[1], f->aligned);
            st = ts_face_describe(j->m, j->img, f->aligned, f->descriptor, j->threads, &local);
            f->described = st == TS_OK;
        }
        if (st == TS_ERR_ARG)
            continue;
        if (st != TS_OK) {
            pthread_mutex_lock(&j->lock);
            if (j->status == TS_OK) {
                j->status = st;
                j->err = local;
            }
            pthread_mutex_unlock(&j->lock);
            return;
        }
    }
}

ts_status ts_face_detect(const ts_face_models *m, const ts_image *img, const ts_face_options *o,
                         ts_face *faces, int max, int *count, ts_error *err)
{
    *count = 0;
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return ts_error_set(err, TS_ERR_ARG, "face detection needs a non-empty image");
    ts_face_options d = o ? *o : ts_face_options_default();
    if (d.threads < 1)
        d.threads = 1;
    if (max > TS_FACE_MAX)
        max = TS_FACE_MAX;

    int n = 0;
    ts_status st = detect_boxes(m, img, d.min_confidence, d.threads, faces, max, &n, err);
    if (st != TS_OK || !d.describe) {
        *count = st == TS_OK ? n : 0;
        return st;
    }
    /* Whole rounds of one face per thread, each face on one thread (cheaper
     * than splitting the small per-face layers); the faces left over, fewer
     * than the threads, one after the other with their layers split over
     * all threads, so no thread idles while another does a second face. */
    describe_job job = {.m = m, .img = img, .faces = faces, .threads = d.threads, .status = TS_OK};
    pthread_mutex_init(&job.lock, NULL);
    ts_error_clear(&job.err);
    int whole = d.threads >= 2 ? n / d.threads * d.threads : 0;
    if (whole > 0) {
        job.threads = 1;
        ts_face_parallel_for(d.threads, whole, describe_part, &job);
        job.threads = d.threads;
    }
    if (job.status == TS_OK)
        describe_part(&job, whole, n);
    pthread_mutex_destroy(&job.lock);
    st = job.status;
    if (st != TS_OK && err)
        *err = job.err;
    if (st != TS_OK) {
        ts_face_wipe(faces, n);
        return st;
    }
    *count = n;
    return TS_OK;
}

ts_status ts_face_describe_single(const ts_face_models *m, const ts_image *img,
                                  float out[TS_FACE_DESCRIPTOR_DIM], int threads, ts_error *err)
{
    ts_face *faces = malloc(TS_FACE_MAX * sizeof *faces);
    if (!faces)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory in face detection");
    ts_face_options o = ts_face_options_default();
    o.threads = threads;
    int n = 0;
    ts_status st = ts_face_detect(m, img, &o, faces, TS_FACE_MAX, &n, err);
    if (st != TS_OK) {
        /* the error says why */
    } else if (n == 0) {
        st = ts_error_set(err, TS_ERR_NOT_FOUND,
                          "no face found; use a photo that shows the person's face clearly, "
                          "facing the camera");
    } else if (n > 1) {
        st = ts_error_set(err, TS_ERR_ARG,
                          "%d faces found; use a photo that shows only this person (crop it if "
                          "needed)",
                          n);
    } else if (!faces[0].described) {
        st = ts_error_set(err, TS_ERR_ARG,
                          "the face is too close to the edge to describe; use another photo");
    } else {
        memcpy(out, faces[0].descriptor, sizeof faces[0].descriptor);
    }
    ts_face_wipe(faces, n);
    free(faces);
    return st;
}

float ts_face_distance(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < TS_FACE_DESCRIPTOR_DIM; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return (float)sqrt(s);
}

void ts_face_wipe(ts_face *faces, int count)
{
    if (faces && count > 0)
        sodium_memzero(faces, (size_t)count * sizeof *faces);
}
