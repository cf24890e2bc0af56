/*
 * ts_face.h - face detection, 68-point landmarks and 128-d descriptors, the
 * way face-api's default pipeline computes them:
 *
 *     detectAllFaces(img)            SSD MobileNet v1, min confidence 0.5
 *       .withFaceLandmarks()         68-point net on each detection's box
 *       .withFaceDescriptors()       recognition net on the dlib-aligned box
 *
 * Usage:
 *
 *     ts_face_models *fm;
 *     ts_face_models_load("models/face", &fm, &err);
 *     ts_face faces[TS_FACE_MAX];
 *     int n;
 *     ts_face_options o = ts_face_options_default();
 *     ts_face_detect(fm, &img, &o, faces, TS_FACE_MAX, &n, &err);
 *     float d = ts_face_distance(faces[0].descriptor, other);
 *     ts_face_wipe(faces, n);   // descriptors of users' faces (POLICY.md P13)
 *     ts_face_models_free(fm);
 *
 * Pixel pipeline, as face-api runs it on a tensor input (each step matters
 * for matching its numbers):
 *   - detector: the image is zero-padded at the right or bottom to a square
 *     and resampled to 512 x 512 with TensorFlow's legacy bilinear rule
 *     (source = dest * in / out, no half-pixel offset, no antialiasing), so a
 *     12-megapixel photo costs no more than a small one; values v / 127.5 - 1;
 *   - landmarks: the detection box, clipped to the image and floored, is cut
 *     out, zero-padded to a centred square, resampled to 112 x 112;
 *   - descriptor: the box face-api's "dlib alignment" derives from the eye
 *     and mouth centres (a square of side |eye-mouth| / 0.45 placed at
 *     relative (0.5, 0.43)), cut out the same way at 150 x 150. There is no
 *     rotation: face-api aligns by cropping only.
 *
 * Thread safety: models are read-only after loading; any number of threads
 * may call ts_face_detect on the same models at once.
 */
#ifndef TS_FACE_H
#define TS_FACE_H

#include "ts_error.h"
#include "ts_face_nets.h"
#include "ts_image.h"

#define TS_FACE_MAX       100 /* face-api's default maxResults */
#define TS_FACE_LANDMARKS 68

typedef struct ts_face_models {
    ts_face_ssd ssd;
    ts_face_landmark_net landmarks;
    ts_face_recog_net recog;
} ts_face_models;

typedef struct ts_face {
    float score;
    float box[4];                          /* x, y, w, h in image pixels */
    float landmarks[TS_FACE_LANDMARKS][2]; /* image pixels */
    int aligned[4];                        /* x, y, w, h: the crop described */
    float descriptor[TS_FACE_DESCRIPTOR_DIM];
    int described; /* 0 when the box was too thin to describe */
} ts_face;

typedef struct ts_face_options {
    float min_confidence; /* detections at or below are dropped; default 0.5 */
    int threads;          /* threads per layer; default 1 */
    int describe;         /* 1: landmarks and descriptors too (default) */
} ts_face_options;

ts_face_options ts_face_options_default(void);

/* Loads the three networks from dir (the face-api weight files). */
ts_status ts_face_models_load(const char *dir, ts_face_models **out, ts_error *err);
void ts_face_models_free(ts_face_models *m);

/* Finds up to max faces (best first after non-maximum suppression at IoU
 * 0.5). faces[0..*count) are filled. */
ts_status ts_face_detect(const ts_face_models *m, const ts_image *img, const ts_face_options *o,
                         ts_face *faces, int max, int *count, ts_error *err);

/* The steps of ts_face_detect one by one, for tests and tools. */
/* crop_wh (may be NULL) receives the size of the crop the net saw. */
ts_status ts_face_landmarks(const ts_face_models *m, const ts_image *img, const float box[4],
                            float out[TS_FACE_LANDMARKS][2], int crop_wh[2], int threads,
                            ts_error *err);
/* rect receives the aligned box; crop_w/h are the landmark crop's size
 * (face-api caps the box with them). */
void ts_face_align(const float lm[TS_FACE_LANDMARKS][2], int crop_w, int crop_h, int rect[4]);
/* TS_ERR_ARG when rect does not overlap the image. */
ts_status ts_face_describe(const ts_face_models *m, const ts_image *img, const int rect[4],
                           float out[TS_FACE_DESCRIPTOR_DIM], int threads, ts_error *err);

/* The descriptor of the one face in img, for enrolling a protected person:
 * TS_ERR_NOT_FOUND ("no face found ...") when there is none, TS_ERR_ARG
 * ("N faces found ...") when there are several, so the gallery never gets a
 * bystander's face by mistake. */
ts_status ts_face_describe_single(const ts_face_models *m, const ts_image *img,
                                  float out[TS_FACE_DESCRIPTOR_DIM], int threads, ts_error *err);

/* Euclidean distance between two descriptors (face-api's measure). */
float ts_face_distance(const float *a, const float *b);

/* Zeroes faces[0..count) (landmarks and descriptors are biometric data). */
void ts_face_wipe(ts_face *faces, int count);

#endif
