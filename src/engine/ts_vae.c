/*
 * ts_vae.c - AutoencoderKL: the decoder (latents to pixels) and the encoder
 * (pixels to the latent distribution), built from ts_vae_config.
 *
 * Weight names are diffusers' (prefix + "encoder.conv_in",
 * "encoder.down_blocks.<i>.resnets.<j>", "encoder.down_blocks.<i>.downsamplers.0.conv",
 * "encoder.mid_block.{resnets.<j>,attentions.0}", "encoder.conv_norm_out",
 * "encoder.conv_out", "quant_conv", "post_quant_conv", and the mirror under
 * "decoder." with up_blocks). The mid-block attention is read under its
 * current names (group_norm, to_q, to_k, to_v, to_out.0) or the older ones
 * (query, key, value, proj_attn).
 *
 * All norms use eps 1e-6 as diffusers' AutoencoderKL does. The encoder's
 * downsampling pads (0, 1, 0, 1) before a stride-2 3x3 convolution.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_config.h"
#include "ts_nn.h"

#define MAXB    6
#define MAXL    9
#define VAE_EPS 1e-6f

typedef struct vae_attn { /* single-head self-attention over pixels */
    ts_nn_norm norm;
    ts_nn_attn attn;
} vae_attn;

typedef struct vae_mid {
    ts_nn_resnet res[2];
    int has_attn;
    vae_attn attn;
} vae_mid;

typedef struct vae_coder {
    int present;
    ts_conv2d conv_in, conv_out;
    ts_nn_resnet res[MAXB][MAXL];
    int n_res;
    int has_sample[MAXB];
    ts_conv2d sample[MAXB]; /* downsample (encoder) or upsample conv (decoder) */
    vae_mid mid;
    ts_nn_norm norm_out;
} vae_coder;

struct ts_vae {
    ts_vae_config cfg;
    vae_coder enc, dec;
    int has_quant, has_post_quant;
    ts_conv2d quant_conv, post_quant_conv;
    ts_dnnl *dnnl;
    ts_arena *arena;
    int own_scratch; /* 1: dnnl and arena are this network's own */
    uint64_t last_flops;
};

/* ------------------------------------------------------------ loading */

static ts_status attn_load(ts_nn_loader *ld, vae_attn *a, const char *p, int c)
{
    char n[TS_NN_NAME_MAX], full[TS_NN_NAME_MAX];
    ts_status s;
    a->attn = (ts_nn_attn){.dim = c, .ctx_dim = c, .heads = 1};
    /* Current diffusers names, else the pre-0.14 ones. */
    snprintf(n, sizeof(n), "%s.to_q.weight", p);
    ts_nn_name(ld, full, "%s", n);
    int modern = ts_weights_find(ld->w, full) != NULL;
    const char *names[5] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    const char *old[5] = {"group_norm", "query", "key", "value", "proj_attn"};
    const char **nm = modern ? names : old;
    /* 1x1-conv shaped weights appear in some conversions; accept both. */
    snprintf(n, sizeof(n), "%s.%s.weight", p, nm[1]);
    ts_nn_name(ld, full, "%s", n);
    const ts_st_tensor *t = ts_weights_find(ld->w, full);
    int k1 = t && t->ndim == 4;
#define N(x) (snprintf(n, sizeof(n), "%s.%s", p, x), n)
    if ((s = ts_nn_norm_load(ld, &a->norm, N(nm[0]), c)) ||
        (s = ts_nn_linear_load(ld, &a->attn.q, N(nm[1]), c, c, 1, k1)) ||
        (s = ts_nn_linear_load(ld, &a->attn.k, N(nm[2]), c, c, 1, k1)) ||
        (s = ts_nn_linear_load(ld, &a->attn.v, N(nm[3]), c, c, 1, k1)) ||
        (s = ts_nn_linear_load(ld, &a->attn.out, N(nm[4]), c, c, 1, k1)))
        return s;
#undef N
    return TS_OK;
}

static ts_status mid_load(ts_nn_loader *ld, const ts_vae_config *cfg, vae_mid *m, const char *p,
                          int c)
{
    char n[TS_NN_NAME_MAX];
    ts_status s;
    int g = cfg->norm_groups;
    snprintf(n, sizeof(n), "%s.resnets.0", p);
    if ((s = ts_nn_resnet_load(ld, &m->res[0], n, c, c, 0, g, VAE_EPS)))
        return s;
    if (cfg->mid_attention) {
        m->has_attn = 1;
        snprintf(n, sizeof(n), "%s.attentions.0", p);
        if ((s = attn_load(ld, &m->attn, n, c)))
            return s;
    }
    snprintf(n, sizeof(n), "%s.resnets.1", p);
    return ts_nn_resnet_load(ld, &m->res[1], n, c, c, 0, g, VAE_EPS);
}

static void coder_free(vae_coder *c)
{
    ts_conv2d_free(&c->conv_in);
    ts_conv2d_free(&c->conv_out);
    for (int i = 0; i < MAXB; i++) {
        for (int j = 0; j < MAXL; j++)
            ts_nn_resnet_free(&c->res[i][j]);
        ts_conv2d_free(&c->sample[i]);
    }
    ts_nn_resnet_free(&c->mid.res[0]);
    ts_nn_resnet_free(&c->mid.res[1]);
}

static ts_status encoder_load(ts_nn_loader *ld, const ts_vae_config *cfg, vae_coder *e)
{
    ts_status s;
    char n[TS_NN_NAME_MAX];
    int nb = cfg->n_blocks, L = cfg->layers_per_block, g = cfg->norm_groups;
    const int *ch = cfg->block_out_channels;
    e->n_res = L;
    if ((s = ts_nn_conv_load(ld, &e->conv_in, "encoder.conv_in", cfg->in_channels, ch[0], 3, 1, 1,
                             1, 1, 1)))
        return s;
    int cur = ch[0];
    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < L; j++) {
            snprintf(n, sizeof(n), "encoder.down_blocks.%d.resnets.%d", i, j);
            if ((s = ts_nn_resnet_load(ld, &e->res[i][j], n, cur, ch[i], 0, g, VAE_EPS)))
                return s;
            cur = ch[i];
        }
        if (i < nb - 1) {
            e->has_sample[i] = 1;
            snprintf(n, sizeof(n), "encoder.down_blocks.%d.downsamplers.0.conv", i);
            if ((s = ts_nn_conv_load(ld, &e->sample[i], n, cur, cur, 3, 2, 0, 0, 1, 1)))
                return s;
        }
    }
    if ((s = mid_load(ld, cfg, &e->mid, "encoder.mid_block", cur)) ||
        (s = ts_nn_norm_load(ld, &e->norm_out, "encoder.conv_norm_out", cur)) ||
        (s = ts_nn_conv_load(ld, &e->conv_out, "encoder.conv_out", cur, 2 * cfg->latent_channels, 3,
                             1, 1, 1, 1, 1)))
        return s;
    e->present = 1;
    return TS_OK;
}

static ts_status decoder_load(ts_nn_loader *ld, const ts_vae_config *cfg, vae_coder *d)
{
    ts_status s;
    char n[TS_NN_NAME_MAX];
    int nb = cfg->n_blocks, L = cfg->layers_per_block, g = cfg->norm_groups;
    const int *ch = cfg->block_out_channels;
    d->n_res = L + 1;
    int cur = ch[nb - 1];
    if ((s = ts_nn_conv_load(ld, &d->conv_in, "decoder.conv_in", cfg->latent_channels, cur, 3, 1, 1,
                             1, 1, 1)) ||
        (s = mid_load(ld, cfg, &d->mid, "decoder.mid_block", cur)))
        return s;
    for (int i = 0; i < nb; i++) {
        int out = ch[nb - 1 - i];
        for (int j = 0; j < L + 1; j++) {
            snprintf(n, sizeof(n), "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((s = ts_nn_resnet_load(ld, &d->res[i][j], n, cur, out, 0, g, VAE_EPS)))
                return s;
            cur = out;
        }
        if (i < nb - 1) {
            d->has_sample[i] = 1;
            snprintf(n, sizeof(n), "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if ((s = ts_nn_conv_load(ld, &d->sample[i], n, cur, cur, 3, 1, 1, 1, 1, 1)))
                return s;
        }
    }
    if ((s = ts_nn_norm_load(ld, &d->norm_out, "decoder.conv_norm_out", cur)) ||
        (s = ts_nn_conv_load(ld, &d->conv_out, "decoder.conv_out", cur, cfg->out_channels, 3, 1, 1,
                             1, 1, 1)))
        return s;
    d->present = 1;
    return TS_OK;
}

ts_status ts_vae_create(const ts_vae_config *cfg, ts_weights *w, const char *prefix,
                        ts_nn_scratch *scratch, ts_vae **out, ts_error *err)
{
    ts_status s = ts_vae_config_check(cfg, err);
    if (s != TS_OK)
        return s;
    if (cfg->layers_per_block + 1 > MAXL)
        return ts_error_set(err, TS_ERR_UNSUPPORTED, "VAE with %d layers per block (limit %d)",
                            cfg->layers_per_block, MAXL - 1);
    ts_vae *v = calloc(1, sizeof(*v));
    if (!v)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating the VAE");
    v->cfg = *cfg;
    ts_nn_loader ld = {.w = w, .prefix = prefix, .err = err};
    if ((s = ts_nn_scratch_attach(scratch, (size_t)12 << 30, &v->dnnl, &v->arena, &v->own_scratch,
                                  err)) != TS_OK)
        goto fail;
    ld.dnnl = v->dnnl;
    int lc = cfg->latent_channels;
    if ((s = decoder_load(&ld, cfg, &v->dec)))
        goto fail;
    if (cfg->use_post_quant_conv) {
        v->has_post_quant = 1;
        if ((s = ts_nn_conv_load(&ld, &v->post_quant_conv, "post_quant_conv", lc, lc, 1, 1, 0, 0, 0,
                                 0)))
            goto fail;
    }
    /* The encoder is optional: decode-only exports leave it out. */
    char full[TS_NN_NAME_MAX];
    ts_nn_name(&ld, full, "encoder.conv_in.weight");
    if (ts_weights_find(w, full)) {
        if ((s = encoder_load(&ld, cfg, &v->enc)))
            goto fail;
        if (cfg->use_quant_conv) {
            v->has_quant = 1;
            if ((s = ts_nn_conv_load(&ld, &v->quant_conv, "quant_conv", 2 * lc, 2 * lc, 1, 1, 0, 0,
                                     0, 0)))
                goto fail;
        }
    }
    ts_nn_loader_free(&ld);
    *out = v;
    return TS_OK;
fail:
    ts_nn_loader_free(&ld);
    ts_vae_destroy(v);
    return ts_error_wrap(err, "loading the VAE");
}

void ts_vae_destroy(ts_vae *v)
{
    if (!v)
        return;
    coder_free(&v->enc);
    coder_free(&v->dec);
    ts_conv2d_free(&v->quant_conv);
    ts_conv2d_free(&v->post_quant_conv);
    ts_nn_scratch_detach(v->own_scratch, v->dnnl, v->arena);
    free(v);
}

/* ------------------------------------------------------------ forward */

/* Mid-block attention on x (1, C, H, W), in place:
 *   x += to_image(to_out(attention(q, k, v of to_tokens(group_norm(x))))) */
static ts_status attn_forward(ts_nn_run *run, const vae_attn *a, float *x, int c, int h, int w,
                              int groups)
{
    ts_status s = TS_OK;
    size_t hw = (size_t)h * w;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *n, *tok, *o;
    TS_NN_SCRATCH(n, (size_t)c * hw);
    TS_NN_SCRATCH(tok, (size_t)c * hw);
    TS_NN_SCRATCH(o, (size_t)c * hw);
    ts_op_group_norm(x, 1, c, hw, groups, a->norm.gamma, a->norm.beta, VAE_EPS, 0, n);
    ts_op_nchw_to_nhwc(n, 1, c, hw, tok); /* (HW, C) */
    memset(o, 0, (size_t)c * hw * sizeof(float));
    TS_NN_TRY(ts_nn_attn_forward(run, &a->attn, tok, 1, (int)hw, NULL, 0, 0, o));
    ts_op_nhwc_to_nchw(o, 1, c, hw, n);
    ts_op_add_inplace(x, n, (size_t)c * hw);
done:
    ts_arena_restore(run->arena, m);
    return s;
}

/* UNetMidBlock2D: resnet, attention, resnet. x (1, C, H, W) -> y, using tmp. */
static ts_status mid_forward(ts_nn_run *run, const vae_mid *m, const float *x, int c, int h, int w,
                             int groups, float *tmp, float *y)
{
    ts_status s;
    if ((s = ts_nn_resnet_forward(run, &m->res[0], x, 1, h, w, NULL, tmp)))
        return s;
    if (m->has_attn && (s = attn_forward(run, &m->attn, tmp, c, h, w, groups)))
        return s;
    return ts_nn_resnet_forward(run, &m->res[1], tmp, 1, h, w, NULL, y);
}

/* Largest activation between blocks at full size h x w (see ts_unet.c). */
static size_t largest(const ts_vae_config *cfg, int h, int w)
{
    size_t big = 0;
    const int *ch = cfg->block_out_channels;
    for (int l = 0; l < cfg->n_blocks; l++) {
        int c = ch[l];
        if (l + 1 < cfg->n_blocks && ch[l + 1] > c)
            c = ch[l + 1];
        size_t sz = (size_t)c * (size_t)(h >> l) * (size_t)(w >> l);
        if (sz > big)
            big = sz;
    }
    return big;
}

ts_status ts_vae_decode(ts_vae *v, const float *latent, int h, int w, float *out, ts_error *err)
{
    const ts_vae_config *cfg = &v->cfg;
    int nb = cfg->n_blocks, f = 1 << (nb - 1), lc = cfg->latent_channels;
    if (h < 1 || w < 1 || h > 512 || w > 512)
        return ts_error_set(err, TS_ERR_ARG, "latent size %dx%d is outside 1..512", h, w);
    const int *ch = cfg->block_out_channels;
    ts_nn_run runv = {v->dnnl, v->arena, err}, *run = &runv;
    ts_status s = TS_OK;
    const vae_coder *d = &v->dec;
    ts_dnnl_flops_reset(v->dnnl);
    ts_arena_mark m0 = ts_arena_save(v->arena);

    size_t big = largest(cfg, h * f, w * f);
    float *pa, *pb, *z;
    TS_NN_SCRATCH(pa, big);
    TS_NN_SCRATCH(pb, big);
    TS_NN_SCRATCH(z, (size_t)lc * h * w);

    /* z = post_quant_conv(latent); x = conv_in(z)        (1, C_last, h, w) */
    if (v->has_post_quant)
        TS_NN_TRY(ts_conv2d_forward(v->dnnl, &v->post_quant_conv, latent, 1, h, w, z, err));
    else
        memcpy(z, latent, (size_t)lc * h * w * sizeof(float));
    TS_NN_TRY(ts_conv2d_forward(v->dnnl, &d->conv_in, z, 1, h, w, pa, err));
    int c = ch[nb - 1], hh = h, ww = w;
    float *tmp;
    {
        ts_arena_mark m = ts_arena_save(v->arena);
        TS_NN_SCRATCH(tmp, (size_t)c * hh * ww);
        s = mid_forward(run, &d->mid, pa, c, hh, ww, cfg->norm_groups, tmp, pb);
        ts_arena_restore(v->arena, m);
        if (s != TS_OK)
            goto done;
    }
    float *cur = pb, *other = pa;

    /* Up blocks (deepest first): L+1 resnets, then nearest 2x + conv. */
    for (int i = 0; i < nb; i++) {
        int oc = ch[nb - 1 - i];
        for (int j = 0; j < d->n_res; j++) {
            TS_NN_TRY(ts_nn_resnet_forward(run, &d->res[i][j], cur, 1, hh, ww, NULL, other));
            float *t = cur;
            cur = other;
            other = t;
            c = oc;
        }
        if (d->has_sample[i]) {
            ts_arena_mark m = ts_arena_save(v->arena);
            float *up;
            TS_NN_SCRATCH(up, (size_t)c * 4 * hh * ww);
            ts_op_upsample_nearest2x(cur, 1, c, hh, ww, up);
            s = ts_conv2d_forward(v->dnnl, &d->sample[i], up, 1, 2 * hh, 2 * ww, other, err);
            ts_arena_restore(v->arena, m);
            if (s != TS_OK)
                goto done;
            hh *= 2;
            ww *= 2;
            float *t = cur;
            cur = other;
            other = t;
        }
    }

    /* out = conv_out(silu(group_norm(x)))                   (1, 3, H, W) */
    ts_op_group_norm(cur, 1, c, (size_t)hh * ww, cfg->norm_groups, d->norm_out.gamma,
                     d->norm_out.beta, VAE_EPS, 1, other);
    TS_NN_TRY(ts_conv2d_forward(v->dnnl, &d->conv_out, other, 1, hh, ww, out, err));
    v->last_flops = ts_dnnl_flops(v->dnnl);
done:
    ts_arena_restore(v->arena, m0);
    return s;
}

ts_status ts_vae_encode(ts_vae *v, const float *image, int height, int width, float *mean,
                        float *logvar, ts_error *err)
{
    const ts_vae_config *cfg = &v->cfg;
    int nb = cfg->n_blocks, f = 1 << (nb - 1), lc = cfg->latent_channels;
    if (!v->enc.present)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "this model's VAE has no encoder; image-to-image needs one");
    if (height < f || width < f || height % f || width % f || height > 4096 || width > 4096)
        return ts_error_set(err, TS_ERR_ARG,
                            "image %dx%d: sides must be multiples of %d up to "
                            "4096",
                            width, height, f);
    const int *ch = cfg->block_out_channels;
    ts_nn_run runv = {v->dnnl, v->arena, err}, *run = &runv;
    ts_status s = TS_OK;
    const vae_coder *e = &v->enc;
    ts_dnnl_flops_reset(v->dnnl);
    ts_arena_mark m0 = ts_arena_save(v->arena);

    size_t big = largest(cfg, height, width);
    float *pa, *pb;
    TS_NN_SCRATCH(pa, big);
    TS_NN_SCRATCH(pb, big);

    /* x = conv_in(image)                                    (1, C0, H, W) */
    TS_NN_TRY(ts_conv2d_forward(v->dnnl, &e->conv_in, image, 1, height, width, pa, err));
    float *cur = pa, *other = pb;
    int c = ch[0], hh = height, ww = width;

    /* Down blocks: L resnets, then pad (0, 1, 0, 1) + stride-2 conv. */
    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < e->n_res; j++) {
            TS_NN_TRY(ts_nn_resnet_forward(run, &e->res[i][j], cur, 1, hh, ww, NULL, other));
            float *t = cur;
            cur = other;
            other = t;
            c = ch[i];
        }
        if (e->has_sample[i]) {
            TS_NN_TRY(ts_conv2d_forward(v->dnnl, &e->sample[i], cur, 1, hh, ww, other, err));
            hh /= 2;
            ww /= 2;
            float *t = cur;
            cur = other;
            other = t;
        }
    }
    {
        ts_arena_mark m = ts_arena_save(v->arena);
        float *tmp;
        TS_NN_SCRATCH(tmp, (size_t)c * hh * ww);
        s = mid_forward(run, &e->mid, cur, c, hh, ww, cfg->norm_groups, tmp, other);
        ts_arena_restore(v->arena, m);
        if (s != TS_OK)
            goto done;
        float *t = cur;
        cur = other;
        other = t;
    }

    /* moments = quant_conv(conv_out(silu(group_norm(x)))) (1, 2L, h, w) */
    ts_op_group_norm(cur, 1, c, (size_t)hh * ww, cfg->norm_groups, e->norm_out.gamma,
                     e->norm_out.beta, VAE_EPS, 1, other);
    float *mom;
    TS_NN_SCRATCH(mom, (size_t)2 * lc * hh * ww);
    TS_NN_TRY(ts_conv2d_forward(v->dnnl, &e->conv_out, other, 1, hh, ww, mom, err));
    if (v->has_quant) {
        TS_NN_TRY(ts_conv2d_forward(v->dnnl, &v->quant_conv, mom, 1, hh, ww, cur, err));
        memcpy(mom, cur, (size_t)2 * lc * hh * ww * sizeof(float));
    }
    /* mean = first L channels; logvar = the rest, clamped to [-30, 20] as
     * diffusers' DiagonalGaussianDistribution does. */
    size_t n = (size_t)lc * hh * ww;
    memcpy(mean, mom, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        logvar[i] = fminf(fmaxf(mom[n + i], -30.0f), 20.0f);
    v->last_flops = ts_dnnl_flops(v->dnnl);
done:
    ts_arena_restore(v->arena, m0);
    return s;
}

uint64_t ts_vae_last_flops(const ts_vae *v)
{
    return v->last_flops;
}

size_t ts_vae_scratch_bytes(const ts_vae *v)
{
    return ts_arena_reserved(v->arena);
}
