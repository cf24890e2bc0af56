/* ts_face_ops_ref.c - reference layers, straight from the definitions. */
#include "ts_face_ops_ref.h"

#include <math.h>
#include <stdlib.h>

static float act_apply(double v, ts_face_act act)
{
    if (act != TS_FACE_ACT_NONE && v < 0.0)
        v = 0.0;
    if (act == TS_FACE_ACT_RELU6 && v > 6.0)
        v = 6.0;
    return (float)v;
}

/* Value of x at (y, x, c), or 0 in the padding. */
static double at(const ts_fmap *m, int iy, int ix, int c)
{
    if (iy < 0 || iy >= m->h || ix < 0 || ix >= m->w)
        return 0.0;
    return m->data[((size_t)iy * m->w + ix) * m->c + c];
}

ts_status ts_face_conv_ref(const ts_fmap *x, const float *filters, const float *bias, int kh,
                           int kw, int cout, int stride, ts_face_pad pad, ts_face_act act,
                           ts_fmap *y, ts_error *err)
{
    int pt, pl;
    int oh = ts_face_out_size(x->h, kh, stride, pad, &pt);
    int ow = ts_face_out_size(x->w, kw, stride, pad, &pl);
    ts_status st = ts_fmap_alloc(y, oh, ow, cout, err);
    if (st != TS_OK)
        return st;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int o = 0; o < cout; o++) {
                double sum = bias ? bias[o] : 0.0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        for (int c = 0; c < x->c; c++)
                            sum += at(x, oy * stride - pt + i, ox * stride - pl + j, c) *
                                   filters[(((size_t)i * kw + j) * x->c + c) * cout + o];
                y->data[((size_t)oy * ow + ox) * cout + o] = act_apply(sum, act);
            }
    return TS_OK;
}

ts_status ts_face_dwconv_ref(const ts_fmap *x, const float *filters, const float *bias, int kh,
                             int kw, int stride, ts_face_pad pad, ts_face_act act, ts_fmap *y,
                             ts_error *err)
{
    int pt, pl;
    int oh = ts_face_out_size(x->h, kh, stride, pad, &pt);
    int ow = ts_face_out_size(x->w, kw, stride, pad, &pl);
    ts_status st = ts_fmap_alloc(y, oh, ow, x->c, err);
    if (st != TS_OK)
        return st;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int c = 0; c < x->c; c++) {
                double sum = bias ? bias[c] : 0.0;
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        sum += at(x, oy * stride - pt + i, ox * stride - pl + j, c) *
                               filters[((size_t)i * kw + j) * x->c + c];
                y->data[((size_t)oy * ow + ox) * x->c + c] = act_apply(sum, act);
            }
    return TS_OK;
}

void ts_face_batchnorm_ref(ts_fmap *x, const float *mean, const float *var, const float *gamma,
                           const float *beta, float eps)
{
    size_t pixels = (size_t)x->h * x->w;
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < x->c; c++) {
            float *v = &x->data[p * x->c + c];
            *v = (float)(((double)*v - mean[c]) / sqrt((double)var[c] + eps) * gamma[c] + beta[c]);
        }
}

void ts_face_scale_ref(ts_fmap *x, const float *w, const float *b)
{
    size_t pixels = (size_t)x->h * x->w;
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < x->c; c++)
            x->data[p * x->c + c] = x->data[p * x->c + c] * w[c] + b[c];
}

void ts_face_act_ref(ts_fmap *x, ts_face_act act)
{
    size_t n = (size_t)x->h * x->w * x->c;
    for (size_t i = 0; i < n; i++)
        x->data[i] = act_apply(x->data[i], act);
}

ts_status ts_face_pool_ref(const ts_fmap *x, int k, int stride, int is_max, ts_fmap *y,
                           ts_error *err)
{
    int oh = (x->h - k) / stride + 1, ow = (x->w - k) / stride + 1;
    ts_status st = ts_fmap_alloc(y, oh, ow, x->c, err);
    if (st != TS_OK)
        return st;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int c = 0; c < x->c; c++) {
                double acc = is_max ? -INFINITY : 0.0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        double v = at(x, oy * stride + i, ox * stride + j, c);
                        acc = is_max ? fmax(acc, v) : acc + v;
                    }
                y->data[((size_t)oy * ow + ox) * x->c + c] = (float)(is_max ? acc : acc / (k * k));
            }
    return TS_OK;
}
