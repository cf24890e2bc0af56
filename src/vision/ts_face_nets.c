/* ts_face_nets.c - SSD MobileNet v1, the 68-point landmark net and the
 * recognition ResNet, loaded from face-api's weight files. */
#include "ts_face_nets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ts_face_weights.h"

/* TensorFlow's batch-norm epsilon as face-api passes it (a float32 0.001). */
#define SSD_BN_EPS 0.0010000000474974513

#define NAME_MAX_LEN 160

/* ---------------------------------------------------------------- loading helpers */

/* Fills cv from a (kh, kw, cin, cout) filter tensor; cin must be expect_cin. */
static ts_status load_conv(ts_face_conv *cv, const ts_face_weights *w, const char *name,
                           int expect_cin, int stride, ts_face_pad pad, ts_face_act act,
                           ts_error *err)
{
    const ts_face_tensor *t = ts_face_weights_get(w, name, 4, err);
    if (!t)
        return TS_ERR_FORMAT;
    if (t->shape[2] != expect_cin || t->shape[0] < 1 || t->shape[0] > 7 || t->shape[1] < 1 ||
        t->shape[1] > 7 || t->shape[3] < 1 || t->shape[3] > 4096)
        return ts_error_set(err, TS_ERR_FORMAT, "face model tensor %s has an unexpected shape",
                            name);
    ts_status st = ts_face_conv_init(cv, t->shape[0], t->shape[1], t->shape[2], t->shape[3], stride,
                                     pad, act, err);
    if (st != TS_OK)
        return st;
    memcpy(cv->filters, t->values, t->count * sizeof(float));
    return TS_OK;
}

/* A per-channel vector of exactly n values. */
static const float *load_vec(const ts_face_weights *w, const char *name, int n, ts_error *err)
{
    const ts_face_tensor *t = ts_face_weights_get(w, name, 1, err);
    if (!t)
        return NULL;
    if (t->shape[0] != n) {
        ts_error_set(err, TS_ERR_FORMAT, "face model tensor %s has %d values, expected %d", name,
                     t->shape[0], n);
        return NULL;
    }
    return t->values;
}

static ts_status load_dwconv(ts_face_dwconv *dw, const ts_face_weights *w, const char *name, int c,
                             int stride, ts_face_act act, ts_error *err)
{
    const ts_face_tensor *t = ts_face_weights_get(w, name, 4, err);
    if (!t)
        return TS_ERR_FORMAT;
    if (t->shape[0] != 3 || t->shape[1] != 3 || t->shape[2] != c || t->shape[3] != 1)
        return ts_error_set(err, TS_ERR_FORMAT, "face model tensor %s has an unexpected shape",
                            name);
    ts_status st = ts_face_dwconv_init(dw, 3, 3, c, stride, TS_FACE_PAD_SAME, act, err);
    if (st != TS_OK)
        return st;
    memcpy(dw->filters, t->values, t->count * sizeof(float));
    return TS_OK;
}

/* Copies a rank-2 (rows, cols) matrix into a new buffer. */
static float *load_matrix(const ts_face_weights *w, const char *name, int rows, int cols,
                          ts_error *err)
{
    const ts_face_tensor *t = ts_face_weights_get(w, name, 2, err);
    if (!t)
        return NULL;
    if (t->shape[0] != rows || t->shape[1] != cols) {
        ts_error_set(err, TS_ERR_FORMAT, "face model tensor %s has an unexpected shape", name);
        return NULL;
    }
    float *m = malloc(t->count * sizeof(float));
    if (!m) {
        ts_error_set(err, TS_ERR_NOMEM, "out of memory loading %s", name);
        return NULL;
    }
    memcpy(m, t->values, t->count * sizeof(float));
    return m;
}

/* ---------------------------------------------------------------- SSD MobileNet v1 */

static const int ssd_dw_stride[13] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
static const int ssd_anchors_per_cell[6] = {3, 6, 6, 6, 6, 6};

ts_status ts_face_ssd_load(const char *dir, ts_face_ssd *net, ts_error *err)
{
    memset(net, 0, sizeof *net);
    ts_face_weights *w;
    ts_status st = ts_face_weights_load(dir, "ssd_mobilenetv1_model", &w, err);
    if (st != TS_OK)
        return st;
    char name[NAME_MAX_LEN];
    const float *v;

    /* Body: each pointwise conv carries a folded batch-norm offset. */
    st = load_conv(&net->conv0, w, "MobilenetV1/Conv2d_0_pointwise/weights", 3, 2, TS_FACE_PAD_SAME,
                   TS_FACE_ACT_RELU6, err);
    if (st != TS_OK)
        goto fail;
    if (!(v = load_vec(w, "MobilenetV1/Conv2d_0_pointwise/convolution_bn_offset", 32, err)))
        goto fail_format;
    memcpy(net->conv0.add, v, 32 * sizeof(float));
    int c = net->conv0.cout;
    for (int i = 0; i < 13; i++) {
        snprintf(name, sizeof name, "MobilenetV1/Conv2d_%d_depthwise/depthwise_weights", i + 1);
        st = load_dwconv(&net->dw[i], w, name, c, ssd_dw_stride[i], TS_FACE_ACT_RELU6, err);
        if (st != TS_OK)
            goto fail;
        const float *bn[4];
        static const char *const bn_names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/%s", i + 1,
                     bn_names[k]);
            if (!(bn[k] = load_vec(w, name, c, err)))
                goto fail_format;
        }
        for (int ch = 0; ch < c; ch++) {
            double m = bn[0][ch] / sqrt((double)bn[3][ch] + SSD_BN_EPS);
            net->dw[i].mul[ch] = (float)m;
            net->dw[i].add[ch] = (float)(bn[1][ch] - bn[2][ch] * m);
        }
        snprintf(name, sizeof name, "MobilenetV1/Conv2d_%d_pointwise/weights", i + 1);
        st = load_conv(&net->pw[i], w, name, c, 1, TS_FACE_PAD_SAME, TS_FACE_ACT_RELU6, err);
        if (st != TS_OK)
            goto fail;
        c = net->pw[i].cout;
        snprintf(name, sizeof name, "MobilenetV1/Conv2d_%d_pointwise/convolution_bn_offset", i + 1);
        if (!(v = load_vec(w, name, c, err)))
            goto fail_format;
        memcpy(net->pw[i].add, v, (size_t)c * sizeof(float));
    }

    /* Extra feature pyramid: 1x1 then 3x3/2, four times. */
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "Prediction/Conv2d_%d_pointwise/weights", i);
        st = load_conv(&net->extra[i], w, name, c, i % 2 ? 2 : 1, TS_FACE_PAD_SAME,
                       TS_FACE_ACT_RELU6, err);
        if (st != TS_OK)
            goto fail;
        c = net->extra[i].cout;
        snprintf(name, sizeof name, "Prediction/Conv2d_%d_pointwise/convolution_bn_offset", i);
        if (!(v = load_vec(w, name, c, err)))
            goto fail_format;
        memcpy(net->extra[i].add, v, (size_t)c * sizeof(float));
    }

    /* Box predictors on conv11, conv13 and extra 1, 3, 5, 7. */
    const int pred_cin[6] = {net->pw[10].cout,   net->pw[12].cout,   net->extra[1].cout,
                             net->extra[3].cout, net->extra[5].cout, net->extra[7].cout};
    for (int p = 0; p < 6; p++) {
        static const char *const kinds[2] = {"BoxEncodingPredictor", "ClassPredictor"};
        ts_face_conv *convs[2] = {&net->box[p], &net->cls[p]};
        const int per_anchor[2] = {4, 3};
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "Prediction/BoxPredictor_%d/%s/weights", p, kinds[k]);
            st = load_conv(convs[k], w, name, pred_cin[p], 1, TS_FACE_PAD_SAME, TS_FACE_ACT_NONE,
                           err);
            if (st != TS_OK)
                goto fail;
            int cout = convs[k]->cout;
            if (convs[k]->kh != 1 || cout != ssd_anchors_per_cell[p] * per_anchor[k]) {
                st = ts_error_set(err, TS_ERR_FORMAT, "face detector predictor %d has %d outputs",
                                  p, cout);
                goto fail;
            }
            snprintf(name, sizeof name, "Prediction/BoxPredictor_%d/%s/biases", p, kinds[k]);
            if (!(v = load_vec(w, name, cout, err)))
                goto fail_format;
            memcpy(convs[k]->add, v, (size_t)cout * sizeof(float));
        }
    }

    const ts_face_tensor *anchors = ts_face_weights_get(w, "Output/extra_dim", 3, err);
    if (!anchors)
        goto fail_format;
    if (anchors->shape[0] != 1 || anchors->shape[1] != TS_FACE_SSD_ANCHORS ||
        anchors->shape[2] != 4) {
        st = ts_error_set(err, TS_ERR_FORMAT, "face detector anchor table has a bad shape");
        goto fail;
    }
    net->anchors = malloc(anchors->count * sizeof(float));
    if (!net->anchors) {
        st = ts_error_set(err, TS_ERR_NOMEM, "out of memory loading the face detector");
        goto fail;
    }
    memcpy(net->anchors, anchors->values, anchors->count * sizeof(float));

    /* Pack every filter for the GEMM. */
    ts_face_conv *all[1 + 13 + 8 + 12];
    int n = 0;
    all[n++] = &net->conv0;
    for (int i = 0; i < 13; i++)
        all[n++] = &net->pw[i];
    for (int i = 0; i < 8; i++)
        all[n++] = &net->extra[i];
    for (int i = 0; i < 6; i++) {
        all[n++] = &net->box[i];
        all[n++] = &net->cls[i];
    }
    for (int i = 0; i < n; i++) {
        if ((st = ts_face_conv_prepare(all[i], err)) != TS_OK)
            goto fail;
        ts_face_conv_drop_filters(all[i]);
    }
    ts_face_weights_free(w);
    return TS_OK;

fail_format:
    st = TS_ERR_FORMAT;
fail:
    ts_face_weights_free(w);
    ts_face_ssd_free(net);
    return st;
}

void ts_face_ssd_free(ts_face_ssd *net)
{
    ts_face_conv_free(&net->conv0);
    for (int i = 0; i < 13; i++) {
        ts_face_dwconv_free(&net->dw[i]);
        ts_face_conv_free(&net->pw[i]);
    }
    for (int i = 0; i < 8; i++)
        ts_face_conv_free(&net->extra[i]);
    for (int i = 0; i < 6; i++) {
        ts_face_conv_free(&net->box[i]);
        ts_face_conv_free(&net->cls[i]);
    }
    free(net->anchors);
    memset(net, 0, sizeof *net);
}

/* Runs one predictor pair on map m and appends its anchors at *at. */
static ts_status ssd_predict(const ts_face_ssd *net, int p, const ts_fmap *m, float *raw_box,
                             float *raw_cls, int *at, int threads, ts_error *err)
{
    ts_fmap b = {0}, c = {0};
    ts_status st = ts_face_conv_forward(&net->box[p], m, &b, threads, err);
    if (st == TS_OK)
        st = ts_face_conv_forward(&net->cls[p], m, &c, threads, err);
    if (st == TS_OK) {
        /* (h, w, A * 4) flattens to anchors in (y, x, a) order, as TF reshapes it. */
        int n = m->h * m->w * ssd_anchors_per_cell[p];
        if (*at + n > TS_FACE_SSD_ANCHORS) {
            st = ts_error_set(err, TS_ERR_INTERNAL, "face detector produced too many anchors");
        } else {
            memcpy(raw_box + (size_t)*at * 4, b.data, (size_t)n * 4 * sizeof(float));
            memcpy(raw_cls + (size_t)*at * 3, c.data, (size_t)n * 3 * sizeof(float));
            *at += n;
        }
    }
    ts_fmap_free(&b);
    ts_fmap_free(&c);
    return st;
}

ts_status ts_face_ssd_forward(const ts_face_ssd *net, const ts_fmap *x, float *boxes, float *scores,
                              int threads, ts_error *err)
{
    ts_status st;
    ts_fmap cur = {0}, tmp = {0}, conv11 = {0}, body = {0}, ex[8] = {{0}};
    float *raw_box = malloc((size_t)TS_FACE_SSD_ANCHORS * 7 * sizeof(float));
    if (!raw_box)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory in the face detector");
    float *raw_cls = raw_box + (size_t)TS_FACE_SSD_ANCHORS * 4;

    /* (512, 512, 3) -> (256, 256, 32) -> 13 depthwise/pointwise pairs ->
     * (32, 32, 512) after pair 11 and (16, 16, 1024) after pair 13. */
    st = ts_face_conv_forward(&net->conv0, x, &cur, threads, err);
    for (int i = 0; i < 13 && st == TS_OK; i++) {
        st = ts_face_sepconv_forward(&net->dw[i], &net->pw[i], &cur, &tmp, threads, err);
        if (i == 11)
            conv11 = cur; /* the output of pair 11 feeds predictor 0 */
        else
            ts_fmap_free(&cur);
        cur = tmp;
        memset(&tmp, 0, sizeof tmp);
    }
    body = cur;
    memset(&cur, 0, sizeof cur);

    /* Extra pyramid: (16, 16) -> (8, 8) -> (4, 4) -> (2, 2) -> (1, 1). */
    for (int i = 0; i < 8 && st == TS_OK; i++)
        st = ts_face_conv_forward(&net->extra[i], i ? &ex[i - 1] : &body, &ex[i], threads, err);

    int at = 0;
    const ts_fmap *maps[6] = {&conv11, &body, &ex[1], &ex[3], &ex[5], &ex[7]};
    for (int p = 0; p < 6 && st == TS_OK; p++)
        st = ssd_predict(net, p, maps[p], raw_box, raw_cls, &at, threads, err);
    if (st == TS_OK && at != TS_FACE_SSD_ANCHORS)
        st = ts_error_set(err, TS_ERR_INTERNAL, "face detector produced %d anchors, not %d", at,
                          TS_FACE_SSD_ANCHORS);

    /* Decode against the anchor table: centre offsets scaled by 1/10, log
     * sizes by 1/5; score = sigmoid of the face class logit (index 1). */
    for (int a = 0; st == TS_OK && a < TS_FACE_SSD_ANCHORS; a++) {
        const float *an = net->anchors + (size_t)a * 4;
        const float *v = raw_box + (size_t)a * 4;
        double size0 = an[2] - an[0], size1 = an[3] - an[1];
        double centre0 = an[0] + size0 / 2, centre1 = an[1] + size1 / 2;
        double half0 = exp(v[2] / 5.0) * size0 / 2, half1 = exp(v[3] / 5.0) * size1 / 2;
        double c0 = v[0] / 10.0 * size0 + centre0, c1 = v[1] / 10.0 * size1 + centre1;
        boxes[a * 4 + 0] = (float)(c0 - half0);
        boxes[a * 4 + 1] = (float)(c1 - half1);
        boxes[a * 4 + 2] = (float)(c0 + half0);
        boxes[a * 4 + 3] = (float)(c1 + half1);
        scores[a] = (float)(1.0 / (1.0 + exp(-(double)raw_cls[(size_t)a * 3 + 1])));
    }

    for (int i = 0; i < 8; i++)
        ts_fmap_free(&ex[i]);
    ts_fmap_free(&body);
    ts_fmap_free(&conv11);
    ts_fmap_free(&cur);
    sodium_memzero(raw_box, (size_t)TS_FACE_SSD_ANCHORS * 7 * sizeof(float));
    free(raw_box);
    return st;
}

/* ---------------------------------------------------------------- landmarks */

static ts_status load_sepconv(ts_face_sepconv *s, const ts_face_weights *w, const char *prefix,
                              int cin, int stride, ts_face_act act, ts_error *err)
{
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s/depthwise_filter", prefix);
    ts_status st = load_dwconv(&s->dw, w, name, cin, stride, TS_FACE_ACT_NONE, err);
    if (st != TS_OK)
        return st;
    snprintf(name, sizeof name, "%s/pointwise_filter", prefix);
    st = load_conv(&s->pw, w, name, cin, 1, TS_FACE_PAD_SAME, act, err);
    if (st != TS_OK)
        return st;
    snprintf(name, sizeof name, "%s/bias", prefix);
    const float *b = load_vec(w, name, s->pw.cout, err);
    if (!b)
        return TS_ERR_FORMAT;
    memcpy(s->pw.add, b, (size_t)s->pw.cout * sizeof(float));
    st = ts_face_conv_prepare(&s->pw, err);
    if (st == TS_OK)
        ts_face_conv_drop_filters(&s->pw);
    return st;
}

ts_status ts_face_landmark_load(const char *dir, ts_face_landmark_net *net, ts_error *err)
{
    memset(net, 0, sizeof *net);
    ts_face_weights *w;
    ts_status st = ts_face_weights_load(dir, "face_landmark_68_model", &w, err);
    if (st != TS_OK)
        return st;
    char prefix[NAME_MAX_LEN], name[NAME_MAX_LEN];
    int c = 3;
    for (int d = 0; d < 4 && st == TS_OK; d++) {
        ts_face_dense_block *blk = &net->dense[d];
        blk->is_first = d == 0;
        if (blk->is_first) {
            st = load_conv(&blk->first, w, "dense0/conv0/filters", c, 2, TS_FACE_PAD_SAME,
                           TS_FACE_ACT_RELU, err);
            const float *b =
                st == TS_OK ? load_vec(w, "dense0/conv0/bias", blk->first.cout, err) : NULL;
            if (!b) {
                st = TS_ERR_FORMAT;
                break;
            }
            memcpy(blk->first.add, b, (size_t)blk->first.cout * sizeof(float));
            st = ts_face_conv_prepare(&blk->first, err);
            if (st == TS_OK)
                ts_face_conv_drop_filters(&blk->first);
            c = blk->first.cout;
        } else {
            snprintf(prefix, sizeof prefix, "dense%d/conv0", d);
            st = load_sepconv(&blk->sep[0], w, prefix, c, 2, TS_FACE_ACT_RELU, err);
            c = blk->sep[0].pw.cout;
        }
        for (int k = 1; k < 4 && st == TS_OK; k++) {
            snprintf(prefix, sizeof prefix, "dense%d/conv%d", d, k);
            st = load_sepconv(&blk->sep[k], w, prefix, c, 1, TS_FACE_ACT_NONE, err);
        }
    }
    if (st == TS_OK) {
        snprintf(name, sizeof name, "fc/weights");
        net->fc_w = load_matrix(w, name, c, 136, err);
        const float *b = load_vec(w, "fc/bias", 136, err);
        net->fc_b = b ? malloc(136 * sizeof(float)) : NULL;
        if (!net->fc_w || !b || !net->fc_b)
            st = err && err->status != TS_OK ? err->status : TS_ERR_NOMEM;
        else
            memcpy(net->fc_b, b, 136 * sizeof(float));
    }
    ts_face_weights_free(w);
    if (st != TS_OK)
        ts_face_landmark_free(net);
    return st;
}

void ts_face_landmark_free(ts_face_landmark_net *net)
{
    for (int d = 0; d < 4; d++) {
        ts_face_conv_free(&net->dense[d].first);
        for (int k = 0; k < 4; k++) {
            ts_face_dwconv_free(&net->dense[d].sep[k].dw);
            ts_face_conv_free(&net->dense[d].sep[k].pw);
        }
    }
    free(net->fc_w);
    free(net->fc_b);
    memset(net, 0, sizeof *net);
}

static ts_status sepconv_forward(const ts_face_sepconv *s, const ts_fmap *x, ts_fmap *y,
                                 int threads, ts_error *err)
{
    return ts_face_sepconv_forward(&s->dw, &s->pw, x, y, threads, err);
}

/* dst = relu(sum of maps[0..n)), dst allocated here. */
static ts_status sum_relu(const ts_fmap *maps, int n, ts_fmap *dst, ts_error *err)
{
    ts_status st = ts_fmap_alloc(dst, maps[0].h, maps[0].w, maps[0].c, err);
    if (st != TS_OK)
        return st;
    size_t len = (size_t)dst->h * dst->w * dst->c;
    for (size_t i = 0; i < len; i++) {
        float v = 0.0f;
        for (int k = 0; k < n; k++)
            v += maps[k].data[i];
        dst->data[i] = v > 0.0f ? v : 0.0f;
    }
    return TS_OK;
}

/* out1 = relu(conv0(x)); out_k = sep_k(relu(out1 + ... + out_{k-1})); the
 * block's output is relu(out1 + out2 + out3 + out4). */
static ts_status dense_forward(const ts_face_dense_block *blk, const ts_fmap *x, ts_fmap *y,
                               int threads, ts_error *err)
{
    ts_fmap out[4] = {{0}}, in = {0};
    ts_status st = blk->is_first ? ts_face_conv_forward(&blk->first, x, &out[0], threads, err)
                                 : sepconv_forward(&blk->sep[0], x, &out[0], threads, err);
    for (int k = 1; k < 4 && st == TS_OK; k++) {
        if (k == 1) {
            st = sepconv_forward(&blk->sep[1], &out[0], &out[1], threads, err);
            continue;
        }
        st = sum_relu(out, k, &in, err);
        if (st == TS_OK)
            st = sepconv_forward(&blk->sep[k], &in, &out[k], threads, err);
        ts_fmap_free(&in);
    }
    if (st == TS_OK)
        st = sum_relu(out, 4, y, err);
    for (int k = 0; k < 4; k++)
        ts_fmap_free(&out[k]);
    return st;
}

ts_status ts_face_landmark_forward(const ts_face_landmark_net *net, const ts_fmap *x,
                                   float out[136], int threads, ts_error *err)
{
    ts_fmap a = {0}, b = {0};
    ts_status st = TS_OK;
    /* (112, 112, 3) -> (56, 56, 32) -> (28, 28, 64) -> (14, 14, 128) -> (7, 7, 256) */
    for (int d = 0; d < 4 && st == TS_OK; d++) {
        st = dense_forward(&net->dense[d], d ? &a : x, &b, threads, err);
        ts_fmap_free(&a);
        a = b;
        memset(&b, 0, sizeof b);
    }
    if (st == TS_OK)
        st = ts_face_avgpool(&a, 7, 2, &b, err); /* (1, 1, 256) */
    if (st == TS_OK) {
        for (int j = 0; j < 136; j++) {
            double s = net->fc_b[j];
            for (int i = 0; i < b.c; i++)
                s += (double)b.data[i] * net->fc_w[(size_t)i * 136 + j];
            out[j] = (float)s;
        }
    }
    ts_fmap_free(&a);
    ts_fmap_free(&b);
    return st;
}

/* ---------------------------------------------------------------- recognition */

/* conv + bias, then the scale layer: y = (conv + bias) * s + t. */
static ts_status load_scaled_conv(ts_face_conv *cv, const ts_face_weights *w, const char *prefix,
                                  int cin, int stride, ts_face_pad pad, ts_face_act act,
                                  ts_error *err)
{
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s/conv/filters", prefix);
    ts_status st = load_conv(cv, w, name, cin, stride, pad, act, err);
    if (st != TS_OK)
        return st;
    const float *v[3];
    static const char *const parts[3] = {"conv/bias", "scale/weights", "scale/biases"};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s/%s", prefix, parts[k]);
        if (!(v[k] = load_vec(w, name, cv->cout, err)))
            return TS_ERR_FORMAT;
    }
    for (int o = 0; o < cv->cout; o++) {
        cv->mul[o] = v[1][o];
        cv->add[o] = v[0][o] * v[1][o] + v[2][o];
    }
    ts_status st2 = ts_face_conv_prepare(cv, err);
    if (st2 == TS_OK)
        ts_face_conv_drop_filters(cv);
    return st2;
}

static const struct {
    const char *name;
    int down;
} resnet_blocks[TS_FACE_RESIDUALS] = {
    {"conv32_1", 0},  {"conv32_2", 0},         {"conv32_3", 0},     {"conv64_down", 1},
    {"conv64_1", 0},  {"conv64_2", 0},         {"conv64_3", 0},     {"conv128_down", 1},
    {"conv128_1", 0}, {"conv128_2", 0},        {"conv256_down", 1}, {"conv256_1", 0},
    {"conv256_2", 0}, {"conv256_down_out", 1},
};

ts_status ts_face_recog_load(const char *dir, ts_face_recog_net *net, ts_error *err)
{
    memset(net, 0, sizeof *net);
    ts_face_weights *w;
    ts_status st = ts_face_weights_load(dir, "face_recognition_model", &w, err);
    if (st != TS_OK)
        return st;
    char prefix[NAME_MAX_LEN];
    st = load_scaled_conv(&net->conv0, w, "conv32_down", 3, 2, TS_FACE_PAD_VALID, TS_FACE_ACT_RELU,
                          err);
    int c = net->conv0.cout;
    for (int i = 0; i < TS_FACE_RESIDUALS && st == TS_OK; i++) {
        ts_face_residual *r = &net->res[i];
        r->down = resnet_blocks[i].down;
        snprintf(prefix, sizeof prefix, "%s/conv1", resnet_blocks[i].name);
        st =
            load_scaled_conv(&r->conv1, w, prefix, c, r->down ? 2 : 1,
                             r->down ? TS_FACE_PAD_VALID : TS_FACE_PAD_SAME, TS_FACE_ACT_RELU, err);
        if (st != TS_OK)
            break;
        snprintf(prefix, sizeof prefix, "%s/conv2", resnet_blocks[i].name);
        st = load_scaled_conv(&r->conv2, w, prefix, r->conv1.cout, 1, TS_FACE_PAD_SAME,
                              TS_FACE_ACT_NONE, err);
        if (st != TS_OK)
            break;
        /* The shortcut can only widen by zero channels: at most double. */
        if (r->conv2.cout < c || r->conv2.cout > 2 * c || (!r->down && r->conv2.cout != c)) {
            st = ts_error_set(err, TS_ERR_FORMAT, "face recognition block %s has %d channels",
                              resnet_blocks[i].name, r->conv2.cout);
            break;
        }
        c = r->conv2.cout;
    }
    if (st == TS_OK && !(net->fc = load_matrix(w, "fc", c, TS_FACE_DESCRIPTOR_DIM, err)))
        st = TS_ERR_FORMAT;
    ts_face_weights_free(w);
    if (st != TS_OK)
        ts_face_recog_free(net);
    return st;
}

void ts_face_recog_free(ts_face_recog_net *net)
{
    ts_face_conv_free(&net->conv0);
    for (int i = 0; i < TS_FACE_RESIDUALS; i++) {
        ts_face_conv_free(&net->res[i].conv1);
        ts_face_conv_free(&net->res[i].conv2);
    }
    free(net->fc);
    memset(net, 0, sizeof *net);
}

ts_status ts_face_residual_forward(const ts_face_residual *r, const ts_fmap *x, ts_fmap *y,
                                   int threads, ts_error *err)
{
    ts_fmap a = {0}, b = {0}, pooled = {0};
    ts_status st = ts_face_conv_forward(&r->conv1, x, &a, threads, err);
    if (st == TS_OK)
        st = ts_face_conv_forward(&r->conv2, &a, &b, threads, err);
    ts_fmap_free(&a);
    if (st != TS_OK)
        goto done;
    if (!r->down) {
        ts_face_add_relu(&b, x);
        *y = b;
        memset(&b, 0, sizeof b);
        goto done;
    }

    /* Shortcut: 2x2 average pool of x, zero channels appended. When the
     * valid 3x3/2 conv came out one cell smaller than the pool (odd maps),
     * face-api appends a zero row and a zero column to the conv side. */
    st = ts_face_avgpool(x, 2, 2, &pooled, err);
    if (st != TS_OK)
        goto done;
    if (pooled.h < b.h || pooled.w < b.w || pooled.h > b.h + 1 || pooled.w > b.w + 1) {
        st = ts_error_set(err, TS_ERR_INTERNAL, "residual shortcut shape mismatch");
        goto done;
    }
    st = ts_fmap_alloc(y, pooled.h, pooled.w, b.c, err);
    if (st != TS_OK)
        goto done;
    for (int i = 0; i < y->h; i++)
        for (int j = 0; j < y->w; j++)
            for (int c = 0; c < y->c; c++) {
                float v = 0.0f;
                if (i < b.h && j < b.w)
                    v += b.data[((size_t)i * b.w + j) * b.c + c];
                if (c < pooled.c)
                    v += pooled.data[((size_t)i * pooled.w + j) * pooled.c + c];
                y->data[((size_t)i * y->w + j) * y->c + c] = v > 0.0f ? v : 0.0f;
            }
done:
    ts_fmap_free(&a);
    ts_fmap_free(&b);
    ts_fmap_free(&pooled);
    return st;
}

ts_status ts_face_recog_forward(const ts_face_recog_net *net, const ts_fmap *x,
                                float out[TS_FACE_DESCRIPTOR_DIM], int threads, ts_error *err)
{
    ts_fmap a = {0}, b = {0};
    /* (150, 150, 3) -> 7x7/2 valid (72, 72, 32) -> max pool 3/2 (35, 35, 32) */
    ts_status st = ts_face_conv_forward(&net->conv0, x, &a, threads, err);
    if (st == TS_OK)
        st = ts_face_maxpool(&a, 3, 2, &b, err);
    ts_fmap_free(&a);
    a = b;
    memset(&b, 0, sizeof b);
    /* -> (17, 17, 64) -> (8, 8, 128) -> (4, 4, 256) -> (2, 2, 256) */
    for (int i = 0; i < TS_FACE_RESIDUALS && st == TS_OK; i++) {
        st = ts_face_residual_forward(&net->res[i], &a, &b, threads, err);
        ts_fmap_free(&a);
        a = b;
        memset(&b, 0, sizeof b);
    }
    if (st == TS_OK) {
        /* Global average pool, then the linear map to 128 values. */
        int c = a.c;
        double mean[256] = {0};
        if (c > 256) {
            st = ts_error_set(err, TS_ERR_INTERNAL, "recognition net ends with %d channels", c);
            goto done;
        }
        size_t pixels = (size_t)a.h * a.w;
        for (size_t p = 0; p < pixels; p++)
            for (int ch = 0; ch < c; ch++)
                mean[ch] += a.data[p * c + ch];
        for (int ch = 0; ch < c; ch++)
            mean[ch] /= (double)pixels;
        for (int j = 0; j < TS_FACE_DESCRIPTOR_DIM; j++) {
            double s = 0.0;
            for (int ch = 0; ch < c; ch++)
                s += mean[ch] * net->fc[(size_t)ch * TS_FACE_DESCRIPTOR_DIM + j];
            out[j] = (float)s;
        }
        sodium_memzero(mean, sizeof mean);
    }
done:
    ts_fmap_free(&a);
    ts_fmap_free(&b);
    return st;
}
