/*
 * ts_face_ops_ref.h - plain, slow, obviously correct versions of the face
 * network layers, written straight from their definitions (double
 * accumulators, no blocking, no packing, no folding). The unit tests hold
 * the fast kernels of ts_face_ops.h to these; nothing in the product calls
 * them.
 *
 * Maps and filters use the layouts of ts_face_ops.h; outputs are allocated
 * here (release with ts_fmap_free).
 */
#ifndef TS_FACE_OPS_REF_H
#define TS_FACE_OPS_REF_H

#include "ts_face_ops.h"

/* y = act(conv(x, filters (kh, kw, cin, cout)) + bias) with TF padding. */
ts_status ts_face_conv_ref(const ts_fmap *x, const float *filters, const float *bias, int kh,
                           int kw, int cout, int stride, ts_face_pad pad, ts_face_act act,
                           ts_fmap *y, ts_error *err);

/* y = act(depthwise(x, filters (kh, kw, c)) + bias). */
ts_status ts_face_dwconv_ref(const ts_fmap *x, const float *filters, const float *bias, int kh,
                             int kw, int stride, ts_face_pad pad, ts_face_act act, ts_fmap *y,
                             ts_error *err);

/* In place: x = (x - mean) / sqrt(var + eps) * gamma + beta, per channel. */
void ts_face_batchnorm_ref(ts_fmap *x, const float *mean, const float *var, const float *gamma,
                           const float *beta, float eps);

/* In place: x = x * w + b, per channel (face-api's "scale" layer). */
void ts_face_scale_ref(ts_fmap *x, const float *w, const float *b);

/* In place activation. */
void ts_face_act_ref(ts_fmap *x, ts_face_act act);

ts_status ts_face_pool_ref(const ts_fmap *x, int k, int stride, int is_max, ts_fmap *y,
                           ts_error *err);

#endif
