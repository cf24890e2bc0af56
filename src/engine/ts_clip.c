/*
 * ts_clip.c - the CLIP text encoder (diffusers' CLIPTextModel): token and
 * position embeddings, a pre-LayerNorm transformer with a causal mask, and
 * the final LayerNorm.
 *
 * Weight names: prefix + "text_model.embeddings.token_embedding.weight",
 * "...encoder.layers.<i>.self_attn.{q,k,v,out}_proj", "layer_norm1/2",
 * "mlp.fc1/fc2", "text_model.final_layer_norm".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_config.h"
#include "ts_half.h"
#include "ts_nn.h"

typedef struct clip_layer {
    ts_nn_norm ln1, ln2;
    ts_nn_attn attn;
    ts_linear fc1, fc2;
} clip_layer;

struct ts_clip {
    ts_clip_config cfg;
    ts_wview tok_emb;     /* (vocab, D), f16/bf16 kept as stored: rows widened on lookup */
    const float *pos_emb; /* (max_positions, D) */
    clip_layer *layers;
    ts_nn_norm final_ln;
    ts_dnnl *dnnl;
    ts_arena *arena;
    int own_scratch; /* 1: dnnl and arena are this network's own */
    uint64_t last_flops;
};

ts_status ts_clip_create(const ts_clip_config *cfg, ts_weights *w, const char *prefix,
                         ts_nn_scratch *scratch, ts_clip **out, ts_error *err)
{
    ts_status s = ts_clip_config_check(cfg, err);
    if (s != TS_OK)
        return s;
    ts_clip *c = calloc(1, sizeof(*c));
    if (!c)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating the text encoder");
    c->cfg = *cfg;
    int d = cfg->hidden;
    ts_nn_loader ld = {.w = w, .prefix = prefix, .err = err};
    c->layers = calloc((size_t)cfg->layers, sizeof(clip_layer));
    if (!c->layers) {
        s = ts_error_set(err, TS_ERR_NOMEM, "out of memory creating the text encoder");
        goto fail;
    }
    if ((s = ts_nn_scratch_attach(scratch, (size_t)256 << 20, &c->dnnl, &c->arena, &c->own_scratch,
                                  err)) != TS_OK)
        goto fail;
    ld.dnnl = c->dnnl;

    char name[TS_NN_NAME_MAX], full[TS_NN_NAME_MAX];
    int64_t tshape[2] = {cfg->vocab_size, d}, pshape[2] = {cfg->max_positions, d};
    ts_nn_name(&ld, full, "text_model.embeddings.token_embedding.weight");
    if ((s = ts_weights_get_view(w, full, 2, tshape, &c->tok_emb, err)) != TS_OK)
        goto fail;
    ts_nn_name(&ld, full, "text_model.embeddings.position_embedding.weight");
    if ((s = ts_weights_get_f32(w, full, 2, pshape, &c->pos_emb, err)) != TS_OK)
        goto fail;

    for (int i = 0; i < cfg->layers; i++) {
        clip_layer *L = &c->layers[i];
        char p[96];
        snprintf(p, sizeof(p), "text_model.encoder.layers.%d", i);
#define N(x) (snprintf(name, sizeof(name), "%s.%s", p, x), name)
        L->attn.dim = d;
        L->attn.ctx_dim = d;
        L->attn.heads = cfg->heads;
        if ((s = ts_nn_norm_load(&ld, &L->ln1, N("layer_norm1"), d)) != TS_OK ||
            (s = ts_nn_linear_load(&ld, &L->attn.q, N("self_attn.q_proj"), d, d, 1, 0)) != TS_OK ||
            (s = ts_nn_linear_load(&ld, &L->attn.k, N("self_attn.k_proj"), d, d, 1, 0)) != TS_OK ||
            (s = ts_nn_linear_load(&ld, &L->attn.v, N("self_attn.v_proj"), d, d, 1, 0)) != TS_OK ||
            (s = ts_nn_linear_load(&ld, &L->attn.out, N("self_attn.out_proj"), d, d, 1, 0)) !=
                TS_OK ||
            (s = ts_nn_norm_load(&ld, &L->ln2, N("layer_norm2"), d)) != TS_OK ||
            (s = ts_nn_linear_load(&ld, &L->fc1, N("mlp.fc1"), d, cfg->intermediate, 1, 0)) !=
                TS_OK ||
            (s = ts_nn_linear_load(&ld, &L->fc2, N("mlp.fc2"), cfg->intermediate, d, 1, 0)) !=
                TS_OK)
            goto fail;
#undef N
    }
    if ((s = ts_nn_norm_load(&ld, &c->final_ln, "text_model.final_layer_norm", d)) != TS_OK)
        goto fail;
    ts_nn_loader_free(&ld);
    *out = c;
    return TS_OK;
fail:
    ts_nn_loader_free(&ld);
    ts_clip_destroy(c);
    return ts_error_wrap(err, "loading the text encoder");
}

void ts_clip_destroy(ts_clip *c)
{
    if (!c)
        return;
    free(c->layers);
    ts_nn_scratch_detach(c->own_scratch, c->dnnl, c->arena);
    free(c);
}

/* One pre-LN encoder layer on x (T, D), in place:
 *   x += out_proj(causal_attention(layer_norm1(x)))
 *   x += fc2(act(fc1(layer_norm2(x)))) */
static ts_status clip_layer_forward(ts_clip *c, ts_nn_run *run, const clip_layer *L, float *x,
                                    int t)
{
    int d = c->cfg.hidden, inter = c->cfg.intermediate;
    ts_status s;
    ts_arena_mark m = ts_arena_save(run->arena);
    float *n = ts_arena_floats(run->arena, (size_t)t * d, run->err);     /* (T, D) */
    float *f = ts_arena_floats(run->arena, (size_t)t * inter, run->err); /* (T, I) */
    if (!n || !f) {
        s = run->err->status;
        goto done;
    }
    ts_op_layer_norm(x, (size_t)t, d, L->ln1.gamma, L->ln1.beta, c->cfg.layer_norm_eps, n);
    if ((s = ts_nn_attn_forward(run, &L->attn, n, 1, t, NULL, 0, 1, x)) != TS_OK)
        goto done;
    ts_op_layer_norm(x, (size_t)t, d, L->ln2.gamma, L->ln2.beta, c->cfg.layer_norm_eps, n);
    if ((s = ts_linear_forward(run->dnnl, &L->fc1, n, t, f, 0, run->err)) != TS_OK)
        goto done;
    if (c->cfg.act_gelu)
        ts_op_gelu(f, (size_t)t * inter, f);
    else
        ts_op_quick_gelu(f, (size_t)t * inter, f);
    s = ts_linear_forward(run->dnnl, &L->fc2, f, t, x, 1, run->err);
done:
    ts_arena_restore(run->arena, m);
    return s;
}

ts_status ts_clip_encode(ts_clip *c, const int32_t *ids, int clip_skip, float *out, ts_error *err)
{
    int t = c->cfg.max_positions, d = c->cfg.hidden;
    if (clip_skip < 0 || clip_skip > c->cfg.layers)
        return ts_error_set(err, TS_ERR_ARG, "clip_skip %d is outside 0..%d", clip_skip,
                            c->cfg.layers);
    for (int i = 0; i < t; i++)
        if (ids[i] < 0 || ids[i] >= c->cfg.vocab_size)
            return ts_error_set(err, TS_ERR_ARG,
                                "token id at position %d is outside the "
                                "vocabulary",
                                i);
    ts_nn_run run = {c->dnnl, c->arena, err};
    ts_dnnl_flops_reset(c->dnnl);

    /* x = token_embedding[ids] + position_embedding[0..T)    (T, D) */
    float *x = out;
    size_t esize = ts_half_esize(c->tok_emb.dtype);
    for (int i = 0; i < t; i++) {
        const char *row = (const char *)c->tok_emb.data + (size_t)ids[i] * d * esize;
        ts_half_to_f32(c->tok_emb.dtype, row, (size_t)d, x + (size_t)i * d);
        for (int j = 0; j < d; j++)
            x[(size_t)i * d + j] += c->pos_emb[(size_t)i * d + j];
    }

    /* clip_skip k >= 2 stops after layer L-k+1 (hidden_states[-k]). */
    int n_layers = clip_skip >= 2 ? c->cfg.layers - clip_skip + 1 : c->cfg.layers;
    for (int l = 0; l < n_layers; l++) {
        ts_status s = clip_layer_forward(c, &run, &c->layers[l], x, t);
        if (s != TS_OK)
            return s;
    }
    ts_op_layer_norm(x, (size_t)t, d, c->final_ln.gamma, c->final_ln.beta, c->cfg.layer_norm_eps,
                     x);
    c->last_flops = ts_dnnl_flops(c->dnnl);
    return TS_OK;
}

uint64_t ts_clip_last_flops(const ts_clip *c)
{
    return c->last_flops;
}
