/*
 * ts_nn.h - layers shared by the three networks (internal to src/engine):
 * loading a layer's weights by name with the expected shapes, and the
 * forward functions of ResnetBlock2D, the attention projections and the
 * norms, written once for the UNet and the VAE.
 *
 * A ts_nn_loader carries what loading needs (weights, oneDNN context, name
 * prefix, error); a ts_nn_run what a forward pass needs (oneDNN context,
 * scratch arena, error). Every forward takes plain (B, C, H, W) or (B, L, D)
 * buffers owned by the caller and uses the arena only between a mark and its
 * release.
 */
#ifndef TS_NN_H
#define TS_NN_H

#include <stdint.h>

#include "ts_dnnl.h"
#include "ts_error.h"
#include "ts_models.h"
#include "ts_ops.h"
#include "ts_tensor.h"
#include "ts_weights.h"

#define TS_NN_NAME_MAX 256

typedef struct ts_nn_loader {
    ts_weights *w;
    ts_dnnl *dnnl;
    const char *prefix;
    ts_error *err;
    float *staging; /* kernel conversion buffer, grown as needed */
    size_t staging_n;
} ts_nn_loader;

typedef struct ts_nn_run {
    ts_dnnl *dnnl;
    ts_arena *arena;
    ts_error *err;
} ts_nn_run;

/* Forward-pass plumbing shared by the model files. Both expect, in the
 * calling function, a local `ts_status s`, a `done:` cleanup label and a
 * `ts_nn_run *run`.
 *   TS_NN_TRY(x):         s = x; on failure jump to done.
 *   TS_NN_SCRATCH(p, n):  p = n floats from run->arena (released with the
 *                         arena); on failure s = run->err->status, jump to done. */
#define TS_NN_TRY(x)                                                                               \
    do {                                                                                           \
        if ((s = (x)) != TS_OK)                                                                    \
            goto done;                                                                             \
    } while (0)

#define TS_NN_SCRATCH(p, n)                                                                        \
    do {                                                                                           \
        if (!((p) = ts_arena_floats(run->arena, (n), run->err))) {                                 \
            s = run->err->status;                                                                  \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

void ts_nn_loader_free(ts_nn_loader *ld);

/* A network's oneDNN context and arena: those of shared, or, when shared is
 * NULL, new ones (*owned = 1, arena limited to own_arena_max bytes). */
ts_status ts_nn_scratch_attach(ts_nn_scratch *shared, size_t own_arena_max, ts_dnnl **dnnl,
                               ts_arena **arena, int *owned, ts_error *err);

/* Releases what attach made when owned; shared scratch stays. */
void ts_nn_scratch_detach(int owned, ts_dnnl *dnnl, ts_arena *arena);

/* prefix + name; names longer than TS_NN_NAME_MAX are a bug of ours. */
void ts_nn_name(const ts_nn_loader *ld, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Vector (n) name, f32, borrowed from the weights. */
ts_status ts_nn_vec(ts_nn_loader *ld, const char *name, int n, const float **out);

typedef struct ts_nn_norm {
    const float *gamma, *beta; /* (C) */
    int c;
} ts_nn_norm;

ts_status ts_nn_norm_load(ts_nn_loader *ld, ts_nn_norm *n, const char *name, int c);

/* name.weight (out, in) [+ name.bias (out)]. kernel1x1: the weight is stored
 * as a 1x1 convolution (out, in, 1, 1). */
ts_status ts_nn_linear_load(ts_nn_loader *ld, ts_linear *l, const char *name, int in, int out,
                            int bias, int kernel1x1);

/* name.weight (cout, cin, k, k) + name.bias (cout), padding per side. */
ts_status ts_nn_conv_load(ts_nn_loader *ld, ts_conv2d *c, const char *name, int cin, int cout,
                          int k, int stride, int pt, int pl, int pb, int pr);

/* ------------------------------------------------------------ ResnetBlock2D */

typedef struct ts_nn_resnet {
    int cin, cout, groups;
    float eps;
    ts_nn_norm norm1, norm2;
    ts_conv2d conv1, conv2;
    int has_temb;
    ts_linear temb_proj; /* time_emb_proj: (temb_dim) -> (cout) */
    int has_shortcut;
    ts_conv2d shortcut; /* conv_shortcut 1x1 when cin != cout */
} ts_nn_resnet;

/* temb_dim 0: no time embedding (VAE). shortcut_name: "conv_shortcut". */
ts_status ts_nn_resnet_load(ts_nn_loader *ld, ts_nn_resnet *r, const char *name, int cin, int cout,
                            int temb_dim, int groups, float eps);
void ts_nn_resnet_free(ts_nn_resnet *r);

/* x: (B, cin, H, W), temb_act: (B, temb_dim) after SiLU or NULL,
 * y: (B, cout, H, W), y != x. */
ts_status ts_nn_resnet_forward(ts_nn_run *run, const ts_nn_resnet *r, const float *x, int b, int h,
                               int w, const float *temb_act, float *y);

/* ------------------------------------------------------------ attention */

/* Multi-head attention projections: q from x (dim), k and v from the context
 * (ctx_dim), to_out back to dim with bias. */
typedef struct ts_nn_attn {
    int dim, ctx_dim, heads;
    ts_linear q, k, v, out;
} ts_nn_attn;

/* x: (B, L, dim), ctx: (B, T, ctx_dim) or NULL for self-attention.
 * y (B, L, dim) += out(attention(q(x), k(ctx), v(ctx))) (a residual add:
 * y may be the residual stream itself; x must not alias y). causal for CLIP. */
ts_status ts_nn_attn_forward(ts_nn_run *run, const ts_nn_attn *a, const float *x, int b, int l,
                             const float *ctx, int t, int causal, float *y);

#endif
