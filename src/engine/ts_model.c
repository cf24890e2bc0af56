/*
 * ts_model.c - loading a model folder or a single-file checkpoint (see
 * ts_model.h for what is read and checked, in which order).
 */
#include "ts_model.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "ts_ckpt.h"
#include "ts_config.h"
#include "ts_prompt.h"
#include "ts_weights.h"

#define DEFAULT_STEPS    20
#define DEFAULT_GUIDANCE 7.5f
#define LCM_STEPS        4
#define LCM_GUIDANCE     1.0f

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static ts_status join(char *out, size_t cap, const char *a, const char *b, ts_error *err)
{
    if (snprintf(out, cap, "%s/%s", a, b) >= (int)cap)
        return ts_error_set(err, TS_ERR_ARG, "model path is longer than %zu bytes", cap);
    return TS_OK;
}

/* The weights file of a part: the full-precision name first, then the
 * ".fp16" variant diffusers writes next to it. */
static ts_status find_weights(const char *dir, const char *part, const char *stem, char *out,
                              size_t cap, ts_error *err)
{
    const char *variants[] = {".safetensors", ".fp16.safetensors"};
    for (int i = 0; i < 2; i++) {
        if (snprintf(out, cap, "%s/%s/%s%s", dir, part, stem, variants[i]) >= (int)cap)
            return ts_error_set(err, TS_ERR_ARG, "model path is too long");
        if (is_file(out))
            return TS_OK;
    }
    static const char *const pickles[] = {"pytorch_model.bin", "diffusion_pytorch_model.bin",
                                          "model.bin"};
    for (int i = 0; i < 3; i++) {
        char pickle[TS_MODEL_PATH_MAX];
        snprintf(pickle, sizeof pickle, "%s/%s/%s", dir, part, pickles[i]);
        if (is_file(pickle))
            return ts_error_set(err, TS_ERR_UNSUPPORTED,
                                "%s/%s holds only %s, a pickle file, which can run code when "
                                "loaded; convert it to .safetensors",
                                dir, part, pickles[i]);
    }
    return ts_error_set(err, TS_ERR_NOT_FOUND,
                        "%s/%s/%s.safetensors (or .fp16.safetensors) is "
                        "missing",
                        dir, part, stem);
}

/* togethershot.json: {"default_steps": 8, "default_guidance": 3.0, "family": "..."}. */
static ts_status read_sidecar(const char *dir, ts_model_info *info, ts_error *err)
{
    char path[TS_MODEL_PATH_MAX];
    ts_status st = join(path, sizeof path, dir, "togethershot.json", err);
    if (st != TS_OK || !is_file(path))
        return st;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_FORMAT, "%s is not a JSON object (line %d)", path,
                            jerr.line);
    }
    json_t *v;
    if ((v = json_object_get(root, "default_steps")) && json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > TS_SCHEDULE_MAX_STEPS)
            st = ts_error_set(err, TS_ERR_FORMAT, "%s: default_steps must be 1..%d", path,
                              TS_SCHEDULE_MAX_STEPS);
        else
            info->default_steps = (int)n;
    }
    if ((v = json_object_get(root, "default_guidance")) && json_is_number(v)) {
        double g = json_number_value(v);
        if (!(g >= 0.0 && g <= 50.0))
            st = ts_error_set(err, TS_ERR_FORMAT, "%s: default_guidance must be 0..50", path);
        else
            info->default_guidance = (float)g;
    }
    if ((v = json_object_get(root, "family")) && json_is_string(v))
        snprintf(info->family, sizeof info->family, "%s", json_string_value(v));
    json_decref(root);
    return st;
}

static ts_status read_index(const char *dir, ts_error *err)
{
    char path[TS_MODEL_PATH_MAX];
    ts_status st = join(path, sizeof path, dir, "model_index.json", err);
    if (st != TS_OK)
        return st;
    if (!is_file(path))
        return ts_error_set(err, TS_ERR_NOT_FOUND,
                            "%s has no model_index.json; expected a diffusers model folder "
                            "(model_index.json, text_encoder/, tokenizer/, unet/, vae/, "
                            "scheduler/) or a .safetensors checkpoint",
                            dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    int ok = root && json_is_object(root);
    json_decref(root);
    if (!ok)
        return ts_error_set(err, TS_ERR_FORMAT, "%s is not a JSON object (line %d: %s)", path,
                            jerr.line, jerr.text);
    return TS_OK;
}

static ts_status load_folder(ts_model *m, const char *dir, ts_error *err)
{
    char path[TS_MODEL_PATH_MAX];
    ts_status st = read_index(dir, err);
    if (st != TS_OK)
        return st;

    /* Configurations. */
    if ((st = join(path, sizeof path, dir, "text_encoder/config.json", err)) != TS_OK ||
        (st = ts_clip_config_load(path, &m->clip_cfg, err)) != TS_OK)
        return ts_error_wrap(err, "text encoder");
    if ((st = join(path, sizeof path, dir, "unet/config.json", err)) != TS_OK ||
        (st = ts_unet_config_load(path, &m->unet_cfg, err)) != TS_OK)
        return ts_error_wrap(err, "unet");
    if ((st = join(path, sizeof path, dir, "vae/config.json", err)) != TS_OK ||
        (st = ts_vae_config_load(path, &m->vae_cfg, err)) != TS_OK)
        return ts_error_wrap(err, "vae");
    ts_schedule_config_default(&m->sched_cfg);
    if ((st = join(path, sizeof path, dir, "scheduler/scheduler_config.json", err)) != TS_OK)
        return st;
    if (!is_file(path))
        return ts_error_set(err, TS_ERR_NOT_FOUND, "%s is missing", path);
    if ((st = ts_schedule_config_load(path, &m->sched_cfg, err)) != TS_OK)
        return ts_error_wrap(err, "scheduler");

    /* Tokenizer. */
    if ((st = join(path, sizeof path, dir, "tokenizer", err)) != TS_OK)
        return st;
    if ((st = ts_tokenizer_load_dir(path, &m->tok, err)) != TS_OK)
        return ts_error_wrap(err, "tokenizer");

    /* Weights, one file per part under the part's prefix. */
    static const struct {
        const char *part, *stem, *prefix;
    } parts[] = {
        {"text_encoder", "model", "text_encoder."},
        {"unet", "diffusion_pytorch_model", "unet."},
        {"vae", "diffusion_pytorch_model", "vae."},
    };
    if ((st = ts_weights_create(&m->weights, err)) != TS_OK)
        return st;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        if ((st = find_weights(dir, parts[i].part, parts[i].stem, path, sizeof path, err)) !=
                TS_OK ||
            (st = ts_weights_add_file(m->weights, path, parts[i].prefix, err)) != TS_OK)
            return st;
    }
    snprintf(m->info.family, sizeof m->info.family, "%s",
             m->clip_cfg.hidden >= 1024 ? "sd2" : "sd1");
    return read_sidecar(dir, &m->info, err);
}

static ts_status load_single_file(ts_model *m, const char *file, const ts_model_options *opts,
                                  ts_error *err)
{
    /* The folder the file sits in, for the tokenizer and an optional
     * scheduler config. */
    char dir[TS_MODEL_PATH_MAX], path[TS_MODEL_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");

    /* The file itself first: a broken checkpoint is the problem to report,
     * not the tokenizer folder that would go with it. */
    ts_ckpt_info ci;
    ts_status st = ts_ckpt_load(file, &m->weights, &ci, err);
    if (st != TS_OK)
        return st;

    const char *tok_dir = opts && opts->tokenizer_dir ? opts->tokenizer_dir : NULL;
    if (!tok_dir) {
        if ((st = join(path, sizeof path, dir, "tokenizer", err)) != TS_OK)
            return st;
        if (!is_dir(path))
            return ts_error_set(err, TS_ERR_NOT_FOUND,
                                "%s is a single-file checkpoint, which carries no tokenizer; "
                                "put CLIP's vocab.json and merges.txt in %s/ (they come with "
                                "any diffusers SD model's tokenizer/ folder)",
                                file, path);
        tok_dir = path;
    }
    if ((st = ts_tokenizer_load_dir(tok_dir, &m->tok, err)) != TS_OK)
        return ts_error_wrap(err, "tokenizer");
    m->clip_cfg = ci.clip;
    m->unet_cfg = ci.unet;
    m->vae_cfg = ci.vae;
    snprintf(m->info.family, sizeof m->info.family, "%s%s", ci.family,
             ci.inpaint ? "-inpaint" : "");

    ts_schedule_config_default(&m->sched_cfg);
    if ((st = join(path, sizeof path, dir, "scheduler/scheduler_config.json", err)) != TS_OK)
        return st;
    if (is_file(path) && (st = ts_schedule_config_load(path, &m->sched_cfg, err)) != TS_OK)
        return ts_error_wrap(err, "scheduler");
    return TS_OK;
}

/* The parts must agree before any network is built. */
static ts_status check_fit(ts_model *m, ts_error *err)
{
    const ts_unet_config *u = &m->unet_cfg;
    const ts_vae_config *v = &m->vae_cfg;
    const ts_clip_config *c = &m->clip_cfg;
    ts_status st;
    if ((st = ts_clip_config_check(c, err)) != TS_OK ||
        (st = ts_unet_config_check(u, err)) != TS_OK || (st = ts_vae_config_check(v, err)) != TS_OK)
        return st;
    if (u->cross_attention_dim != c->hidden)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "the UNet expects text states of width %d but the text encoder "
                            "gives %d; the parts come from different models",
                            u->cross_attention_dim, c->hidden);
    int lc = v->latent_channels;
    if (u->out_channels != lc || (u->in_channels != lc && u->in_channels != 2 * lc + 1))
        return ts_error_set(err, TS_ERR_FORMAT,
                            "the UNet takes %d and gives %d channels but the VAE's latents "
                            "have %d (expected %d or %d in, %d out)",
                            u->in_channels, u->out_channels, lc, lc, 2 * lc + 1, lc);
    if (c->max_positions < 3 || c->max_positions > TS_PROMPT_WINDOW_MAX)
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "text encoder max_position_embeddings %d is outside 3..%d",
                            c->max_positions, TS_PROMPT_WINDOW_MAX);
    if (ts_tokenizer_vocab_size(m->tok) > c->vocab_size)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "the tokenizer has %d entries but the text encoder only %d",
                            ts_tokenizer_vocab_size(m->tok), c->vocab_size);
    if (ts_tokenizer_bos(m->tok) >= c->vocab_size || ts_tokenizer_eos(m->tok) >= c->vocab_size)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "the tokenizer's BOS/EOS ids are outside the "
                            "text encoder's vocabulary");
    if (!(v->scaling_factor > 0.0f))
        return ts_error_set(err, TS_ERR_FORMAT, "vae scaling_factor must be positive");
    return TS_OK;
}

static void fill_info(ts_model *m)
{
    ts_model_info *i = &m->info;
    i->vae_scale = 1 << (m->vae_cfg.n_blocks - 1);
    m->unet_factor = 1 << (m->unet_cfg.n_blocks - 1);
    i->latent_channels = m->vae_cfg.latent_channels;
    i->native_width = i->native_height = m->unet_cfg.sample_size * i->vae_scale;
    i->unet_in_channels = m->unet_cfg.in_channels;
    i->prediction_v = m->sched_cfg.prediction_v;
    int lcm = m->sched_cfg.default_sampler == TS_SAMPLER_LCM;
    if (i->default_steps == 0)
        i->default_steps = lcm ? LCM_STEPS : DEFAULT_STEPS;
    if (i->default_guidance < 0.0f)
        i->default_guidance = lcm ? LCM_GUIDANCE : DEFAULT_GUIDANCE;
}

ts_status ts_model_load(const char *path, const ts_model_options *opts, ts_model **out,
                        ts_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return ts_error_set(err, TS_ERR_ARG, "no model path given");
    if (strlen(path) >= TS_MODEL_PATH_MAX - 64)
        return ts_error_set(err, TS_ERR_ARG, "model path is longer than %d bytes",
                            TS_MODEL_PATH_MAX - 64);
    if (ends_with(path, ".ckpt") || ends_with(path, ".pt") || ends_with(path, ".pth") ||
        ends_with(path, ".bin"))
        return ts_error_set(err, TS_ERR_UNSUPPORTED,
                            "%s is a pickle checkpoint, which can run arbitrary code when "
                            "loaded; convert it to .safetensors",
                            path);

    ts_model *m = calloc(1, sizeof(*m));
    if (!m)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the model");
    if (opts)
        m->opts = *opts;
    m->opts.tokenizer_dir = NULL; /* not kept: the caller owns that string */
    m->info.default_guidance = -1.0f;
    if (m->opts.threads > 0)
        omp_set_num_threads(m->opts.threads);

    ts_status st;
    if (is_dir(path)) {
        st = load_folder(m, path, err);
    } else if (is_file(path) && ends_with(path, ".safetensors")) {
        st = load_single_file(m, path, opts, err);
    } else if (!is_file(path)) {
        st = ts_error_set(err, TS_ERR_NOT_FOUND, "model %s does not exist", path);
    } else {
        st = ts_error_set(err, TS_ERR_UNSUPPORTED,
                          "%s is neither a diffusers model folder nor a .safetensors "
                          "checkpoint",
                          path);
    }
    if (st == TS_OK)
        st = check_fit(m, err);
    if (st != TS_OK)
        goto fail;
    fill_info(m);

    /* One scratch for the three networks: they never run at the same time. */
    if ((st = ts_nn_scratch_create(&m->scratch, err)) != TS_OK)
        goto fail;
    if ((st = ts_clip_create(&m->clip_cfg, m->weights, "text_encoder.", m->scratch, &m->clip,
                             err)) != TS_OK) {
        ts_error_wrap(err, "text encoder");
        goto fail;
    }
    if ((st = ts_unet_create(&m->unet_cfg, m->weights, "unet.", m->scratch, &m->unet, err)) !=
        TS_OK) {
        ts_error_wrap(err, "unet");
        goto fail;
    }
    if ((st = ts_vae_create(&m->vae_cfg, m->weights, "vae.", m->scratch, &m->vae, err)) != TS_OK) {
        ts_error_wrap(err, "vae");
        goto fail;
    }
    /* Previews: fitted to this VAE; the fixed SD factors when that fails. */
    ts_error ignored;
    ts_preview_fit(m->vae, &m->vae_cfg, &m->preview, &ignored);
    *out = m;
    return TS_OK;

fail:
    ts_model_destroy(m);
    return st;
}

void ts_model_destroy(ts_model *m)
{
    if (!m)
        return;
    ts_vae_destroy(m->vae);
    ts_unet_destroy(m->unet);
    ts_clip_destroy(m->clip);
    ts_nn_scratch_destroy(m->scratch);
    ts_weights_destroy(m->weights);
    ts_tokenizer_destroy(m->tok);
    free(m);
}

void ts_model_get_info(const ts_model *m, ts_model_info *info)
{
    *info = m->info;
}

void ts_engine_round_size(const ts_model *m, int *width, int *height)
{
    int q = m->info.vae_scale * m->unet_factor;
    int *sides[2] = {width, height};
    for (int i = 0; i < 2; i++) {
        int v = *sides[i];
        if (v <= 0) {
            *sides[i] = i == 0 ? m->info.native_width : m->info.native_height;
            continue;
        }
        if (v > TS_GENERATE_SIDE_MAX)
            v = TS_GENERATE_SIDE_MAX;
        int r = (v + q / 2) / q * q;
        if (r < q)
            r = q;
        if (r > TS_GENERATE_SIDE_MAX)
            r = TS_GENERATE_SIDE_MAX / q * q;
        *sides[i] = r;
    }
}
