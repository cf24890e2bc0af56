/*
 * ts_face_nets.h - the three face-api networks the portrait check uses,
 * rebuilt over ts_face_ops from the package's pretrained weights.
 *
 * SSD MobileNet v1 (ssd_mobilenetv1_model): input (512, 512, 3) in [-1, 1];
 *   MobileNet v1 body (a 3x3/2 conv, then 13 depthwise + pointwise pairs,
 *   batch norm folded, ReLU6), an extra pyramid of 8 pointwise/3x3 convs,
 *   and six box predictors on maps of 32, 16, 8, 4, 2 and 1 cells (3 anchors
 *   on the first, 6 on the others: 5118 anchors). Output per anchor: box
 *   (ymin, xmin, ymax, xmax) relative to the input square, decoded against
 *   the model's own anchor table (Output/extra_dim) with the usual SSD
 *   variances (10, 10, 5, 5), and the sigmoid score of the "face" class.
 *
 * 68-point landmarks (face_landmark_68_model): input (112, 112, 3) as
 *   (v - mean_rgb) / 255; four dense blocks of separable convolutions, each
 *   halving the map (56, 28, 14, 7), a 7x7 average pool and a 256 -> 136
 *   fully connected layer: (x, y) of 68 points relative to the input square.
 *
 * Face recognition (face_recognition_model): input (150, 150, 3) as
 *   (v - mean_rgb) / 255; a ResNet-34-like stack: 7x7/2 conv (valid), 3x3/2
 *   max pool, residual blocks at 32, 64, 128 and 256 channels (each conv
 *   followed by a per-channel scale layer; the downsampling blocks add a
 *   2x2 average pool of their input, zero-padded in channels), global
 *   average pool and a 256 -> 128 linear map: the descriptor.
 *
 * Loading checks every tensor's name and shape; a model file that does not
 * match is refused with TS_ERR_FORMAT.
 */
#ifndef TS_FACE_NETS_H
#define TS_FACE_NETS_H

#include "ts_error.h"
#include "ts_face_ops.h"

#define TS_FACE_SSD_INPUT      512
#define TS_FACE_SSD_ANCHORS    5118
#define TS_FACE_LANDMARK_INPUT 112
#define TS_FACE_RECOG_INPUT    150
#define TS_FACE_DESCRIPTOR_DIM 128

/* face-api's mean colour for the landmark and recognition inputs. */
#define TS_FACE_MEAN_R 122.782f
#define TS_FACE_MEAN_G 117.001f
#define TS_FACE_MEAN_B 104.298f

typedef struct ts_face_ssd {
    ts_face_conv conv0;
    ts_face_dwconv dw[13];
    ts_face_conv pw[13];
    ts_face_conv extra[8];
    ts_face_conv box[6], cls[6];
    float *anchors; /* (TS_FACE_SSD_ANCHORS, 4) */
} ts_face_ssd;

typedef struct ts_face_sepconv {
    ts_face_dwconv dw;
    ts_face_conv pw;
} ts_face_sepconv;

typedef struct ts_face_dense_block {
    ts_face_conv first; /* dense0 only: a plain 3x3/2 conv */
    ts_face_sepconv sep[4];
    int is_first;
} ts_face_dense_block;

typedef struct ts_face_landmark_net {
    ts_face_dense_block dense[4];
    float *fc_w; /* (256, 136) */
    float *fc_b; /* (136) */
} ts_face_landmark_net;

typedef struct ts_face_residual {
    ts_face_conv conv1, conv2;
    int down;
} ts_face_residual;

#define TS_FACE_RESIDUALS 14

typedef struct ts_face_recog_net {
    ts_face_conv conv0;
    ts_face_residual res[TS_FACE_RESIDUALS];
    float *fc; /* (256, 128) */
} ts_face_recog_net;

ts_status ts_face_ssd_load(const char *dir, ts_face_ssd *net, ts_error *err);
void ts_face_ssd_free(ts_face_ssd *net);

/* x: (512, 512, 3) normalised input. boxes: (5118, 4) as (ymin, xmin, ymax,
 * xmax) relative to the input; scores: (5118). */
ts_status ts_face_ssd_forward(const ts_face_ssd *net, const ts_fmap *x, float *boxes, float *scores,
                              int threads, ts_error *err);

ts_status ts_face_landmark_load(const char *dir, ts_face_landmark_net *net, ts_error *err);
void ts_face_landmark_free(ts_face_landmark_net *net);

/* x: (112, 112, 3) normalised input; out: 136 values (x0, y0, x1, y1, ...)
 * relative to the input square. */
ts_status ts_face_landmark_forward(const ts_face_landmark_net *net, const ts_fmap *x,
                                   float out[136], int threads, ts_error *err);

ts_status ts_face_recog_load(const char *dir, ts_face_recog_net *net, ts_error *err);
void ts_face_recog_free(ts_face_recog_net *net);

/* x: (150, 150, 3) normalised input; out: the 128-d descriptor. */
ts_status ts_face_recog_forward(const ts_face_recog_net *net, const ts_fmap *x,
                                float out[TS_FACE_DESCRIPTOR_DIM], int threads, ts_error *err);

/* One residual block of the recognition net: y (empty on entry) =
 * relu(conv2(conv1(x)) + shortcut(x)); exposed for its unit test. */
ts_status ts_face_residual_forward(const ts_face_residual *r, const ts_fmap *x, ts_fmap *y,
                                   int threads, ts_error *err);

#endif
