/*
 * pipeline_test.c - model loading and the generation pipeline on the tiny
 * fixture models (tests/fixtures/engine/, written by the independent
 * reference tools/sdref).
 *
 *   - whole sampler runs (text encoding, CFG batching, every sampler, the
 *     VAE decode) against the reference's latents and images for the same
 *     initial and per-step noise;
 *   - properties: same seed gives the same bytes, seeds differ, img2img
 *     strength 0 / tiny / 1, inpainting keeps the unmasked pixels, progress
 *     and cancellation, n images with their seeds, long prompts;
 *   - hostile model folders refused with a clear status.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ts_engine.h"
#include "ts_model.h"
#include "ts_pipeline.h"
#include "ts_safetensors.h"
#include "ts_test.h"

static char fixtures[1024];

static void fixture(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/engine/%s", fixtures, rel);
}

static ts_model *load(const char *rel)
{
    char path[1200];
    fixture(path, sizeof path, rel);
    ts_model *m = NULL;
    ts_error err;
    /* One thread: the tiny networks gain nothing from more, and on a busy
     * machine OpenMP's spinning threads only slow the test down. */
    ts_model_options o = {.threads = 1};
    ts_status st = ts_model_load(path, &o, &m, &err);
    if (st != TS_OK)
        fprintf(stderr, "  loading %s: %s\n", rel, err.message);
    TS_CHECK_INT_EQ(st, TS_OK);
    return m;
}

/* ------------------------------------------------------------ reference runs */

static const float *golden_tensor(const ts_safetensors *st, const char *name, int64_t count)
{
    const ts_st_tensor *t = ts_safetensors_find(st, name);
    TS_CHECK(t != NULL);
    if (!t || t->dtype != TS_DTYPE_F32 || t->count != count) {
        fprintf(stderr, "  golden tensor %s missing or not (%lld) f32\n", name, (long long)count);
        return NULL;
    }
    return t->data;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    *scale = s;
    return d;
}

static void test_reference_sampler_runs(void)
{
    char path[1200];
    fixture(path, sizeof path, "golden/samplers.json");
    json_t *doc = json_load_file(path, 0, NULL);
    fixture(path, sizeof path, "golden/samplers.safetensors");
    ts_safetensors *g = NULL;
    ts_error err;
    TS_CHECK(doc != NULL);
    TS_CHECK_INT_EQ(ts_safetensors_open(path, &g, &err), TS_OK);
    if (!doc || !g) {
        json_decref(doc);
        return;
    }
    ts_model *models[2] = {load("tiny-sd1"), load("tiny-sd2")};
    const int C = 4, H = 8, W = 8, n = C * H * W;
    const float *noise = golden_tensor(g, "noise", n);
    const float *step_noise = golden_tensor(g, "step_noise", 8 * n);
    const char *name;
    json_t *run;
    int runs = 0;
    json_object_foreach(doc, name, run)
    {
        const char *fam = json_string_value(json_object_get(run, "model"));
        ts_model *m = models[strcmp(fam, "tiny-sd2") == 0];
        if (!m || !noise || !step_noise)
            break;
        json_t *cfg = json_object_get(run, "config");
        const char *sampler = json_string_value(json_object_get(run, "sampler"));

        /* The run's scheduler settings over the model's own (the reference
         * defaults: linspace, offset 0, except DDIM: leading, offset 1). */
        ts_schedule_config saved = m->sched_cfg;
        int ddim = strcmp(sampler, "ddim") == 0;
        m->sched_cfg.spacing = ddim ? TS_SPACING_LEADING : TS_SPACING_LINSPACE;
        m->sched_cfg.steps_offset = ddim ? 1 : 0;
        json_t *v = json_object_get(cfg, "timestep_spacing");
        if (v)
            m->sched_cfg.spacing = strcmp(json_string_value(v), "leading") == 0 ? TS_SPACING_LEADING
                                   : strcmp(json_string_value(v), "trailing") == 0
                                       ? TS_SPACING_TRAILING
                                       : TS_SPACING_LINSPACE;
        if ((v = json_object_get(cfg, "steps_offset")))
            m->sched_cfg.steps_offset = (int)json_integer_value(v);

        ts_gen_params p;
        ts_gen_params_default(&p);
        p.prompt = "a photo of a cat";
        p.steps = (int)json_integer_value(json_object_get(run, "steps"));
        p.guidance = (float)json_number_value(json_object_get(run, "guidance"));
        TS_CHECK(ts_sampler_parse(sampler, &p.sampler));
        if (json_is_true(json_object_get(cfg, "use_karras_sigmas")))
            p.sampler = TS_SAMPLER_DPMPP_2M_KARRAS;
        float latent[4 * 8 * 8];
        ts_gen_debug dbg = {noise, step_noise, NULL, latent, 0};

        /* img2img and inpainting runs start from the reference's init
         * latent (a posterior sample); the image only sets the size. */
        ts_image init = {0}, mask = {0};
        const float *mask_px = NULL;
        json_t *strength = json_object_get(run, "strength");
        if (strength) {
            p.strength = (float)json_number_value(strength);
            dbg.init_latent = golden_tensor(g, "img2img.init_latent", n);
            const float *px = golden_tensor(g, "img2img.image", 3 * 16 * 16);
            if (px)
                ts_image_from_tensor(px, 16, 16, &init, &err);
            p.init_image = &init;
            char key[128];
            snprintf(key, sizeof key, "%s.mask_pixels", name);
            if (ts_safetensors_find(g, key)) {
                mask_px = golden_tensor(g, key, 16 * 16);
                ts_image_alloc(&mask, 16, 16, &err);
                for (int i = 0; mask_px && i < 256; i++)
                    memset(mask.pixels + i * 3, mask_px[i] >= 0.5f ? 255 : 0, 3);
                p.mask = &mask;
            }
        }
        ts_image out = {0};
        ts_status st = ts_generate_ex(m, &p, &dbg, NULL, NULL, &out, &err);
        ts_image_free(&init);
        ts_image_free(&mask);
        TS_CHECK_INT_EQ(st, TS_OK);
        m->sched_cfg = saved;
        if (st != TS_OK) {
            fprintf(stderr, "  run %s: %s\n", name, err.message);
            continue;
        }

        char key[128];
        snprintf(key, sizeof key, "%s.latent", name);
        const float *want = golden_tensor(g, key, n);
        snprintf(key, sizeof key, "%s.image", name);
        const float *want_img = golden_tensor(g, key, 3 * 16 * 16);
        if (want && want_img) {
            double scale, d = max_abs_diff(latent, want, (size_t)n, &scale);
            if (!(d <= 1e-3 * fmax(scale, 1.0)))
                fprintf(stderr, "  run %s: latent differs by %g (scale %g)\n", name, d, scale);
            TS_CHECK(d <= 1e-3 * fmax(scale, 1.0));
            /* The image: within one 8-bit level of the reference's pixels. */
            int worst = 0;
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < 256; i++) {
                    if (mask_px && mask_px[i] < 0.5f)
                        continue; /* kept pixels are composited from the source */
                    double r = (want_img[k * 256 + i] + 1.0) * 127.5;
                    r = r < 0 ? 0 : r > 255 ? 255 : r;
                    int diff = abs((int)out.pixels[i * 3 + k] - (int)lrint(r));
                    worst = diff > worst ? diff : worst;
                }
            if (worst > 1)
                fprintf(stderr, "  run %s: image differs by %d levels\n", name, worst);
            TS_CHECK(worst <= 1);
        }
        ts_image_free(&out);
        runs++;
    }
    TS_CHECK(runs >= 8);
    ts_model_destroy(models[0]);
    ts_model_destroy(models[1]);
    ts_safetensors_close(g);
    json_decref(doc);
}

/* ------------------------------------------------------------ properties */

typedef struct counter {
    int calls, cancel_at, last_step, last_total, previews;
} counter;

static int count_steps(void *user, int step, int total, const ts_image *preview)
{
    counter *c = user;
    c->calls++;
    c->last_step = step;
    c->last_total = total;
    if (preview && preview->width > 0)
        c->previews++;
    return c->cancel_at && c->calls >= c->cancel_at;
}

static int same_image(const ts_image *a, const ts_image *b)
{
    return a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * 3) == 0;
}

static ts_image make(ts_model *m, const ts_gen_params *p, ts_status want, counter *c)
{
    ts_image out = {0};
    ts_error err;
    ts_status st = ts_generate(m, p, c ? count_steps : NULL, c, &out, &err);
    if (st != want)
        fprintf(stderr, "  generate: %s\n", err.message);
    TS_CHECK_INT_EQ(st, want);
    return out;
}

static void test_determinism_and_seeds(void)
{
    ts_model *m = load("tiny-sd1");
    if (!m)
        return;
    ts_model_info info;
    ts_model_get_info(m, &info);
    TS_CHECK_INT_EQ(info.native_width, 16);
    TS_CHECK_INT_EQ(info.vae_scale, 2);
    TS_CHECK_INT_EQ(info.latent_channels, 4);
    TS_CHECK_INT_EQ(info.unet_in_channels, 4);

    ts_gen_params p;
    ts_gen_params_default(&p);
    p.prompt = "a red (heart:1.3), [blue] sky";
    p.negative_prompt = "blurry";
    p.steps = 4;
    p.seed = 42;
    counter c = {0};
    ts_image a = make(m, &p, TS_OK, &c), b = make(m, &p, TS_OK, NULL);
    TS_CHECK_INT_EQ(a.width, 16);
    TS_CHECK(same_image(&a, &b));
    TS_CHECK_INT_EQ(c.calls, 4);
    TS_CHECK_INT_EQ(c.last_step, 4);
    TS_CHECK_INT_EQ(c.last_total, 4);
    TS_CHECK_INT_EQ(c.previews, 4);
    p.seed = 43;
    ts_image d = make(m, &p, TS_OK, NULL);
    TS_CHECK(!same_image(&a, &d));

    /* n images: seeds 42 and 43, the first equal to the single run. */
    p.seed = 42;
    ts_image outs[2];
    uint64_t seeds[2];
    ts_error err;
    counter c2 = {0};
    TS_CHECK_INT_EQ(ts_generate_n(m, &p, 2, count_steps, &c2, outs, seeds, &err), TS_OK);
    TS_CHECK_INT_EQ(seeds[0], 42);
    TS_CHECK_INT_EQ(seeds[1], 43);
    TS_CHECK(same_image(&outs[0], &a));
    TS_CHECK(same_image(&outs[1], &d));
    TS_CHECK_INT_EQ(c2.calls, 8);
    TS_CHECK_INT_EQ(c2.last_total, 8);
    ts_image_free(&outs[0]);
    ts_image_free(&outs[1]);

    /* Every sampler runs; guidance off runs batch 1; Philox noise differs. */
    for (int s = TS_SAMPLER_EULER; s <= TS_SAMPLER_LCM; s++) {
        p.sampler = (ts_sampler)s;
        ts_image e = make(m, &p, TS_OK, NULL);
        ts_image_free(&e);
    }
    p.sampler = TS_SAMPLER_DEFAULT;
    p.guidance = 1.0f;
    ts_image f = make(m, &p, TS_OK, NULL);
    TS_CHECK(!same_image(&f, &a));
    p.guidance = -1.0f;
    p.philox_noise = 1;
    ts_image ph = make(m, &p, TS_OK, NULL), ph2 = make(m, &p, TS_OK, NULL);
    TS_CHECK(!same_image(&ph, &a));
    TS_CHECK(same_image(&ph, &ph2));
    p.philox_noise = 0;

    /* A prompt of three chunks runs; one past the limit is refused. */
    char *long_prompt = malloc(8 * 80 * 6 + 1);
    long_prompt[0] = 0;
    for (int i = 0; i < 200; i++)
        strcat(long_prompt, "cat ");
    p.prompt = long_prompt;
    ts_image g = make(m, &p, TS_OK, NULL);
    long_prompt[0] = 0;
    for (int i = 0; i < 700; i++)
        strcat(long_prompt, "cat ");
    ts_image h = make(m, &p, TS_ERR_LIMIT, NULL);
    free(long_prompt);

    /* Sizes: multiples of vae_scale * 2 (one downsampling level) only. */
    p.prompt = "cat";
    p.width = 24;
    p.height = 8;
    ts_image r = make(m, &p, TS_OK, NULL);
    TS_CHECK_INT_EQ(r.width, 24);
    TS_CHECK_INT_EQ(r.height, 8);
    p.width = 18;
    ts_image bad = make(m, &p, TS_ERR_ARG, NULL);
    int w = 18, hh = 0;
    ts_engine_round_size(m, &w, &hh);
    TS_CHECK_INT_EQ(w, 20);
    TS_CHECK_INT_EQ(hh, 16);
    w = 1, hh = 100000;
    ts_engine_round_size(m, &w, &hh);
    TS_CHECK_INT_EQ(w, 4);
    TS_CHECK_INT_EQ(hh, TS_GENERATE_SIDE_MAX);

    ts_image *all[] = {&a, &b, &d, &f, &ph, &ph2, &g, &h, &r, &bad};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ts_image_free(all[i]);
    ts_model_destroy(m);
}

static void test_img2img_and_inpaint(void)
{
    ts_model *m = load("tiny-sd1");
    if (!m)
        return;
    ts_gen_params p;
    ts_gen_params_default(&p);
    p.prompt = "a cat";
    p.steps = 10;
    p.seed = 7;

    ts_image src = {0};
    ts_error err;
    TS_CHECK_INT_EQ(ts_image_alloc(&src, 16, 16, &err), TS_OK);
    for (int i = 0; i < 16 * 16 * 3; i++)
        src.pixels[i] = (uint8_t)(i * 37 % 251);
    ts_image txt = make(m, &p, TS_OK, NULL);

    /* strength 0: the input, byte for byte, with no steps run. */
    p.init_image = &src;
    p.strength = 0.0f;
    counter c = {0};
    ts_image same = make(m, &p, TS_OK, &c);
    TS_CHECK(same_image(&same, &src));
    TS_CHECK_INT_EQ(c.calls, 0);

    /* a tiny strength still runs exactly one step. */
    p.strength = 0.01f;
    counter c1 = {0};
    ts_image tiny = make(m, &p, TS_OK, &c1);
    TS_CHECK_INT_EQ(c1.calls, 1);
    TS_CHECK_INT_EQ(c1.last_total, 1);

    /* half strength: half the steps. */
    p.strength = 0.5f;
    counter c5 = {0};
    ts_image half = make(m, &p, TS_OK, &c5);
    TS_CHECK_INT_EQ(c5.calls, 5);

    /* strength 1 is txt2img with the same seed. */
    p.strength = 1.0f;
    ts_image full = make(m, &p, TS_OK, NULL);
    TS_CHECK(same_image(&full, &txt));

    /* Inpainting: the right half is kept, pixel for pixel. */
    ts_image mask = {0};
    TS_CHECK_INT_EQ(ts_image_alloc(&mask, 16, 16, &err), TS_OK);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 8; x++)
            memset(mask.pixels + (y * 16 + x) * 3, 255, 3);
    p.mask = &mask;
    p.strength = 1.0f;
    ts_image in = make(m, &p, TS_OK, NULL);
    int kept = 1, changed = 0;
    for (int y = 0; y < 16 && in.pixels; y++)
        for (int x = 0; x < 16; x++) {
            const uint8_t *a = in.pixels + (y * 16 + x) * 3, *b = src.pixels + (y * 16 + x) * 3;
            if (x >= 8)
                kept &= memcmp(a, b, 3) == 0;
            else
                changed += memcmp(a, b, 3) != 0;
        }
    TS_CHECK(kept);
    TS_CHECK(changed > 64);

    /* Cancellation between steps. */
    p.mask = NULL;
    p.init_image = NULL;
    counter cc = {0, 2, 0, 0, 0};
    ts_image cancelled = make(m, &p, TS_ERR_CANCELLED, &cc);
    TS_CHECK_INT_EQ(cc.calls, 2);
    TS_CHECK(cancelled.pixels == NULL);

    /* A mask without an image, a bad strength. */
    p.mask = &mask;
    ts_image e1 = make(m, &p, TS_ERR_ARG, NULL);
    p.mask = NULL;
    p.init_image = &src;
    p.strength = 1.5f;
    ts_image e2 = make(m, &p, TS_ERR_ARG, NULL);

    ts_image *all[] = {&src, &txt, &same, &tiny, &half, &full, &mask, &in, &cancelled, &e1, &e2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ts_image_free(all[i]);
    ts_model_destroy(m);
}

/* ------------------------------------------------------------ loading */

static int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    TS_CHECK_INT_EQ(rc, 0);
    return rc;
}

static ts_status try_load(const char *path, const ts_model_options *o, char *msg)
{
    ts_model *m = NULL;
    ts_error err;
    ts_error_clear(&err);
    ts_status st = ts_model_load(path, o, &m, &err);
    ts_model_destroy(m);
    if (msg)
        snprintf(msg, TS_ERROR_MESSAGE_MAX, "%s", err.message);
    return st;
}

static void test_model_files(void)
{
    char path[1200], dir[64] = "/tmp/ts_model_XXXXXX", cmd[4096], msg[TS_ERROR_MESSAGE_MAX];
    TS_CHECK(mkdtemp(dir) != NULL);

    /* f16 weights and single-file checkpoints. */
    ts_model *f16 = load("tiny-sd1-f16");
    ts_model_destroy(f16);
    fixture(path, sizeof path, "tiny-sd1.safetensors");
    TS_CHECK_INT_EQ(try_load(path, NULL, msg), TS_ERR_NOT_FOUND);
    TS_CHECK(strstr(msg, "tokenizer") != NULL);
    char tokdir[1200];
    fixture(tokdir, sizeof tokdir, "tiny-sd1/tokenizer");
    ts_model_options o = {0, 1, tokdir};
    ts_model *single = NULL;
    ts_error err;
    ts_status st = ts_model_load(path, &o, &single, &err);
    if (st != TS_OK)
        fprintf(stderr, "  single file: %s\n", err.message);
    TS_CHECK_INT_EQ(st, TS_OK);
    if (single) {
        ts_model_info info;
        ts_model_get_info(single, &info);
        TS_CHECK_STR_EQ(info.family, "sd1");
        ts_gen_params p;
        ts_gen_params_default(&p);
        p.prompt = "a cat";
        p.steps = 2;
        ts_image out = make(single, &p, TS_OK, NULL);
        ts_image_free(&out);
        ts_model_destroy(single);
    }

    /* Refusals. */
    TS_CHECK_INT_EQ(try_load("/nonexistent/model", NULL, NULL), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(try_load("model.ckpt", NULL, msg), TS_ERR_UNSUPPORTED);
    TS_CHECK(strstr(msg, "pickle") != NULL);
    TS_CHECK_INT_EQ(try_load(dir, NULL, msg), TS_ERR_NOT_FOUND); /* empty folder */
    TS_CHECK(strstr(msg, "model_index.json") != NULL);

    fixture(path, sizeof path, "tiny-sd1");
    char m1[128];
    snprintf(m1, sizeof m1, "%s/m", dir);
#define RESET()                                                                                    \
    do {                                                                                           \
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", m1, path, m1);                 \
        run_cmd(cmd);                                                                              \
    } while (0)
#define SH(...)                                                                                    \
    do {                                                                                           \
        snprintf(cmd, sizeof cmd, __VA_ARGS__);                                                    \
        run_cmd(cmd);                                                                              \
    } while (0)

    RESET();
    TS_CHECK_INT_EQ(try_load(m1, NULL, NULL), TS_OK);
    SH("printf '{\"broken\": ' > '%s/model_index.json'", m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, NULL), TS_ERR_FORMAT);
    RESET();
    SH("rm '%s/unet/config.json'", m1);
    TS_CHECK(try_load(m1, NULL, msg) != TS_OK);
    TS_CHECK(strstr(msg, "unet") != NULL);
    RESET();
    SH("rm '%s/vae/diffusion_pytorch_model.safetensors'", m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, msg), TS_ERR_NOT_FOUND);
    TS_CHECK(strstr(msg, "vae") != NULL);
    RESET();
    SH("mv '%s/unet/diffusion_pytorch_model.safetensors' "
       "'%s/unet/diffusion_pytorch_model.fp16.safetensors'",
       m1, m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, NULL), TS_OK);
    RESET();
    SH("rm '%s/unet/diffusion_pytorch_model.safetensors' && touch "
       "'%s/unet/diffusion_pytorch_model.bin'",
       m1, m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, msg), TS_ERR_UNSUPPORTED);
    RESET();
    SH("rm -r '%s/tokenizer'", m1);
    TS_CHECK(try_load(m1, NULL, msg) != TS_OK);
    TS_CHECK(strstr(msg, "tokenizer") != NULL);
    RESET();
    SH("printf 'not json' > '%s/scheduler/scheduler_config.json'", m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, NULL), TS_ERR_FORMAT);
    RESET();
    /* Parts of different models: the SD 2.x fixture's text encoder (width
     * 16) with the SD 1.x UNet (context 32). */
    char sd2[1200];
    fixture(sd2, sizeof sd2, "tiny-sd2");
    SH("rm -r '%s/text_encoder' && cp -r '%s/text_encoder' '%s/'", m1, sd2, m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, msg), TS_ERR_FORMAT);
    TS_CHECK(strstr(msg, "different models") != NULL);
    RESET();
    /* A truncated weights file. */
    SH("truncate -s 1000 '%s/unet/diffusion_pytorch_model.safetensors'", m1);
    TS_CHECK(try_load(m1, NULL, NULL) != TS_OK);
    RESET();
    SH("printf '{\"default_steps\": 8, \"default_guidance\": 3.5}' > '%s/togethershot.json'", m1);
    ts_model *side = NULL;
    TS_CHECK_INT_EQ(ts_model_load(m1, NULL, &side, &err), TS_OK);
    if (side) {
        ts_model_info info;
        ts_model_get_info(side, &info);
        TS_CHECK_INT_EQ(info.default_steps, 8);
        TS_CHECK_NEAR(info.default_guidance, 3.5, 1e-6);
        ts_model_destroy(side);
    }
    SH("printf '{\"default_steps\": 9999}' > '%s/togethershot.json'", m1);
    TS_CHECK_INT_EQ(try_load(m1, NULL, NULL), TS_ERR_FORMAT);

    SH("rm -rf '%s'", dir);
#undef RESET
#undef SH
}

/* A 9-channel inpainting model made from tiny-sd1: conv_in takes the
 * latent, the mask and the masked image's latent (8 x 9 x 3 x 3, the first
 * four input channels as trained, the rest small values). */
static void test_nine_channel_inpainting(void)
{
    char src[1200], dir[64] = "/tmp/ts_inpaint_XXXXXX", cmd[4096], path[1400];
    fixture(src, sizeof src, "tiny-sd1");
    TS_CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd,
             "cp -r '%s' '%s/m' && sed -i 's/\"in_channels\": 4/\"in_channels\": 9/' "
             "'%s/m/unet/config.json'",
             src, dir, dir);
    if (run_cmd(cmd) != 0)
        return;

    /* Rewrite the UNet weights with the wider conv_in. */
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", src);
    ts_safetensors *st = NULL;
    ts_error err;
    TS_CHECK_INT_EQ(ts_safetensors_open(path, &st, &err), TS_OK);
    if (!st)
        return;
    int n = st->n_tensors;
    const char **names = calloc((size_t)n, sizeof(*names));
    int *ndims = calloc((size_t)n, sizeof(*ndims));
    const int64_t **shapes = calloc((size_t)n, sizeof(*shapes));
    const float **data = calloc((size_t)n, sizeof(*data));
    int64_t wide[4] = {8, 9, 3, 3};
    float *conv = calloc(8 * 9 * 9, sizeof(float));
    for (int i = 0; i < n; i++) {
        const ts_st_tensor *t = &st->tensors[i];
        names[i] = t->name;
        ndims[i] = t->ndim;
        shapes[i] = t->shape;
        data[i] = t->data;
        if (strcmp(t->name, "conv_in.weight") == 0) {
            const float *w = t->data; /* (8, 4, 3, 3) */
            for (int o = 0; o < 8; o++)
                for (int c = 0; c < 9; c++)
                    for (int k = 0; k < 9; k++)
                        conv[(o * 9 + c) * 9 + k] =
                            c < 4 ? w[(o * 4 + c) * 9 + k] : 0.05f * (float)((o + c + k) % 5 - 2);
            shapes[i] = wide;
            data[i] = conv;
        }
    }
    snprintf(path, sizeof path, "%s/m/unet/diffusion_pytorch_model.safetensors", dir);
    TS_CHECK_INT_EQ(ts_safetensors_write_f32(path, n, names, ndims, shapes, data, &err), TS_OK);
    ts_safetensors_close(st);
    free(names);
    free(ndims);
    free(shapes);
    free(data);
    free(conv);

    snprintf(path, sizeof path, "%s/m", dir);
    ts_model *m = NULL;
    ts_model_options o = {.threads = 1};
    TS_CHECK_INT_EQ(ts_model_load(path, &o, &m, &err), TS_OK);
    if (m) {
        ts_model_info info;
        ts_model_get_info(m, &info);
        TS_CHECK_INT_EQ(info.unet_in_channels, 9);
        ts_image src_img = {0}, mask = {0};
        ts_image_alloc(&src_img, 16, 16, &err);
        ts_image_alloc(&mask, 16, 16, &err);
        for (int i = 0; i < 16 * 16 * 3; i++)
            src_img.pixels[i] = (uint8_t)(i * 13 % 256);
        for (int y = 0; y < 16; y++)
            memset(mask.pixels + y * 48, 255, 8 * 3); /* repaint the left half */
        ts_gen_params p;
        ts_gen_params_default(&p);
        p.prompt = "a cat";
        p.steps = 3;
        ts_image none = make(m, &p, TS_ERR_ARG, NULL); /* needs image and mask */
        p.init_image = &src_img;
        p.mask = &mask;
        p.strength = 1.0f;
        ts_image a = make(m, &p, TS_OK, NULL), b = make(m, &p, TS_OK, NULL);
        TS_CHECK(same_image(&a, &b));
        int kept = 1;
        for (int y = 0; y < 16 && a.pixels; y++)
            kept &= memcmp(a.pixels + y * 48 + 24, src_img.pixels + y * 48 + 24, 24) == 0;
        TS_CHECK(kept);
        /* The masked image's latent reaches the UNet: another source image
         * changes the repainted half. */
        for (int i = 0; i < 16 * 16 * 3; i++)
            src_img.pixels[i] = (uint8_t)(255 - src_img.pixels[i]);
        ts_image c = make(m, &p, TS_OK, NULL);
        TS_CHECK(c.pixels && a.pixels && memcmp(c.pixels, a.pixels, 24) != 0);
        ts_image *all[] = {&none, &a, &b, &c, &src_img, &mask};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            ts_image_free(all[i]);
        ts_model_destroy(m);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd);
}

int main(void)
{
    const char *fx = getenv("TS_FIXTURES");
    snprintf(fixtures, sizeof fixtures, "%s", fx ? fx : "tests/fixtures");
    TS_RUN(test_reference_sampler_runs);
    TS_RUN(test_determinism_and_seeds);
    TS_RUN(test_img2img_and_inpaint);
    TS_RUN(test_model_files);
    TS_RUN(test_nine_channel_inpainting);
    return ts_test_finish();
}
