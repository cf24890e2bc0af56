/*
 * ts_ckpt.c - original single-file checkpoints mapped onto diffusers names.
 *
 * Design note. Nothing is copied: every tensor the networks read gets an
 * alias (a name for the same bytes, possibly a row range or a new shape) in
 * the ts_weights, so the networks load a single file exactly like a
 * diffusers folder. The configs are derived from shapes; what shapes cannot
 * tell comes from the file's metadata or the family defaults (ts_ckpt.h).
 */
#include "ts_ckpt.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_config.h"
#include "ts_weights.h"

#define UNET_P "model.diffusion_model."
#define VAE_P  "first_stage_model."
#define CLIP1  "cond_stage_model.transformer.text_model."
#define CLIP2  "cond_stage_model.model."
#define NAME   320

static const ts_st_tensor *find(const ts_weights *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const ts_st_tensor *find(const ts_weights *w, const char *fmt, ...)
{
    char name[NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    return ts_weights_find(w, name);
}

int ts_ckpt_detect(const ts_weights *w)
{
    return find(w, UNET_P "input_blocks.0.0.weight") != NULL;
}

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* ------------------------------------------------------------ metadata */

typedef struct hints {
    int unet_heads, unet_head_ch, unet_groups, vae_groups, text_heads, text_last;
    float scale;
    int v;
} hints;

static json_t *obj(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_object(v) ? v : NULL;
}

static int intv(json_t *o, const char *k, int dflt)
{
    json_t *v = o ? json_object_get(o, k) : NULL;
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static void read_hints(const ts_weights *w, hints *h)
{
    h->unet_heads = h->unet_head_ch = h->unet_groups = h->vae_groups = h->text_heads = -1;
    h->text_last = -1;
    h->scale = -1;
    h->v = -1;
    const char *meta = ts_weights_file_metadata(w, 0);
    if (!meta)
        return;
    json_t *m = json_loads(meta, 0, NULL);
    json_t *lc = json_object_get(m, "ldm_config"); /* a string holding JSON */
    json_t *c = json_is_string(lc) ? json_loads(json_string_value(lc), 0, NULL) : NULL;
    if (json_is_object(c)) {
        json_t *u = obj(c, "unet"), *v = obj(c, "vae"), *t = obj(c, "text");
        h->unet_heads = intv(u, "num_heads", -1);
        h->unet_head_ch = intv(u, "num_head_channels", -1);
        h->unet_groups = intv(u, "norm_num_groups", -1);
        h->vae_groups = intv(v, "norm_num_groups", -1);
        h->text_heads = intv(t, "heads", -1);
        json_t *lu = t ? json_object_get(t, "layer_used") : NULL;
        if (json_is_string(lu))
            h->text_last = strcmp(json_string_value(lu), "last") == 0;
        json_t *sf = json_object_get(c, "scale_factor");
        if (json_is_number(sf))
            h->scale = (float)json_number_value(sf);
        json_t *pz = json_object_get(c, "parameterization");
        if (json_is_string(pz))
            h->v = strcmp(json_string_value(pz), "v") == 0;
    }
    json_decref(c);
    json_decref(m);
}

/* ------------------------------------------------------------ configs */

static ts_status derive_unet(const ts_weights *w, const hints *hn, int sd2, ts_unet_config *c,
                             ts_error *err)
{
    ts_unet_config_default(c);
    const ts_st_tensor *t = find(w, UNET_P "input_blocks.0.0.weight");
    const ts_st_tensor *te = find(w, UNET_P "time_embed.0.weight");
    const ts_st_tensor *co = find(w, UNET_P "out.2.weight");
    if (!t || t->ndim != 4 || !te || te->ndim != 2 || !co || co->ndim != 4)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "checkpoint UNet lacks conv_in, time_embed or "
                            "out tensors of the expected rank");
    c->in_channels = (int)t->shape[1];
    c->out_channels = (int)co->shape[0];
    c->time_embed_dim = (int)te->shape[0];

    /* Levels: resnets until the first "op" (downsample) give layers_per_block. */
    int L = 0;
    while (find(w, UNET_P "input_blocks.%d.0.in_layers.0.weight", 1 + L))
        L++;
    if (L < 1 || L > 8)
        return ts_error_set(err, TS_ERR_FORMAT, "checkpoint UNet has %d resnets per level", L);
    c->layers_per_block = L;
    int nb = 1;
    while (nb < 6 && find(w, UNET_P "input_blocks.%d.0.op.weight", nb * (L + 1)))
        nb++;
    c->n_blocks = nb;
    for (int i = 0; i < nb; i++) {
        const ts_st_tensor *r =
            find(w, UNET_P "input_blocks.%d.0.out_layers.3.weight", 1 + i * (L + 1));
        if (!r || r->ndim != 4)
            return ts_error_set(err, TS_ERR_FORMAT, "checkpoint UNet level %d has no resnet", i);
        c->block_out_channels[i] = (int)r->shape[0];
        c->down_cross_attn[i] =
            find(w, UNET_P "input_blocks.%d.1.norm.weight", 1 + i * (L + 1)) != NULL;
        c->up_cross_attn[i] = find(w, UNET_P "output_blocks.%d.1.norm.weight", i * (L + 1)) != NULL;
    }
    const ts_st_tensor *k2 =
        find(w, UNET_P "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    const ts_st_tensor *pin = find(w, UNET_P "middle_block.1.proj_in.weight");
    if (!k2 || k2->ndim != 2 || !pin)
        return ts_error_set(err, TS_ERR_FORMAT, "checkpoint UNet has no mid-block transformer");
    c->cross_attention_dim = (int)k2->shape[1];
    c->use_linear_projection = pin->ndim == 2;
    int depth = 0;
    while (find(w, UNET_P "middle_block.1.transformer_blocks.%d.norm1.weight", depth))
        depth++;
    c->transformer_layers = depth;

    /* Heads: metadata, else the family's published setting. */
    int heads = hn->unet_heads > 0 ? hn->unet_heads : -1;
    int head_ch = hn->unet_head_ch > 0 ? hn->unet_head_ch : -1;
    if (heads < 0 && head_ch < 0) {
        if (sd2)
            head_ch = 64;
        else
            heads = 8;
    }
    for (int i = 0; i < nb; i++) {
        int ch = c->block_out_channels[i];
        c->heads[i] = head_ch > 0 ? ch / head_ch : heads;
        c->head_dim[i] = c->heads[i] > 0 ? ch / c->heads[i] : 0;
    }
    c->norm_groups = hn->unet_groups > 0 ? hn->unet_groups : 32;
    c->sample_size = sd2 ? 96 : 64;
    return ts_unet_config_check(c, err);
}

static ts_status derive_vae(const ts_weights *w, const hints *hn, ts_vae_config *c, ts_error *err)
{
    ts_vae_config_default(c);
    const ts_st_tensor *ci = find(w, VAE_P "encoder.conv_in.weight");
    const ts_st_tensor *dci = find(w, VAE_P "decoder.conv_in.weight");
    const ts_st_tensor *dco = find(w, VAE_P "decoder.conv_out.weight");
    if (!dci || dci->ndim != 4 || !dco || dco->ndim != 4)
        return ts_error_set(err, TS_ERR_FORMAT, "checkpoint VAE lacks decoder conv_in/conv_out");
    c->latent_channels = (int)dci->shape[1];
    c->out_channels = (int)dco->shape[0];
    c->in_channels = ci && ci->ndim == 4 ? (int)ci->shape[1] : 3;
    int nb = 0;
    while (nb < 6 && find(w, VAE_P "decoder.up.%d.block.0.conv1.weight", nb))
        nb++;
    int L1 = 0;
    while (find(w, VAE_P "decoder.up.0.block.%d.conv1.weight", L1))
        L1++;
    if (nb < 1 || L1 < 2)
        return ts_error_set(err, TS_ERR_FORMAT, "checkpoint VAE decoder blocks not found");
    c->n_blocks = nb;
    c->layers_per_block = L1 - 1;
    for (int i = 0; i < nb; i++) {
        const ts_st_tensor *r = find(w, VAE_P "decoder.up.%d.block.0.conv2.weight", i);
        if (!r || r->ndim != 4)
            return ts_error_set(err, TS_ERR_FORMAT, "checkpoint VAE level %d has no resnet", i);
        c->block_out_channels[i] = (int)r->shape[0];
    }
    c->norm_groups = hn->vae_groups > 0 ? hn->vae_groups : 32;
    if (hn->scale > 0)
        c->scaling_factor = hn->scale;
    c->use_quant_conv = find(w, VAE_P "quant_conv.weight") != NULL;
    c->use_post_quant_conv = find(w, VAE_P "post_quant_conv.weight") != NULL;
    c->mid_attention = find(w, VAE_P "decoder.mid.attn_1.q.weight") != NULL;
    return ts_vae_config_check(c, err);
}

static ts_status derive_clip(const ts_weights *w, const hints *hn, int sd2, ts_clip_config *c,
                             ts_error *err)
{
    ts_clip_config_default(c);
    const ts_st_tensor *tok, *pos, *fc;
    int layers = 0;
    if (sd2) {
        tok = find(w, CLIP2 "token_embedding.weight");
        pos = find(w, CLIP2 "positional_embedding");
        fc = find(w, CLIP2 "transformer.resblocks.0.mlp.c_fc.weight");
        while (find(w, CLIP2 "transformer.resblocks.%d.ln_1.weight", layers))
            layers++;
    } else {
        tok = find(w, CLIP1 "embeddings.token_embedding.weight");
        pos = find(w, CLIP1 "embeddings.position_embedding.weight");
        fc = find(w, CLIP1 "encoder.layers.0.mlp.fc1.weight");
        while (find(w, CLIP1 "encoder.layers.%d.layer_norm1.weight", layers))
            layers++;
    }
    if (!tok || tok->ndim != 2 || !pos || pos->ndim != 2 || !fc || fc->ndim != 2 || layers < 1)
        return ts_error_set(err, TS_ERR_FORMAT, "checkpoint text encoder tensors not found");
    c->vocab_size = (int)tok->shape[0];
    c->hidden = (int)tok->shape[1];
    c->max_positions = (int)pos->shape[0];
    c->intermediate = (int)fc->shape[0];
    c->heads = hn->text_heads > 0 ? hn->text_heads : c->hidden / 64;
    c->act_gelu = sd2;
    /* SD 2.x conditions on the penultimate OpenCLIP layer: keep L-1 layers,
     * as diffusers' conversion does, unless the metadata says "last". */
    c->layers = (sd2 && hn->text_last != 1 && layers > 1) ? layers - 1 : layers;
    return ts_clip_config_check(c, err);
}

/* ------------------------------------------------------------ names */

static const char *resnet_rename(const char *rest, char *buf, size_t n)
{
    static const char *const map[][2] = {
        {"in_layers.0.", "norm1."},
        {"in_layers.2.", "conv1."},
        {"emb_layers.1.", "time_emb_proj."},
        {"out_layers.0.", "norm2."},
        {"out_layers.3.", "conv2."},
        {"skip_connection.", "conv_shortcut."},
        {"nin_shortcut.", "conv_shortcut."},
        {"norm1.", "norm1."},
        {"conv1.", "conv1."},
        {"norm2.", "norm2."},
        {"conv2.", "conv2."},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (starts(rest, map[i][0])) {
            snprintf(buf, n, "%s%s", map[i][1], rest + strlen(map[i][0]));
            return buf;
        }
    return NULL;
}

/* model.diffusion_model.<rest> -> diffusers UNet name; 0 to skip. */
static int unet_name(const char *rest, int L, char *out, size_t n)
{
    char rr[NAME];
    int k, s, used = 0;
    if (starts(rest, "time_embed.0."))
        return snprintf(out, n, "time_embedding.linear_1.%s", rest + 13) > 0;
    if (starts(rest, "time_embed.2."))
        return snprintf(out, n, "time_embedding.linear_2.%s", rest + 13) > 0;
    if (starts(rest, "out.0."))
        return snprintf(out, n, "conv_norm_out.%s", rest + 6) > 0;
    if (starts(rest, "out.2."))
        return snprintf(out, n, "conv_out.%s", rest + 6) > 0;
    if (sscanf(rest, "input_blocks.%d.%d.%n", &k, &s, &used) == 2 && used > 0) {
        const char *r = rest + used;
        if (k == 0)
            return snprintf(out, n, "conv_in.%s", r) > 0;
        int i = (k - 1) / (L + 1), j = (k - 1) % (L + 1);
        if (j == L && starts(r, "op."))
            return snprintf(out, n, "down_blocks.%d.downsamplers.0.conv.%s", i, r + 3) > 0;
        if (s == 0 && resnet_rename(r, rr, sizeof(rr)))
            return snprintf(out, n, "down_blocks.%d.resnets.%d.%s", i, j, rr) > 0;
        if (s == 1)
            return snprintf(out, n, "down_blocks.%d.attentions.%d.%s", i, j, r) > 0;
        return 0;
    }
    if (sscanf(rest, "middle_block.%d.%n", &s, &used) == 1 && used > 0) {
        const char *r = rest + used;
        if (s == 1)
            return snprintf(out, n, "mid_block.attentions.0.%s", r) > 0;
        if ((s == 0 || s == 2) && resnet_rename(r, rr, sizeof(rr)))
            return snprintf(out, n, "mid_block.resnets.%d.%s", s / 2, rr) > 0;
        return 0;
    }
    if (sscanf(rest, "output_blocks.%d.%d.%n", &k, &s, &used) == 2 && used > 0) {
        const char *r = rest + used;
        int i = k / (L + 1), j = k % (L + 1);
        if (starts(r, "conv.") && s >= 1)
            return snprintf(out, n, "up_blocks.%d.upsamplers.0.conv.%s", i, r + 5) > 0;
        if (s == 0 && resnet_rename(r, rr, sizeof(rr)))
            return snprintf(out, n, "up_blocks.%d.resnets.%d.%s", i, j, rr) > 0;
        if (s == 1)
            return snprintf(out, n, "up_blocks.%d.attentions.%d.%s", i, j, r) > 0;
    }
    return 0;
}

/* first_stage_model.<rest> -> diffusers VAE name; *attn set for the mid
 * attention's 1x1 convolutions (seen as Linear). */
static int vae_name(const char *rest, int nb, char *out, size_t n, int *attn)
{
    char rr[NAME];
    int i, j, used = 0;
    *attn = 0;
    for (int e = 0; e < 2; e++) {
        const char *part = e ? "decoder." : "encoder.";
        if (!starts(rest, part))
            continue;
        const char *r = rest + 8;
        if (starts(r, "conv_in.") || starts(r, "conv_out."))
            return snprintf(out, n, "%s%s", part, r) > 0;
        if (starts(r, "norm_out."))
            return snprintf(out, n, "%sconv_norm_out.%s", part, r + 9) > 0;
        if (starts(r, "mid.block_1.") && resnet_rename(r + 12, rr, sizeof(rr)))
            return snprintf(out, n, "%smid_block.resnets.0.%s", part, rr) > 0;
        if (starts(r, "mid.block_2.") && resnet_rename(r + 12, rr, sizeof(rr)))
            return snprintf(out, n, "%smid_block.resnets.1.%s", part, rr) > 0;
        if (starts(r, "mid.attn_1.")) {
            static const char *const map[][2] = {{"norm.", "group_norm."},
                                                 {"q.", "to_q."},
                                                 {"k.", "to_k."},
                                                 {"v.", "to_v."},
                                                 {"proj_out.", "to_out.0."}};
            const char *a = r + 11;
            for (size_t m = 0; m < 5; m++)
                if (starts(a, map[m][0])) {
                    *attn = m > 0;
                    return snprintf(out, n, "%smid_block.attentions.0.%s%s", part, map[m][1],
                                    a + strlen(map[m][0])) > 0;
                }
            return 0;
        }
        const char *blk = e ? "up" : "down";
        char pat[32];
        snprintf(pat, sizeof(pat), "%s.%%d.%%n", blk);
        if (sscanf(r, pat, &i, &used) == 1 && used > 0) {
            const char *b = r + used;
            int di = e ? nb - 1 - i : i; /* the decoder's up.<i> counts from the top */
            const char *dblk = e ? "up_blocks" : "down_blocks";
            int u2 = 0;
            if (sscanf(b, "block.%d.%n", &j, &u2) == 1 && u2 > 0 &&
                resnet_rename(b + u2, rr, sizeof(rr)))
                return snprintf(out, n, "%s%s.%d.resnets.%d.%s", part, dblk, di, j, rr) > 0;
            if (starts(b, "downsample.conv."))
                return snprintf(out, n, "%s%s.%d.downsamplers.0.conv.%s", part, dblk, di, b + 16) >
                       0;
            if (starts(b, "upsample.conv."))
                return snprintf(out, n, "%s%s.%d.upsamplers.0.conv.%s", part, dblk, di, b + 14) > 0;
        }
        return 0;
    }
    if (starts(rest, "quant_conv.") || starts(rest, "post_quant_conv."))
        return snprintf(out, n, "%s", rest) > 0;
    return 0;
}

/* cond_stage_model.model.<rest> (OpenCLIP) -> HF CLIP names; fused in_proj
 * gets three aliases. */
static ts_status clip2_alias(ts_weights *w, const ts_st_tensor *t, const char *rest, ts_error *err)
{
    char dst[NAME], full[NAME];
    int i, used = 0;
    const char *P = TS_CKPT_PREFIX_CLIP "text_model.";
    if (strcmp(rest, "token_embedding.weight") == 0)
        snprintf(dst, sizeof(dst), "%sembeddings.token_embedding.weight", P);
    else if (strcmp(rest, "positional_embedding") == 0)
        snprintf(dst, sizeof(dst), "%sembeddings.position_embedding.weight", P);
    else if (starts(rest, "ln_final."))
        snprintf(dst, sizeof(dst), "%sfinal_layer_norm.%s", P, rest + 9);
    else if (sscanf(rest, "transformer.resblocks.%d.%n", &i, &used) == 1 && used > 0) {
        const char *r = rest + used;
        char L[64];
        snprintf(L, sizeof(L), "%sencoder.layers.%d.", P, i);
        if (starts(r, "attn.in_proj_")) {
            int is_w = strcmp(r, "attn.in_proj_weight") == 0;
            if (t->ndim < 1 || t->shape[0] % 3 != 0)
                return ts_error_set(err, TS_ERR_FORMAT, "tensor %s is not a fused q/k/v", t->name);
            int64_t d = t->shape[0] / 3;
            int64_t shape[2] = {d, t->ndim == 2 ? t->shape[1] : 0};
            int64_t per = d * (is_w ? shape[1] : 1);
            const char *qkv[3] = {"q_proj", "k_proj", "v_proj"};
            for (int q = 0; q < 3; q++) {
                snprintf(full, sizeof(full), "%sself_attn.%s.%s", L, qkv[q],
                         is_w ? "weight" : "bias");
                ts_status s = ts_weights_alias(w, full, t->name, q * per, is_w ? 2 : 1, shape, err);
                if (s != TS_OK)
                    return s;
            }
            return TS_OK;
        }
        static const char *const map[][2] = {{"attn.out_proj.", "self_attn.out_proj."},
                                             {"ln_1.", "layer_norm1."},
                                             {"ln_2.", "layer_norm2."},
                                             {"mlp.c_fc.", "mlp.fc1."},
                                             {"mlp.c_proj.", "mlp.fc2."}};
        int found = 0;
        for (size_t m = 0; m < 5 && !found; m++)
            if (starts(r, map[m][0])) {
                snprintf(dst, sizeof(dst), "%s%s%s", L, map[m][1], r + strlen(map[m][0]));
                found = 1;
            }
        if (!found)
            return TS_OK;
    } else {
        return TS_OK;
    }
    return ts_weights_alias(w, dst, t->name, 0, t->ndim, t->shape, err);
}

ts_status ts_ckpt_map(ts_weights *w, ts_ckpt_info *info, ts_error *err)
{
    memset(info, 0, sizeof(*info));
    if (!ts_ckpt_detect(w))
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "not an original Stable Diffusion checkpoint (no "
                            "model.diffusion_model.input_blocks.0.0.weight)");
    int sd2 = find(w, CLIP2 "token_embedding.weight") != NULL;
    int sd1 = find(w, CLIP1 "embeddings.token_embedding.weight") != NULL;
    if (!sd1 && !sd2)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "checkpoint has no text encoder under cond_stage_model (neither CLIP "
                            "ViT-L nor OpenCLIP); SDXL and others are not supported");
    hints hn;
    read_hints(w, &hn);
    ts_status s;
    if ((s = derive_unet(w, &hn, sd2, &info->unet, err)) != TS_OK ||
        (s = derive_vae(w, &hn, &info->vae, err)) != TS_OK ||
        (s = derive_clip(w, &hn, sd2, &info->clip, err)) != TS_OK)
        return ts_error_wrap(err, "single-file checkpoint");
    snprintf(info->family, sizeof(info->family), "%s", sd2 ? "sd2" : "sd1");
    info->inpaint = info->unet.in_channels == 9;
    info->prediction_v = hn.v;

    /* Aliases over a snapshot of the original names (aliases add entries). */
    int n = ts_weights_count(w), L = info->unet.layers_per_block, nb = info->vae.n_blocks;
    char dst[NAME], full[NAME];
    for (int i = 0; i < n && s == TS_OK; i++) {
        const ts_st_tensor *t = ts_weights_at(w, i);
        if (starts(t->name, UNET_P)) {
            if (unet_name(t->name + strlen(UNET_P), L, dst, sizeof(dst))) {
                snprintf(full, sizeof(full), "%s%s", TS_CKPT_PREFIX_UNET, dst);
                s = ts_weights_alias(w, full, t->name, 0, t->ndim, t->shape, err);
            }
        } else if (starts(t->name, VAE_P)) {
            int attn;
            if (vae_name(t->name + strlen(VAE_P), nb, dst, sizeof(dst), &attn)) {
                snprintf(full, sizeof(full), "%s%s", TS_CKPT_PREFIX_VAE, dst);
                /* 1x1 conv (C, C, 1, 1) attention weights become Linear (C, C). */
                int nd = attn && t->ndim == 4 ? 2 : t->ndim;
                s = ts_weights_alias(w, full, t->name, 0, nd, t->shape, err);
            }
        } else if (sd1 && starts(t->name, CLIP1)) {
            snprintf(full, sizeof(full), "%stext_model.%s", TS_CKPT_PREFIX_CLIP,
                     t->name + strlen(CLIP1));
            s = ts_weights_alias(w, full, t->name, 0, t->ndim, t->shape, err);
        } else if (sd2 && starts(t->name, CLIP2)) {
            s = clip2_alias(w, t, t->name + strlen(CLIP2), err);
        }
    }
    return s == TS_OK ? TS_OK : ts_error_wrap(err, "mapping single-file checkpoint names");
}

ts_status ts_ckpt_load(const char *path, ts_weights **out, ts_ckpt_info *info, ts_error *err)
{
    ts_weights *w;
    ts_status s = ts_weights_create(&w, err);
    if (s != TS_OK)
        return s;
    if ((s = ts_weights_add_file(w, path, "", err)) != TS_OK ||
        (s = ts_ckpt_map(w, info, err)) != TS_OK) {
        ts_weights_destroy(w);
        return s;
    }
    *out = w;
    return TS_OK;
}
