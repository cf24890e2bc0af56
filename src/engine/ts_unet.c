/*
 * ts_unet.c - UNet2DConditionModel: time embedding, down blocks, mid block,
 * up blocks with skip connections, built entirely from ts_unet_config.
 *
 * Weight names are diffusers' (prefix + "conv_in.weight",
 * "down_blocks.<i>.resnets.<j>", "down_blocks.<i>.attentions.<j>",
 * "down_blocks.<i>.downsamplers.0.conv", "mid_block.*",
 * "up_blocks.<i>.{resnets,attentions}.<j>", "up_blocks.<i>.upsamplers.0.conv",
 * "conv_norm_out", "conv_out").
 *
 * Memory: skip activations live from the down pass to the up pass, so they
 * are allocated first in the arena; everything else alternates between two
 * ping-pong buffers sized for the largest activation, and block temporaries
 * are released when each block returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_config.h"
#include "ts_nn.h"

#define MAXB   6
#define MAXL   8
#define MAXT   4
#define GN_EPS 1e-6f /* Transformer2DModel's GroupNorm */

/* ------------------------------------------------------------ structures */

typedef struct basic_block { /* BasicTransformerBlock */
    ts_nn_norm norm1, norm2, norm3;
    ts_nn_attn attn1, attn2;
    ts_linear ff_in, ff_out; /* GEGLU proj (D -> 2F), then (F -> D) */
} basic_block;

typedef struct transformer { /* Transformer2DModel */
    int c, inner;
    ts_nn_norm norm;
    ts_linear proj_in, proj_out;
    basic_block blocks[MAXT];
} transformer;

typedef struct level { /* one down block and its mirrored up block */
    ts_nn_resnet down_res[MAXL];
    transformer down_attn[MAXL];
    int has_down_attn, has_downsample;
    ts_conv2d downsample;
    ts_nn_resnet up_res[MAXL + 1];
    transformer up_attn[MAXL + 1];
    int has_up_attn, has_upsample;
    ts_conv2d upsample;
} level;

struct ts_unet {
    ts_unet_config cfg;
    ts_linear time_1, time_2;
    ts_conv2d conv_in, conv_out;
    ts_nn_norm norm_out;
    level levels[MAXB]; /* levels[i]: down_blocks[i] and up_blocks[n-1-i] */
    ts_nn_resnet mid_res[2];
    transformer mid_attn;
    ts_dnnl *dnnl;
    ts_arena *arena;
    int own_scratch; /* 1: dnnl and arena are this network's own */
    uint64_t last_flops;
};

/* ------------------------------------------------------------ loading */

static ts_status transformer_load(ts_nn_loader *ld, const ts_unet_config *cfg, transformer *t,
                                  const char *p, int c, int heads)
{
    char n[TS_NN_NAME_MAX];
    ts_status s;
    int lin = cfg->use_linear_projection, inner = c, ctx = cfg->cross_attention_dim;
    t->c = c;
    t->inner = inner;
#define N(...) (snprintf(n, sizeof(n), __VA_ARGS__), n)
    if ((s = ts_nn_norm_load(ld, &t->norm, N("%s.norm", p), c)) != TS_OK ||
        (s = ts_nn_linear_load(ld, &t->proj_in, N("%s.proj_in", p), c, inner, 1, !lin)) != TS_OK ||
        (s = ts_nn_linear_load(ld, &t->proj_out, N("%s.proj_out", p), inner, c, 1, !lin)) != TS_OK)
        return s;
    for (int k = 0; k < cfg->transformer_layers; k++) {
        basic_block *b = &t->blocks[k];
        char q[TS_NN_NAME_MAX];
        snprintf(q, sizeof(q), "%s.transformer_blocks.%d", p, k);
        b->attn1 = (ts_nn_attn){.dim = inner, .ctx_dim = inner, .heads = heads};
        b->attn2 = (ts_nn_attn){.dim = inner, .ctx_dim = ctx, .heads = heads};
        if ((s = ts_nn_norm_load(ld, &b->norm1, N("%s.norm1", q), inner)) != TS_OK ||
            (s = ts_nn_norm_load(ld, &b->norm2, N("%s.norm2", q), inner)) != TS_OK ||
            (s = ts_nn_norm_load(ld, &b->norm3, N("%s.norm3", q), inner)) != TS_OK ||
            (s = ts_nn_linear_load(ld, &b->attn1.q, N("%s.attn1.to_q", q), inner, inner, 0, 0)) ||
            (s = ts_nn_linear_load(ld, &b->attn1.k, N("%s.attn1.to_k", q), inner, inner, 0, 0)) ||
            (s = ts_nn_linear_load(ld, &b->attn1.v, N("%s.attn1.to_v", q), inner, inner, 0, 0)) ||
            (s = ts_nn_linear_load(ld, &b->attn1.out, N("%s.attn1.to_out.0", q), inner, inner, 1,
                                   0)) ||
            (s = ts_nn_linear_load(ld, &b->attn2.q, N("%s.attn2.to_q", q), inner, inner, 0, 0)) ||
            (s = ts_nn_linear_load(ld, &b->attn2.k, N("%s.attn2.to_k", q), ctx, inner, 0, 0)) ||
            (s = ts_nn_linear_load(ld, &b->attn2.v, N("%s.attn2.to_v", q), ctx, inner, 0, 0)) ||
            (s = ts_nn_linear_load(ld, &b->attn2.out, N("%s.attn2.to_out.0", q), inner, inner, 1,
                                   0)) ||
            (s = ts_nn_linear_load(ld, &b->ff_in, N("%s.ff.net.0.proj", q), inner, 8 * inner, 1,
                                   0)) ||
            (s = ts_nn_linear_load(ld, &b->ff_out, N("%s.ff.net.2", q), 4 * inner, inner, 1, 0)))
            return s;
    }
#undef N
    return TS_OK;
}

static void level_free(level *lv)
{
    for (int j = 0; j < MAXL; j++)
        ts_nn_resnet_free(&lv->down_res[j]);
    for (int j = 0; j < MAXL + 1; j++)
        ts_nn_resnet_free(&lv->up_res[j]);
    ts_conv2d_free(&lv->downsample);
    ts_conv2d_free(&lv->upsample);
}

ts_status ts_unet_create(const ts_unet_config *cfg, ts_weights *w, const char *prefix,
                         ts_nn_scratch *scratch, ts_unet **out, ts_error *err)
{
    ts_status s = ts_unet_config_check(cfg, err);
    if (s != TS_OK)
        return s;
    if (cfg->layers_per_block > MAXL || cfg->transformer_layers > MAXT)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "UNet with %d layers per block or %d transformer layers (limits %d, "
                            "%d)",
                            cfg->layers_per_block, cfg->transformer_layers, MAXL, MAXT);
    ts_unet *u = calloc(1, sizeof(*u));
    if (!u)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating the UNet");
    u->cfg = *cfg;
    ts_nn_loader ld = {.w = w, .prefix = prefix, .err = err};
    if ((s = ts_nn_scratch_attach(scratch, (size_t)8 << 30, &u->dnnl, &u->arena, &u->own_scratch,
                                  err)) != TS_OK)
        goto fail;
    ld.dnnl = u->dnnl;

    int nb = cfg->n_blocks, L = cfg->layers_per_block, td = cfg->time_embed_dim;
    const int *ch = cfg->block_out_channels;
    int g = cfg->norm_groups;
    float eps = cfg->norm_eps;
    char n[TS_NN_NAME_MAX];
#define N(...) (snprintf(n, sizeof(n), __VA_ARGS__), n)

    if ((s = ts_nn_linear_load(&ld, &u->time_1, "time_embedding.linear_1", ch[0], td, 1, 0)) ||
        (s = ts_nn_linear_load(&ld, &u->time_2, "time_embedding.linear_2", td, td, 1, 0)) ||
        (s = ts_nn_conv_load(&ld, &u->conv_in, "conv_in", cfg->in_channels, ch[0], 3, 1, 1, 1, 1,
                             1)))
        goto fail;

    /* Down blocks: resnets (and attentions), then a stride-2 conv except last. */
    int cur = ch[0];
    for (int i = 0; i < nb; i++) {
        level *lv = &u->levels[i];
        lv->has_down_attn = cfg->down_cross_attn[i];
        for (int j = 0; j < L; j++) {
            if ((s = ts_nn_resnet_load(&ld, &lv->down_res[j], N("down_blocks.%d.resnets.%d", i, j),
                                       cur, ch[i], td, g, eps)))
                goto fail;
            cur = ch[i];
            if (lv->has_down_attn && (s = transformer_load(&ld, cfg, &lv->down_attn[j],
                                                           N("down_blocks.%d.attentions.%d", i, j),
                                                           ch[i], cfg->heads[i])))
                goto fail;
        }
        if (i < nb - 1) {
            int p = cfg->downsample_padding;
            lv->has_downsample = 1;
            if ((s = ts_nn_conv_load(&ld, &lv->downsample,
                                     N("down_blocks.%d.downsamplers.0.conv", i), cur, cur, 3, 2, p,
                                     p, p, p)))
                goto fail;
        }
    }

    /* Mid block: resnet, transformer, resnet at the deepest level. */
    int cm = ch[nb - 1];
    if ((s = ts_nn_resnet_load(&ld, &u->mid_res[0], "mid_block.resnets.0", cm, cm, td, g, eps)) ||
        (s = transformer_load(&ld, cfg, &u->mid_attn, "mid_block.attentions.0", cm,
                              cfg->heads[nb - 1])) ||
        (s = ts_nn_resnet_load(&ld, &u->mid_res[1], "mid_block.resnets.1", cm, cm, td, g, eps)))
        goto fail;

    /* Up blocks: up_blocks[i] mirrors level n-1-i; resnet j takes the running
     * activation concatenated with one skip (the last one popped first). */
    int prev = cm;
    for (int i = 0; i < nb; i++) {
        int lvl = nb - 1 - i;
        level *lv = &u->levels[lvl];
        int out_ch = ch[lvl];
        lv->has_up_attn = cfg->up_cross_attn[i];
        for (int j = 0; j < L + 1; j++) {
            /* The skip's channels: the down path pushed conv_in (ch[0]), then
             * per level L resnet outputs and a downsample output. */
            int skip_ch = (j == L) ? (lvl > 0 ? ch[lvl - 1] : ch[0]) : ch[lvl];
            int cin = (j == 0 ? prev : out_ch) + skip_ch;
            if ((s = ts_nn_resnet_load(&ld, &lv->up_res[j], N("up_blocks.%d.resnets.%d", i, j), cin,
                                       out_ch, td, g, eps)))
                goto fail;
            if (lv->has_up_attn && (s = transformer_load(&ld, cfg, &lv->up_attn[j],
                                                         N("up_blocks.%d.attentions.%d", i, j),
                                                         out_ch, cfg->heads[lvl])))
                goto fail;
        }
        prev = out_ch;
        if (i < nb - 1) {
            lv->has_upsample = 1;
            if ((s = ts_nn_conv_load(&ld, &lv->upsample, N("up_blocks.%d.upsamplers.0.conv", i),
                                     out_ch, out_ch, 3, 1, 1, 1, 1, 1)))
                goto fail;
        }
    }
    if ((s = ts_nn_norm_load(&ld, &u->norm_out, "conv_norm_out", ch[0])) ||
        (s = ts_nn_conv_load(&ld, &u->conv_out, "conv_out", ch[0], cfg->out_channels, 3, 1, 1, 1, 1,
                             1)))
        goto fail;
#undef N
    ts_nn_loader_free(&ld);
    *out = u;
    return TS_OK;
fail:
    ts_nn_loader_free(&ld);
    ts_unet_destroy(u);
    return ts_error_wrap(err, "loading the UNet");
}

void ts_unet_destroy(ts_unet *u)
{
    if (!u)
        return;
    for (int i = 0; i < MAXB; i++)
        level_free(&u->levels[i]);
    ts_nn_resnet_free(&u->mid_res[0]);
    ts_nn_resnet_free(&u->mid_res[1]);
    ts_conv2d_free(&u->conv_in);
    ts_conv2d_free(&u->conv_out);
    ts_nn_scratch_detach(u->own_scratch, u->dnnl, u->arena);
    free(u);
}

/* ------------------------------------------------------------ forward */

/* BasicTransformerBlock on the token stream h (B, L, D), in place:
 *   h += attn1(norm1(h))            self-attention
 *   h += attn2(norm2(h), context)   cross-attention, context (B, T, Dc)
 *   h += ff(norm3(h))               GEGLU feed-forward, inner width 4D */
static ts_status basic_block_forward(ts_nn_run *run, const basic_block *bb, float *h, int b, int l,
                                     const float *ctx, int t)
{
    ts_status s = TS_OK;
    int d = bb->attn1.dim, f = 4 * d;
    size_t rows = (size_t)b * l;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *n, *g, *a;
    TS_NN_SCRATCH(n, rows * d);
    ts_op_layer_norm(h, rows, d, bb->norm1.gamma, bb->norm1.beta, 1e-5f, n);
    TS_NN_TRY(ts_nn_attn_forward(run, &bb->attn1, n, b, l, NULL, 0, 0, h));
    ts_op_layer_norm(h, rows, d, bb->norm2.gamma, bb->norm2.beta, 1e-5f, n);
    TS_NN_TRY(ts_nn_attn_forward(run, &bb->attn2, n, b, l, ctx, t, 0, h));
    ts_op_layer_norm(h, rows, d, bb->norm3.gamma, bb->norm3.beta, 1e-5f, n);
    TS_NN_SCRATCH(g, rows * 2 * f); /* (B*L, 2F): hidden and gate halves */
    TS_NN_SCRATCH(a, rows * f);     /* (B*L, F) */
    TS_NN_TRY(ts_linear_forward(run->dnnl, &bb->ff_in, n, (int)rows, g, 0, run->err));
    ts_op_geglu(g, rows, (size_t)f, a);
    TS_NN_TRY(ts_linear_forward(run->dnnl, &bb->ff_out, a, (int)rows, h, 1, run->err));
done:
    ts_arena_restore(run->arena, m);
    return s;
}

/* Transformer2DModel on x (B, C, H, W), in place:
 *   tokens = proj_in(to_tokens(group_norm(x)))      (B, HW, inner)
 *   tokens = blocks(tokens, context)
 *   x += to_image(proj_out(tokens))
 * A 1x1-conv proj_in/out (SD 1.x) equals a Linear over channels, so both
 * layouts run as Linear on tokens. */
static ts_status transformer_forward(ts_unet *u, ts_nn_run *run, const transformer *tf, float *x,
                                     int b, int h, int w, const float *ctx, int t)
{
    ts_status s = TS_OK;
    size_t hw = (size_t)h * w;
    int c = tf->c, d = tf->inner;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *n, *tok, *hs;
    TS_NN_SCRATCH(n, (size_t)b * c * hw);
    TS_NN_SCRATCH(tok, (size_t)b * c * hw);
    TS_NN_SCRATCH(hs, (size_t)b * d * hw);
    ts_op_group_norm(x, b, c, hw, u->cfg.norm_groups, tf->norm.gamma, tf->norm.beta, GN_EPS, 0, n);
    ts_op_nchw_to_nhwc(n, b, c, hw, tok); /* (B, HW, C) */
    TS_NN_TRY(ts_linear_forward(run->dnnl, &tf->proj_in, tok, (int)(b * hw), hs, 0,
                                run->err)); /* (B, HW, D) */
    for (int k = 0; k < u->cfg.transformer_layers; k++)
        TS_NN_TRY(basic_block_forward(run, &tf->blocks[k], hs, b, (int)hw, ctx, t));
    TS_NN_TRY(ts_linear_forward(run->dnnl, &tf->proj_out, hs, (int)(b * hw), tok, 0, run->err));
    ts_op_nhwc_to_nchw(tok, b, c, hw, n);
    ts_op_add_inplace(x, n, (size_t)b * c * hw);
done:
    ts_arena_restore(run->arena, m);
    return s;
}

/* Upsample2D: nearest 2x then 3x3 conv. x (B, C, H, W) -> y (B, C, 2H, 2W). */
static ts_status upsample_forward(ts_nn_run *run, const ts_conv2d *conv, const float *x, int b,
                                  int h, int w, float *y)
{
    ts_status s = TS_OK;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *up;
    TS_NN_SCRATCH(up, (size_t)b * conv->cin * 4 * h * w);
    ts_op_upsample_nearest2x(x, b, conv->cin, h, w, up);
    s = ts_conv2d_forward(run->dnnl, conv, up, b, 2 * h, 2 * w, y, run->err);
done:
    ts_arena_restore(run->arena, m);
    return s;
}

ts_status ts_unet_forward(ts_unet *u, const float *x, int batch, int h, int w, float timestep,
                          const float *context, int tokens, float *out, ts_error *err)
{
    float ts[64];
    if (batch < 1 || batch > 64)
        return ts_error_set(err, TS_ERR_ARG, "UNet batch %d is outside 1..64", batch);
    for (int i = 0; i < batch; i++)
        ts[i] = timestep;
    return ts_unet_forward_t(u, x, batch, h, w, ts, context, tokens, out, err);
}

ts_status ts_unet_forward_t(ts_unet *u, const float *x, int batch, int h, int w,
                            const float *timesteps, const float *context, int tokens, float *out,
                            ts_error *err)
{
    const ts_unet_config *cfg = &u->cfg;
    int nb = cfg->n_blocks, L = cfg->layers_per_block, td = cfg->time_embed_dim;
    const int *ch = cfg->block_out_channels;
    int f = 1 << (nb - 1);
    if (batch < 1 || batch > 64 || h < f || w < f || h % f || w % f || h > 1024 || w > 1024 ||
        tokens < 1 || tokens > 4096)
        return ts_error_set(err, TS_ERR_ARG,
                            "UNet input %dx%d (batch %d, %d tokens): sizes must be multiples of "
                            "%d up to 1024",
                            h, w, batch, tokens, f);
    ts_nn_run runv = {u->dnnl, u->arena, err}, *run = &runv;
    ts_status s = TS_OK;
    ts_dnnl_flops_reset(u->dnnl);
    ts_arena_restore(u->arena, (ts_arena_mark){0, 0});
    ts_arena_mark m0 = ts_arena_save(u->arena);

    /* Largest activation between blocks: level l holds max(ch[l], ch[l+1])
     * channels (the upsampler writes the coarser level's channels). */
    size_t big = 0;
    for (int l = 0; l < nb; l++) {
        int c = ch[l] > (l + 1 < nb ? ch[l + 1] : 0) ? ch[l] : ch[l + 1 < nb ? l + 1 : l];
        size_t sz = (size_t)batch * c * (size_t)(h >> l) * (size_t)(w >> l);
        if (sz > big)
            big = sz;
    }
    float *temb, *emb, *pa, *pb;
    float *skips[1 + MAXB * (MAXL + 1)];
    int skip_c[1 + MAXB * (MAXL + 1)], n_skips = 0;
    TS_NN_SCRATCH(emb, (size_t)batch * ch[0]);
    TS_NN_SCRATCH(temb, (size_t)batch * td);
    TS_NN_SCRATCH(pa, big);
    TS_NN_SCRATCH(pb, big);

    /* Time embedding per batch element: sinusoidal (C0) -> linear_1 -> SiLU
     * -> linear_2 (TD), then SiLU once for every resnet's time_emb_proj. */
    float *t1;
    TS_NN_SCRATCH(t1, (size_t)batch * td);
    for (int bi = 0; bi < batch; bi++)
        ts_op_timestep_embedding(timesteps[bi], ch[0], cfg->flip_sin_to_cos, cfg->freq_shift,
                                 emb + (size_t)bi * ch[0]);
    TS_NN_TRY(ts_linear_forward(u->dnnl, &u->time_1, emb, batch, t1, 0, err));
    ts_op_silu(t1, (size_t)batch * td, t1);
    TS_NN_TRY(ts_linear_forward(u->dnnl, &u->time_2, t1, batch, temb, 0, err));
    ts_op_silu(temb, (size_t)batch * td, temb);

    /* conv_in: (B, in, H, W) -> (B, C0, H, W), the first skip. */
    float *cur;
    TS_NN_SCRATCH(cur, (size_t)batch * ch[0] * h * w);
    TS_NN_TRY(ts_conv2d_forward(u->dnnl, &u->conv_in, x, batch, h, w, cur, err));
    skips[n_skips] = cur;
    skip_c[n_skips++] = ch[0];
    int c = ch[0], hh = h, ww = w;

    /* Down path: every resnet(+transformer) output and every downsample
     * output is kept for the up path. */
    for (int i = 0; i < nb; i++) {
        level *lv = &u->levels[i];
        for (int j = 0; j < L; j++) {
            float *y;
            TS_NN_SCRATCH(y, (size_t)batch * ch[i] * hh * ww);
            TS_NN_TRY(ts_nn_resnet_forward(run, &lv->down_res[j], cur, batch, hh, ww, temb, y));
            if (lv->has_down_attn)
                TS_NN_TRY(transformer_forward(u, run, &lv->down_attn[j], y, batch, hh, ww, context,
                                              tokens));
            cur = y;
            c = ch[i];
            skips[n_skips] = cur;
            skip_c[n_skips++] = c;
        }
        if (lv->has_downsample) {
            float *y;
            TS_NN_SCRATCH(y, (size_t)batch * c * (hh / 2) * (ww / 2));
            TS_NN_TRY(ts_conv2d_forward(u->dnnl, &lv->downsample, cur, batch, hh, ww, y, err));
            hh /= 2;
            ww /= 2;
            cur = y;
            skips[n_skips] = cur;
            skip_c[n_skips++] = c;
        }
    }

    /* Mid block at the deepest level: resnet, transformer, resnet. */
    TS_NN_TRY(ts_nn_resnet_forward(run, &u->mid_res[0], cur, batch, hh, ww, temb, pa));
    TS_NN_TRY(transformer_forward(u, run, &u->mid_attn, pa, batch, hh, ww, context, tokens));
    TS_NN_TRY(ts_nn_resnet_forward(run, &u->mid_res[1], pa, batch, hh, ww, temb, pb));
    cur = pb;
    float *other = pa;

    /* Up path: concat with the last skip, resnet(+transformer); upsample. */
    for (int i = 0; i < nb; i++) {
        int lvl = nb - 1 - i;
        level *lv = &u->levels[lvl];
        for (int j = 0; j < L + 1; j++) {
            n_skips--;
            int sc = skip_c[n_skips];
            ts_arena_mark m = ts_arena_save(u->arena);
            float *cat;
            TS_NN_SCRATCH(cat, (size_t)batch * (c + sc) * hh * ww);
            ts_op_concat_channels(cur, c, skips[n_skips], sc, batch, (size_t)hh * ww, cat);
            s = ts_nn_resnet_forward(run, &lv->up_res[j], cat, batch, hh, ww, temb, other);
            ts_arena_restore(u->arena, m);
            if (s != TS_OK)
                goto done;
            c = ch[lvl];
            float *tmp = cur;
            cur = other;
            other = tmp;
            if (lv->has_up_attn)
                TS_NN_TRY(transformer_forward(u, run, &lv->up_attn[j], cur, batch, hh, ww, context,
                                              tokens));
        }
        if (lv->has_upsample) {
            TS_NN_TRY(upsample_forward(run, &lv->upsample, cur, batch, hh, ww, other));
            hh *= 2;
            ww *= 2;
            float *tmp = cur;
            cur = other;
            other = tmp;
        }
    }

    /* Output: SiLU(GroupNorm) then conv_out to (B, out, H, W). */
    ts_op_group_norm(cur, batch, c, (size_t)hh * ww, cfg->norm_groups, u->norm_out.gamma,
                     u->norm_out.beta, cfg->norm_eps, 1, other);
    TS_NN_TRY(ts_conv2d_forward(u->dnnl, &u->conv_out, other, batch, hh, ww, out, err));
    u->last_flops = ts_dnnl_flops(u->dnnl);
done:
    ts_arena_restore(u->arena, m0);
    return s;
}

uint64_t ts_unet_last_flops(const ts_unet *u)
{
    return u->last_flops;
}

size_t ts_unet_scratch_bytes(const ts_unet *u)
{
    return ts_arena_reserved(u->arena);
}
