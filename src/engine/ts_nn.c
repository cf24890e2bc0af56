/*
 * ts_nn.c - shared layers (see ts_nn.h).
 */
#include "ts_nn.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ts_nn_loader_free(ts_nn_loader *ld)
{
    free(ld->staging);
    ld->staging = NULL;
    ld->staging_n = 0;
}

/* ------------------------------------------------------------ scratch */

/* The largest arena a shared scratch may grow to: the VAE's bound, the
 * largest of the three networks. */
#define SHARED_ARENA_MAX ((size_t)12 << 30)

struct ts_nn_scratch {
    ts_dnnl *dnnl;
    ts_arena *arena;
};

ts_status ts_nn_scratch_create(ts_nn_scratch **out, ts_error *err)
{
    ts_nn_scratch *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating scratch memory");
    ts_status s = ts_dnnl_create(1, &sc->dnnl, err);
    if (s == TS_OK)
        s = ts_arena_create(SHARED_ARENA_MAX, &sc->arena, err);
    if (s != TS_OK) {
        ts_nn_scratch_destroy(sc);
        return s;
    }
    *out = sc;
    return TS_OK;
}

void ts_nn_scratch_destroy(ts_nn_scratch *sc)
{
    if (!sc)
        return;
    ts_arena_destroy(sc->arena);
    ts_dnnl_destroy(sc->dnnl);
    free(sc);
}

ts_status ts_nn_scratch_attach(ts_nn_scratch *shared, size_t own_arena_max, ts_dnnl **dnnl,
                               ts_arena **arena, int *owned, ts_error *err)
{
    *dnnl = NULL;
    *arena = NULL;
    *owned = shared == NULL;
    if (shared) {
        *dnnl = shared->dnnl;
        *arena = shared->arena;
        return TS_OK;
    }
    ts_status s = ts_dnnl_create(1, dnnl, err);
    if (s == TS_OK)
        s = ts_arena_create(own_arena_max, arena, err);
    return s; /* on failure the caller's destroy detaches what was made */
}

void ts_nn_scratch_detach(int owned, ts_dnnl *dnnl, ts_arena *arena)
{
    if (!owned)
        return;
    ts_arena_destroy(arena);
    ts_dnnl_destroy(dnnl);
}

/* ------------------------------------------------------------ names */

void ts_nn_name(const ts_nn_loader *ld, char *buf, const char *fmt, ...)
{
    int n = snprintf(buf, TS_NN_NAME_MAX, "%s", ld->prefix ? ld->prefix : "");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, (size_t)(TS_NN_NAME_MAX - n), fmt, ap);
    va_end(ap);
    assert(n + m < TS_NN_NAME_MAX);
    (void)m;
}

ts_status ts_nn_vec(ts_nn_loader *ld, const char *name, int n, const float **out)
{
    char full[TS_NN_NAME_MAX];
    ts_nn_name(ld, full, "%s", name);
    int64_t shape[1] = {n};
    return ts_weights_get_f32(ld->w, full, 1, shape, out, ld->err);
}

ts_status ts_nn_norm_load(ts_nn_loader *ld, ts_nn_norm *nm, const char *name, int c)
{
    char buf[TS_NN_NAME_MAX];
    nm->c = c;
    snprintf(buf, sizeof(buf), "%s.weight", name);
    ts_status s = ts_nn_vec(ld, buf, c, &nm->gamma);
    if (s != TS_OK)
        return s;
    snprintf(buf, sizeof(buf), "%s.bias", name);
    return ts_nn_vec(ld, buf, c, &nm->beta);
}

ts_status ts_nn_linear_load(ts_nn_loader *ld, ts_linear *l, const char *name, int in, int out,
                            int bias, int kernel1x1)
{
    char full[TS_NN_NAME_MAX];
    ts_nn_name(ld, full, "%s.weight", name);
    int64_t shape[4] = {out, in, 1, 1};
    memset(l, 0, sizeof(*l));
    l->in = in;
    l->out = out;
    /* f16/bf16 weights stay as they are in the file (widened per call). */
    ts_wview view;
    ts_status s = ts_weights_get_view(ld->w, full, kernel1x1 ? 4 : 2, shape, &view, ld->err);
    if (s != TS_OK)
        return s;
    if (view.dtype == TS_DTYPE_F32) {
        l->w = view.data;
    } else {
        l->wh = view.data;
        l->wh_dtype = view.dtype;
    }
    if (!bias)
        return TS_OK;
    char b[TS_NN_NAME_MAX];
    snprintf(b, sizeof(b), "%s.bias", name);
    return ts_nn_vec(ld, b, out, &l->b);
}

ts_status ts_nn_conv_load(ts_nn_loader *ld, ts_conv2d *c, const char *name, int cin, int cout,
                          int k, int stride, int pt, int pl, int pb, int pr)
{
    char full[TS_NN_NAME_MAX];
    size_t n = (size_t)cout * cin * k * k;
    if (ld->staging_n < n) {
        free(ld->staging);
        ld->staging = malloc(n * sizeof(float));
        ld->staging_n = ld->staging ? n : 0;
        if (!ld->staging)
            return ts_error_set(ld->err, TS_ERR_NOMEM, "out of memory loading %s", name);
    }
    ts_nn_name(ld, full, "%s.weight", name);
    int64_t shape[4] = {cout, cin, k, k};
    ts_status s = ts_weights_copy_f32(ld->w, full, 4, shape, ld->staging, ld->err);
    if (s != TS_OK)
        return s;
    const float *bias;
    char b[TS_NN_NAME_MAX];
    snprintf(b, sizeof(b), "%s.bias", name);
    s = ts_nn_vec(ld, b, cout, &bias);
    if (s != TS_OK)
        return s;
    s = ts_conv2d_init(ld->dnnl, c, ld->staging, bias, cin, cout, k, stride, pt, pl, pb, pr,
                       ld->err);
    /* A kernel from an f16/bf16 file is kept in that type, already repacked. */
    const ts_st_tensor *t = ts_weights_find(ld->w, full);
    if (s == TS_OK && t->dtype != TS_DTYPE_F32)
        s = ts_conv2d_keep_half(c, t->dtype, ld->err);
    if (s != TS_OK)
        return ts_error_wrap(ld->err, "%s", full);
    return TS_OK;
}

/* ------------------------------------------------------------ ResnetBlock2D */

ts_status ts_nn_resnet_load(ts_nn_loader *ld, ts_nn_resnet *r, const char *name, int cin, int cout,
                            int temb_dim, int groups, float eps)
{
    char buf[TS_NN_NAME_MAX];
    ts_status s;
    memset(r, 0, sizeof(*r));
    r->cin = cin;
    r->cout = cout;
    r->groups = groups;
    r->eps = eps;
#define SUB(x) (snprintf(buf, sizeof(buf), "%s.%s", name, x), buf)
    if ((s = ts_nn_norm_load(ld, &r->norm1, SUB("norm1"), cin)) != TS_OK)
        return s;
    if ((s = ts_nn_conv_load(ld, &r->conv1, SUB("conv1"), cin, cout, 3, 1, 1, 1, 1, 1)) != TS_OK)
        return s;
    if (temb_dim > 0) {
        r->has_temb = 1;
        s = ts_nn_linear_load(ld, &r->temb_proj, SUB("time_emb_proj"), temb_dim, cout, 1, 0);
        if (s != TS_OK)
            return s;
    }
    if ((s = ts_nn_norm_load(ld, &r->norm2, SUB("norm2"), cout)) != TS_OK)
        return s;
    if ((s = ts_nn_conv_load(ld, &r->conv2, SUB("conv2"), cout, cout, 3, 1, 1, 1, 1, 1)) != TS_OK)
        return s;
    if (cin != cout) {
        r->has_shortcut = 1;
        s = ts_nn_conv_load(ld, &r->shortcut, SUB("conv_shortcut"), cin, cout, 1, 1, 0, 0, 0, 0);
        if (s != TS_OK)
            return s;
    }
#undef SUB
    return TS_OK;
}

void ts_nn_resnet_free(ts_nn_resnet *r)
{
    ts_conv2d_free(&r->conv1);
    ts_conv2d_free(&r->conv2);
    if (r->has_shortcut)
        ts_conv2d_free(&r->shortcut);
}

ts_status ts_nn_resnet_forward(ts_nn_run *run, const ts_nn_resnet *r, const float *x, int b, int h,
                               int w, const float *temb_act, float *y)
{
    size_t hw = (size_t)h * w;
    ts_status s = TS_OK;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *t = ts_arena_floats(run->arena, (size_t)b * (r->cin > r->cout ? r->cin : r->cout) * hw,
                               run->err);
    float *u = ts_arena_floats(run->arena, (size_t)b * r->cout * hw, run->err);
    if (!t || !u) {
        s = run->err->status;
        goto done;
    }

    /* t = silu(norm1(x))                       (B, Cin, H, W) */
    ts_op_group_norm(x, b, r->cin, hw, r->groups, r->norm1.gamma, r->norm1.beta, r->eps, 1, t);
    /* u = conv1(t)                              (B, Cout, H, W) */
    if ((s = ts_conv2d_forward(run->dnnl, &r->conv1, t, b, h, w, u, run->err)) != TS_OK)
        goto done;
    /* u += time_emb_proj(silu(temb))[:, :, None, None] */
    if (r->has_temb && temb_act) {
        float *tb = ts_arena_floats(run->arena, (size_t)b * r->cout, run->err);
        if (!tb) {
            s = run->err->status;
            goto done;
        }
        if ((s = ts_linear_forward(run->dnnl, &r->temb_proj, temb_act, b, tb, 0, run->err)) !=
            TS_OK)
            goto done;
        ts_op_add_channel_bias(u, b, r->cout, hw, tb);
    }
    /* t = silu(norm2(u)); y = conv2(t)         (B, Cout, H, W) */
    ts_op_group_norm(u, b, r->cout, hw, r->groups, r->norm2.gamma, r->norm2.beta, r->eps, 1, t);
    if ((s = ts_conv2d_forward(run->dnnl, &r->conv2, t, b, h, w, y, run->err)) != TS_OK)
        goto done;
    /* y += shortcut(x) */
    if (r->has_shortcut) {
        if ((s = ts_conv2d_forward(run->dnnl, &r->shortcut, x, b, h, w, u, run->err)) != TS_OK)
            goto done;
        ts_op_add_inplace(y, u, (size_t)b * r->cout * hw);
    } else {
        ts_op_add_inplace(y, x, (size_t)b * r->cout * hw);
    }
done:
    ts_arena_restore(run->arena, m);
    return s;
}

/* ------------------------------------------------------------ attention */

ts_status ts_nn_attn_forward(ts_nn_run *run, const ts_nn_attn *a, const float *x, int b, int l,
                             const float *ctx, int t, int causal, float *y)
{
    ts_status s;
    const float *src = ctx ? ctx : x;
    int lk = ctx ? t : l;
    int d = a->dim;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *q = ts_arena_floats(run->arena, (size_t)b * l * d, run->err);
    float *k = ts_arena_floats(run->arena, (size_t)b * lk * d, run->err);
    float *v = ts_arena_floats(run->arena, (size_t)b * lk * d, run->err);
    float *o = ts_arena_floats(run->arena, (size_t)b * l * d, run->err);
    if (!q || !k || !v || !o) {
        s = run->err->status;
        goto done;
    }
    /* q (B, L, D), k and v (B, Lk, D) */
    if ((s = ts_linear_forward(run->dnnl, &a->q, x, b * l, q, 0, run->err)) != TS_OK ||
        (s = ts_linear_forward(run->dnnl, &a->k, src, b * lk, k, 0, run->err)) != TS_OK ||
        (s = ts_linear_forward(run->dnnl, &a->v, src, b * lk, v, 0, run->err)) != TS_OK)
        goto done;
    /* o = softmax(q k^T / sqrt(dh)) v per head, in blocks of queries */
    int dh = d / a->heads;
    ts_attention_args aa = {.batch = b,
                            .heads = a->heads,
                            .lq = l,
                            .lk = lk,
                            .dh = dh,
                            .q = q,
                            .ldq = d,
                            .k = k,
                            .ldk = d,
                            .v = v,
                            .ldv = d,
                            .out = o,
                            .ldo = d,
                            .scale = 1.0f / sqrtf((float)dh),
                            .causal = causal,
                            .block_q = 0};
    if ((s = ts_op_attention(run->dnnl, run->arena, &aa, run->err)) != TS_OK)
        goto done;
    /* y += to_out(o) */
    s = ts_linear_forward(run->dnnl, &a->out, o, b * l, y, 1, run->err);
done:
    ts_arena_restore(run->arena, m);
    return s;
}
