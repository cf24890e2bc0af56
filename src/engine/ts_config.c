/*
 * ts_config.c - diffusers config.json into ts_models.h structs (see
 * ts_config.h for the rules, including the attention-head quirk).
 */
#include "ts_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 6
#define CH_MAX     65536

/* ---------------------------------------------------------------- defaults */

void ts_clip_config_default(ts_clip_config *c)
{
    memset(c, 0, sizeof(*c));
    c->vocab_size = 49408;
    c->hidden = 768;
    c->layers = 12;
    c->heads = 12;
    c->intermediate = 3072;
    c->max_positions = 77;
    c->act_gelu = 0;
    c->bos_id = 49406;
    c->eos_id = 49407;
    c->pad_id = 49407;
    c->layer_norm_eps = 1e-5f;
}

void ts_unet_config_default(ts_unet_config *c)
{
    memset(c, 0, sizeof(*c));
    c->in_channels = 4;
    c->out_channels = 4;
    c->sample_size = 64;
    c->n_blocks = 4;
    int ch[4] = {320, 640, 1280, 1280};
    for (int i = 0; i < 4; i++) {
        c->block_out_channels[i] = ch[i];
        c->down_cross_attn[i] = i < 3;
        c->up_cross_attn[i] = i > 0;
        c->heads[i] = 8;
        c->head_dim[i] = ch[i] / 8;
    }
    c->layers_per_block = 2;
    c->cross_attention_dim = 768;
    c->norm_groups = 32;
    c->norm_eps = 1e-5f;
    c->use_linear_projection = 0;
    c->transformer_layers = 1;
    c->flip_sin_to_cos = 1;
    c->freq_shift = 0;
    c->time_embed_dim = 1280;
    c->downsample_padding = 1;
}

void ts_vae_config_default(ts_vae_config *c)
{
    memset(c, 0, sizeof(*c));
    c->in_channels = 3;
    c->out_channels = 3;
    c->latent_channels = 4;
    c->n_blocks = 4;
    int ch[4] = {128, 256, 512, 512};
    for (int i = 0; i < 4; i++)
        c->block_out_channels[i] = ch[i];
    c->layers_per_block = 2;
    c->norm_groups = 32;
    c->sample_size = 512;
    c->scaling_factor = 0.18215f;
    c->shift_factor = 0;
    c->use_quant_conv = 1;
    c->use_post_quant_conv = 1;
    c->mid_attention = 1;
}

/* ---------------------------------------------------------------- helpers */

/* Optional integer field: absent or null keeps *out. */
static ts_status get_int(json_t *root, const char *key, int lo, int hi, int *out, ts_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return TS_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\" must be an integer in [%d, %d]",
                            key, lo, hi);
    *out = (int)json_integer_value(v);
    return TS_OK;
}

static ts_status get_float(json_t *root, const char *key, float *out, ts_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return TS_OK;
    if (!json_is_number(v))
        return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\" must be a number", key);
    *out = (float)json_number_value(v);
    return TS_OK;
}

static ts_status get_bool(json_t *root, const char *key, int *out, ts_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return TS_OK;
    if (!json_is_boolean(v))
        return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return TS_OK;
}

/* An int or a list of n ints (each in [lo, hi]) into out[0..n). */
static ts_status get_int_or_list(json_t *root, const char *key, int n, int lo, int hi, int *out,
                                 int *present, ts_error *err)
{
    json_t *v = json_object_get(root, key);
    *present = 0;
    if (!v || json_is_null(v))
        return TS_OK;
    *present = 1;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < lo || x > hi)
            return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\" is out of range", key);
        for (int i = 0; i < n; i++)
            out[i] = (int)x;
        return TS_OK;
    }
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "config key \"%s\" must be an integer or a list of %d integers", key,
                            n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
            return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\"[%d] is out of range", key,
                                i);
        out[i] = (int)json_integer_value(e);
    }
    return TS_OK;
}

/* A string key that, when present and not null, must equal one of allowed. */
static ts_status expect_string(json_t *root, const char *key, const char *const *allowed,
                               int allow_null, ts_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || (json_is_null(v) && allow_null))
        return TS_OK;
    if (!json_is_string(v))
        return ts_error_set(err, TS_ERR_UNSUPPORTED, "config key \"%s\" is not supported here",
                            key);
    for (int i = 0; allowed[i]; i++)
        if (strcmp(json_string_value(v), allowed[i]) == 0)
            return TS_OK;
    return ts_error_set(err, TS_ERR_UNSUPPORTED, "config key \"%s\" = \"%.40s\" is not supported",
                        key, json_string_value(v));
}

/* Keys that must be absent, null or false: features we do not implement. */
static ts_status expect_unset(json_t *root, const char *const *keys, ts_error *err)
{
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (v && !json_is_null(v) && !json_is_false(v))
            return ts_error_set(err, TS_ERR_UNSUPPORTED,
                                "config key \"%s\" is set; this model feature is not supported",
                                keys[i]);
    }
    return TS_OK;
}

/* block_out_channels, which UNet and VAE configs both require: a list of 1
 * to MAX_BLOCKS channel counts, each in [1, CH_MAX]; its length is the
 * number of blocks. */
static ts_status get_block_channels(json_t *root, int *n_blocks, int *out, ts_error *err)
{
    json_t *boc = json_object_get(root, "block_out_channels");
    if (!json_is_array(boc) || json_array_size(boc) == 0 || json_array_size(boc) > MAX_BLOCKS)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "config key \"block_out_channels\" must list 1 to "
                            "%d channel counts",
                            MAX_BLOCKS);
    *n_blocks = (int)json_array_size(boc);
    int present;
    return get_int_or_list(root, "block_out_channels", *n_blocks, 1, CH_MAX, out, &present, err);
}

static ts_status load_root(const char *json, size_t len, json_t **out, ts_error *err)
{
    if (len > TS_CONFIG_FILE_MAX)
        return ts_error_set(err, TS_ERR_LIMIT, "config is %zu bytes (limit %u)", len,
                            TS_CONFIG_FILE_MAX);
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_FORMAT, "config is not a JSON object (%s, line %d)",
                            root ? "not an object" : je.text, je.line);
    }
    *out = root;
    return TS_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((s = (x)) != TS_OK)                                                                    \
            goto done;                                                                             \
    } while (0)

/* ---------------------------------------------------------------- CLIP */

ts_status ts_clip_config_parse(const char *json, size_t len, ts_clip_config *c, ts_error *err)
{
    json_t *root;
    ts_status s = load_root(json, len, &root, err);
    if (s != TS_OK)
        return s;
    ts_clip_config_default(c);
    static const char *const acts[] = {"quick_gelu", "gelu", NULL};
    TRY(expect_string(root, "hidden_act", acts, 0, err));
    json_t *act = json_object_get(root, "hidden_act");
    if (act && json_is_string(act))
        c->act_gelu = strcmp(json_string_value(act), "gelu") == 0;
    TRY(get_int(root, "vocab_size", 1, 1 << 20, &c->vocab_size, err));
    TRY(get_int(root, "hidden_size", 8, 16384, &c->hidden, err));
    TRY(get_int(root, "num_hidden_layers", 1, 128, &c->layers, err));
    TRY(get_int(root, "num_attention_heads", 1, 256, &c->heads, err));
    TRY(get_int(root, "intermediate_size", 1, 65536, &c->intermediate, err));
    TRY(get_int(root, "max_position_embeddings", 1, 4096, &c->max_positions, err));
    TRY(get_int(root, "bos_token_id", 0, 1 << 20, &c->bos_id, err));
    TRY(get_int(root, "eos_token_id", 0, 1 << 20, &c->eos_id, err));
    TRY(get_int(root, "pad_token_id", 0, 1 << 20, &c->pad_id, err));
    TRY(get_float(root, "layer_norm_eps", &c->layer_norm_eps, err));
    s = ts_clip_config_check(c, err);
done:
    json_decref(root);
    return s;
}

ts_status ts_clip_config_check(const ts_clip_config *c, ts_error *err)
{
    if (c->hidden <= 0 || c->heads <= 0 || c->hidden % c->heads != 0)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "text encoder hidden_size %d is not divisible by %d heads", c->hidden,
                            c->heads);
    if (c->layers <= 0 || c->intermediate <= 0 || c->max_positions <= 0 || c->vocab_size <= 0)
        return ts_error_set(err, TS_ERR_FORMAT, "text encoder sizes must be positive");
    return TS_OK;
}

/* ---------------------------------------------------------------- UNet */

static ts_status block_types(json_t *root, const char *key, int *n, int *cross, int down,
                             ts_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_BLOCKS)
        return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\" must list 1 to %d block types",
                            key, MAX_BLOCKS);
    *n = (int)json_array_size(v);
    for (int i = 0; i < *n; i++) {
        const char *t = json_string_value(json_array_get(v, (size_t)i));
        if (!t)
            return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\"[%d] is not a string", key,
                                i);
        const char *plain = down ? "DownBlock2D" : "UpBlock2D";
        const char *attn = down ? "CrossAttnDownBlock2D" : "CrossAttnUpBlock2D";
        if (strcmp(t, plain) == 0)
            cross[i] = 0;
        else if (strcmp(t, attn) == 0)
            cross[i] = 1;
        else
            return ts_error_set(err, TS_ERR_UNSUPPORTED,
                                "block type \"%.40s\" in \"%s\" is not "
                                "supported",
                                t, key);
    }
    return TS_OK;
}

ts_status ts_unet_config_parse(const char *json, size_t len, ts_unet_config *c, ts_error *err)
{
    json_t *root;
    ts_status s = load_root(json, len, &root, err);
    if (s != TS_OK)
        return s;
    ts_unet_config_default(c);

    static const char *const unset[] = {"class_embed_type",
                                        "addition_embed_type",
                                        "num_class_embeds",
                                        "encoder_hid_dim",
                                        "time_cond_proj_dim",
                                        "dual_cross_attention",
                                        "only_cross_attention",
                                        "cross_attention_norm",
                                        "timestep_post_act",
                                        "class_embeddings_concat",
                                        "projection_class_embeddings_input_dim",
                                        "reverse_transformer_layers_per_block",
                                        "resnet_skip_time_act",
                                        "center_input_sample",
                                        NULL};
    TRY(expect_unset(root, unset, err));
    static const char *const silu[] = {"silu", "swish", NULL};
    static const char *const positional[] = {"positional", NULL};
    static const char *const deflt[] = {"default", NULL};
    static const char *const mid[] = {"UNetMidBlock2DCrossAttn", NULL};
    TRY(expect_string(root, "act_fn", silu, 1, err));
    TRY(expect_string(root, "time_embedding_type", positional, 1, err));
    TRY(expect_string(root, "resnet_time_scale_shift", deflt, 1, err));
    TRY(expect_string(root, "attention_type", deflt, 1, err));
    TRY(expect_string(root, "mid_block_type", mid, 0, err));
    int k = 3;
    TRY(get_int(root, "conv_in_kernel", 3, 3, &k, err));
    TRY(get_int(root, "conv_out_kernel", 3, 3, &k, err));
    float one = 1.0f;
    TRY(get_float(root, "mid_block_scale_factor", &one, err));
    if (one != 1.0f) {
        s = ts_error_set(err, TS_ERR_UNSUPPORTED, "mid_block_scale_factor other than 1");
        goto done;
    }

    TRY(get_int(root, "in_channels", 1, 64, &c->in_channels, err));
    TRY(get_int(root, "out_channels", 1, 64, &c->out_channels, err));
    TRY(get_int(root, "sample_size", 1, 4096, &c->sample_size, err));
    TRY(get_int(root, "layers_per_block", 1, 8, &c->layers_per_block, err));
    TRY(get_int(root, "cross_attention_dim", 1, 16384, &c->cross_attention_dim, err));
    TRY(get_int(root, "norm_num_groups", 1, 1024, &c->norm_groups, err));
    TRY(get_float(root, "norm_eps", &c->norm_eps, err));
    TRY(get_bool(root, "use_linear_projection", &c->use_linear_projection, err));
    TRY(get_bool(root, "flip_sin_to_cos", &c->flip_sin_to_cos, err));
    TRY(get_float(root, "freq_shift", &c->freq_shift, err));
    TRY(get_int(root, "downsample_padding", 0, 1, &c->downsample_padding, err));

    TRY(get_block_channels(root, &c->n_blocks, c->block_out_channels, err));
    int present;

    int nd, nu;
    TRY(block_types(root, "down_block_types", &nd, c->down_cross_attn, 1, err));
    TRY(block_types(root, "up_block_types", &nu, c->up_cross_attn, 0, err));
    if (nd != c->n_blocks || nu != c->n_blocks) {
        s = ts_error_set(err, TS_ERR_FORMAT,
                         "%d down and %d up block types for %d channel "
                         "counts",
                         nd, nu, c->n_blocks);
        goto done;
    }

    /* Heads: num_attention_heads if given, else attention_head_dim (which
     * diffusers uses as the number of heads). */
    int heads[MAX_BLOCKS];
    int have_nah = 0, have_ahd = 0;
    TRY(get_int_or_list(root, "num_attention_heads", c->n_blocks, 1, 4096, heads, &have_nah, err));
    if (!have_nah) {
        TRY(get_int_or_list(root, "attention_head_dim", c->n_blocks, 1, 4096, heads, &have_ahd,
                            err));
        if (!have_ahd)
            for (int i = 0; i < c->n_blocks; i++)
                heads[i] = 8;
    }
    for (int i = 0; i < c->n_blocks; i++) {
        c->heads[i] = heads[i];
        c->head_dim[i] = c->block_out_channels[i] / heads[i];
    }

    int tl[MAX_BLOCKS];
    TRY(get_int_or_list(root, "transformer_layers_per_block", c->n_blocks, 1, 16, tl, &present,
                        err));
    if (present) {
        for (int i = 1; i < c->n_blocks; i++) {
            if (tl[i] != tl[0]) {
                s = ts_error_set(err, TS_ERR_UNSUPPORTED,
                                 "transformer_layers_per_block differing per block is not "
                                 "supported");
                goto done;
            }
        }
        c->transformer_layers = tl[0];
    }
    c->time_embed_dim = 4 * c->block_out_channels[0];
    TRY(get_int(root, "time_embedding_dim", 1, 65536, &c->time_embed_dim, err));
    s = ts_unet_config_check(c, err);
done:
    json_decref(root);
    return s;
}

ts_status ts_unet_config_check(const ts_unet_config *c, ts_error *err)
{
    if (c->n_blocks < 1 || c->n_blocks > MAX_BLOCKS)
        return ts_error_set(err, TS_ERR_FORMAT, "UNet has %d blocks (1 to %d)", c->n_blocks,
                            MAX_BLOCKS);
    for (int i = 0; i < c->n_blocks; i++) {
        int ch = c->block_out_channels[i];
        if (ch <= 0 || ch % c->norm_groups != 0)
            return ts_error_set(err, TS_ERR_FORMAT,
                                "UNet block_out_channels[%d] = %d is not a multiple of "
                                "norm_num_groups %d",
                                i, ch, c->norm_groups);
        if (c->heads[i] <= 0 || c->head_dim[i] <= 0 || c->heads[i] * c->head_dim[i] != ch)
            return ts_error_set(err, TS_ERR_FORMAT,
                                "UNet block %d: %d channels do not split into %d heads", i, ch,
                                c->heads[i]);
    }
    if (c->block_out_channels[0] % 2 != 0 || c->time_embed_dim <= 0)
        return ts_error_set(err, TS_ERR_FORMAT, "UNet time embedding sizes are invalid");
    if (c->in_channels <= 0 || c->out_channels <= 0 || c->layers_per_block <= 0 ||
        c->transformer_layers <= 0 || c->cross_attention_dim <= 0)
        return ts_error_set(err, TS_ERR_FORMAT, "UNet sizes must be positive");
    return TS_OK;
}

/* ---------------------------------------------------------------- VAE */

static ts_status vae_block_types(json_t *root, const char *key, const char *want, int n,
                                 ts_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v)
        return TS_OK;
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return ts_error_set(err, TS_ERR_FORMAT, "config key \"%s\" must list %d block types", key,
                            n);
    for (int i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(v, (size_t)i));
        if (!t || strcmp(t, want) != 0)
            return ts_error_set(err, TS_ERR_UNSUPPORTED,
                                "block type \"%.40s\" in \"%s\" is not supported (only %s)",
                                t ? t : "?", key, want);
    }
    return TS_OK;
}

ts_status ts_vae_config_parse(const char *json, size_t len, ts_vae_config *c, ts_error *err)
{
    json_t *root;
    ts_status s = load_root(json, len, &root, err);
    if (s != TS_OK)
        return s;
    ts_vae_config_default(c);
    static const char *const silu[] = {"silu", "swish", NULL};
    TRY(expect_string(root, "act_fn", silu, 1, err));
    static const char *const unset[] = {"latents_mean", "latents_std", NULL};
    TRY(expect_unset(root, unset, err));

    TRY(get_block_channels(root, &c->n_blocks, c->block_out_channels, err));
    TRY(vae_block_types(root, "down_block_types", "DownEncoderBlock2D", c->n_blocks, err));
    TRY(vae_block_types(root, "up_block_types", "UpDecoderBlock2D", c->n_blocks, err));
    TRY(get_int(root, "in_channels", 1, 64, &c->in_channels, err));
    TRY(get_int(root, "out_channels", 1, 64, &c->out_channels, err));
    TRY(get_int(root, "latent_channels", 1, 256, &c->latent_channels, err));
    TRY(get_int(root, "layers_per_block", 1, 8, &c->layers_per_block, err));
    TRY(get_int(root, "norm_num_groups", 1, 1024, &c->norm_groups, err));
    TRY(get_int(root, "sample_size", 1, 65536, &c->sample_size, err));
    TRY(get_float(root, "scaling_factor", &c->scaling_factor, err));
    TRY(get_float(root, "shift_factor", &c->shift_factor, err));
    TRY(get_bool(root, "use_quant_conv", &c->use_quant_conv, err));
    TRY(get_bool(root, "use_post_quant_conv", &c->use_post_quant_conv, err));
    TRY(get_bool(root, "mid_block_add_attention", &c->mid_attention, err));
    s = ts_vae_config_check(c, err);
done:
    json_decref(root);
    return s;
}

ts_status ts_vae_config_check(const ts_vae_config *c, ts_error *err)
{
    if (c->n_blocks < 1 || c->n_blocks > MAX_BLOCKS)
        return ts_error_set(err, TS_ERR_FORMAT, "VAE has %d blocks (1 to %d)", c->n_blocks,
                            MAX_BLOCKS);
    for (int i = 0; i < c->n_blocks; i++)
        if (c->block_out_channels[i] <= 0 || c->block_out_channels[i] % c->norm_groups != 0)
            return ts_error_set(err, TS_ERR_FORMAT,
                                "VAE block_out_channels[%d] = %d is not a multiple of "
                                "norm_num_groups %d",
                                i, c->block_out_channels[i], c->norm_groups);
    if (c->in_channels <= 0 || c->out_channels <= 0 || c->latent_channels <= 0 ||
        c->layers_per_block <= 0 || !(c->scaling_factor > 0))
        return ts_error_set(err, TS_ERR_FORMAT, "VAE sizes and scaling_factor must be positive");
    return TS_OK;
}

/* ---------------------------------------------------------------- files */

static ts_status read_file(const char *path, char **out, size_t *len, ts_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_error_set(err, errno == ENOENT ? TS_ERR_NOT_FOUND : TS_ERR_IO,
                            "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(TS_CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, TS_CONFIG_FILE_MAX + 1, f);
    fclose(f);
    if (n > TS_CONFIG_FILE_MAX) {
        free(buf);
        return ts_error_set(err, TS_ERR_LIMIT, "%s is larger than %u bytes", path,
                            TS_CONFIG_FILE_MAX);
    }
    *out = buf;
    *len = n;
    return TS_OK;
}

#define LOADER(kind)                                                                               \
    ts_status ts_##kind##_config_load(const char *path, ts_##kind##_config *cfg, ts_error *err)    \
    {                                                                                              \
        char *buf;                                                                                 \
        size_t len;                                                                                \
        ts_status s = read_file(path, &buf, &len, err);                                            \
        if (s != TS_OK)                                                                            \
            return s;                                                                              \
        s = ts_##kind##_config_parse(buf, len, cfg, err);                                          \
        free(buf);                                                                                 \
        return s == TS_OK ? s : ts_error_wrap(err, "%s", path);                                    \
    }

LOADER(clip)
LOADER(unet)
LOADER(vae)
