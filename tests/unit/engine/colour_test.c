/*
 * colour_test.c - does the built-in model draw the colour the prompt names?
 *
 * 24 fixed prompts name a colour and an object ("a red heart", "a green
 * apple", ...), each generated once (seed 1000 + its index) with the model's
 * own default steps and guidance. For each generated 64x64 image the dominant hue is measured
 * and classified as the nearest of six named hues; the test passes when at
 * least 80% of the prompts come out in their colour. The same prompts on an
 * UNTRAINED model of the same shape (a copy of the model whose every tensor
 * is replaced by Gaussian values of the same mean and standard deviation)
 * must fall below 80%, so the check measures training, not the pipeline.
 *
 * Dominant hue: pixels that are nearly white, grey or black (saturation below
 * 0.3 or value below 0.25) are ignored; the others vote into 36 hue bins of
 * 10 degrees, weighted by saturation; the winning window of three
 * neighbouring bins gives the hue (its weighted circular mean). An image with
 * fewer than 2% coloured pixels has no dominant hue and fails.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_engine.h"
#include "ts_rng.h"
#include "ts_safetensors.h"
#include "ts_test.h"

#define PASS_FRACTION 0.8
/* 0: the model's own default steps and guidance, what a user gets. */
#define STEPS 0

typedef struct named_hue {
    const char *word;
    double hue; /* degrees */
} named_hue;

/* Anchors: the hues the training pictures (Noto colour emoji) show for each
 * colour word, measured with dominant_hue below: red hearts and circles
 * 4-11, orange 34-35, yellow 45-49, green 87-90, blue 203-211, purple 291.
 * Orange and yellow sit close together; the boundary between them is 40. */
static const named_hue hues[] = {
    {"red", 5}, {"orange", 33}, {"yellow", 48}, {"green", 90}, {"blue", 210}, {"purple", 290},
};
#define N_HUES (int)(sizeof hues / sizeof *hues)

static const char *prompts[] = {
    "a red heart",      "a blue heart",     "a green heart",   "a yellow heart",  "a purple heart",
    "an orange heart",  "a red apple",      "a green apple",   "a red circle",    "a blue circle",
    "an orange circle", "a yellow circle",  "a green circle",  "a purple circle", "a red square",
    "a blue square",    "an orange square", "a yellow square", "a green square",  "a purple square",
    "a green book",     "a blue book",      "an orange book",  "a yellow star",
};
#define N_PROMPTS (int)(sizeof prompts / sizeof *prompts)

/* ------------------------------------------------------------ hue */

static double circ_dist(double a, double b)
{
    double d = fabs(fmod(a - b, 360.0));
    return d > 180 ? 360 - d : d;
}

/* The dominant hue in degrees, or -1 when the image has too few coloured pixels. */
static double dominant_hue(const ts_image *img)
{
    double bins[36] = {0}, sum_c[36] = {0}, sum_s[36] = {0};
    int n = img->width * img->height, coloured = 0;
    for (int i = 0; i < n; i++) {
        double r = img->pixels[i * 3] / 255.0, g = img->pixels[i * 3 + 1] / 255.0,
               b = img->pixels[i * 3 + 2] / 255.0;
        double mx = fmax(r, fmax(g, b)), mn = fmin(r, fmin(g, b)), c = mx - mn;
        double s = mx > 0 ? c / mx : 0;
        if (s < 0.3 || mx < 0.25)
            continue;
        double h;
        if (mx == r)
            h = fmod((g - b) / c, 6.0);
        else if (mx == g)
            h = (b - r) / c + 2.0;
        else
            h = (r - g) / c + 4.0;
        h *= 60.0;
        if (h < 0)
            h += 360.0;
        int k = (int)(h / 10.0) % 36;
        bins[k] += s;
        sum_c[k] += s * cos(h * M_PI / 180);
        sum_s[k] += s * sin(h * M_PI / 180);
        coloured++;
    }
    if (coloured < n / 50)
        return -1;
    int best = 0;
    double best_w = -1;
    for (int k = 0; k < 36; k++) {
        double w = bins[(k + 35) % 36] + bins[k] + bins[(k + 1) % 36];
        if (w > best_w) {
            best_w = w;
            best = k;
        }
    }
    double cs = 0, sn = 0;
    for (int d = -1; d <= 1; d++) {
        cs += sum_c[(best + d + 36) % 36];
        sn += sum_s[(best + d + 36) % 36];
    }
    double h = atan2(sn, cs) * 180 / M_PI;
    return h < 0 ? h + 360 : h;
}

static const char *hue_word(double h)
{
    if (h < 0)
        return "none";
    int best = 0;
    for (int i = 1; i < N_HUES; i++)
        if (circ_dist(h, hues[i].hue) < circ_dist(h, hues[best].hue))
            best = i;
    return hues[best].word;
}

static void check_hue_measure(void)
{
    /* The measure itself on images whose answer is known. */
    ts_image img = {0};
    ts_error err;
    ts_image_alloc(&img, 10, 10, &err);
    memset(img.pixels, 255, 300); /* white: no colour */
    TS_CHECK(dominant_hue(&img) < 0);
    for (int i = 0; i < 30; i++) { /* 30% pure blue on white */
        img.pixels[i * 3] = 20, img.pixels[i * 3 + 1] = 40, img.pixels[i * 3 + 2] = 230;
    }
    TS_CHECK_STR_EQ(hue_word(dominant_hue(&img)), "blue");
    for (int i = 30; i < 40; i++) { /* a little red does not win */
        img.pixels[i * 3] = 230, img.pixels[i * 3 + 1] = 10, img.pixels[i * 3 + 2] = 10;
    }
    TS_CHECK_STR_EQ(hue_word(dominant_hue(&img)), "blue");
    ts_image_free(&img);
    TS_CHECK_STR_EQ(hue_word(350), "red");
    TS_CHECK_STR_EQ(hue_word(50), "yellow");
}

/* ------------------------------------------------------------ the runs */

static double pass_rate(const char *model_path, const char *label)
{
    ts_model *m = NULL;
    ts_error err;
    ts_model_options o = {.threads = 0};
    if (ts_model_load(model_path, &o, &m, &err) != TS_OK) {
        fprintf(stderr, "  %s: %s\n", model_path, err.message);
        TS_CHECK(0);
        return -1;
    }
    int pass = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        ts_gen_params p;
        ts_gen_params_default(&p);
        p.prompt = prompts[i];
        p.steps = getenv("TS_COLOUR_STEPS") ? atoi(getenv("TS_COLOUR_STEPS")) : STEPS;
        if (getenv("TS_COLOUR_GUIDANCE")) /* for trying the test out, like TS_COLOUR_MODEL */
            p.guidance = (float)atof(getenv("TS_COLOUR_GUIDANCE"));
        p.seed = 1000 + (uint64_t)i;
        ts_image img = {0};
        if (ts_generate(m, &p, NULL, NULL, &img, &err) != TS_OK) {
            fprintf(stderr, "  %s: %s\n", prompts[i], err.message);
            TS_CHECK(0);
            continue;
        }
        const char *word = hue_word(dominant_hue(&img));
        int ok = strstr(prompts[i], word) != NULL;
        pass += ok;
        fprintf(stderr, "  %s %-18s -> %s%s\n", label, prompts[i], word, ok ? "" : "  (miss)");
        ts_image_free(&img);
    }
    ts_model_destroy(m);
    double rate = (double)pass / N_PROMPTS;
    fprintf(stderr, "  %s: %d of %d prompts in their colour (%.0f%%)\n", label, pass, N_PROMPTS,
            100 * rate);
    return rate;
}

/* ------------------------------------------------------------ the untrained copy */

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0)
        ok = fwrite(buf, 1, n, b) == n;
    if (a)
        fclose(a);
    if (b && fclose(b) != 0)
        ok = 0;
    return ok;
}

/* Writes dst/name from src/name with every float tensor replaced by normal
 * values of the same mean and standard deviation. */
static int randomise(const char *src, const char *dst, ts_rng *rng)
{
    ts_safetensors *st = NULL;
    ts_error err;
    if (ts_safetensors_open(src, &st, &err) != TS_OK) {
        fprintf(stderr, "  %s: %s\n", src, err.message);
        return 0;
    }
    int n = 0;
    const char **names = calloc((size_t)st->n_tensors, sizeof(*names));
    int *ndims = calloc((size_t)st->n_tensors, sizeof(*ndims));
    const int64_t **shapes = calloc((size_t)st->n_tensors, sizeof(*shapes));
    const float **data = calloc((size_t)st->n_tensors, sizeof(*data));
    for (int i = 0; i < st->n_tensors; i++) {
        const ts_st_tensor *t = &st->tensors[i];
        if (t->dtype == TS_DTYPE_OTHER)
            continue; /* position ids and the like: not weights */
        float *v = malloc((size_t)(t->count ? t->count : 1) * sizeof(float));
        double sum = 0, sq = 0;
        for (int64_t k = 0; k < t->count; k++) {
            float x = t->dtype == TS_DTYPE_F32   ? ((const float *)t->data)[k]
                      : t->dtype == TS_DTYPE_F16 ? ts_f16_to_f32(((const uint16_t *)t->data)[k])
                                                 : ts_bf16_to_f32(((const uint16_t *)t->data)[k]);
            sum += x;
            sq += (double)x * x;
        }
        double mean = t->count ? sum / t->count : 0;
        double sd = t->count ? sqrt(fmax(sq / t->count - mean * mean, 0)) : 0;
        ts_rng_randn(rng, v, (size_t)t->count);
        for (int64_t k = 0; k < t->count; k++)
            v[k] = (float)(mean + sd * v[k]);
        names[n] = t->name;
        ndims[n] = t->ndim;
        shapes[n] = t->shape;
        data[n] = v;
        n++;
    }
    ts_status s = ts_safetensors_write_f32(dst, n, names, ndims, shapes, data, &err);
    if (s != TS_OK)
        fprintf(stderr, "  %s: %s\n", dst, err.message);
    for (int i = 0; i < n; i++)
        free((void *)data[i]);
    free(names);
    free(ndims);
    free(shapes);
    free(data);
    ts_safetensors_close(st);
    return s == TS_OK;
}

/* Copies the model folder tree (two levels), randomising the weights. */
static int make_untrained(const char *src, const char *dst)
{
    ts_rng rng;
    ts_rng_seed(&rng, 99, 0);
    mkdir(dst, 0700);
    DIR *d = opendir(src);
    if (!d)
        return 0;
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char a[2048], b[2048];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat sb;
        if (stat(a, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            mkdir(b, 0700);
            DIR *d2 = opendir(a);
            struct dirent *f;
            while (ok && d2 && (f = readdir(d2))) {
                if (f->d_name[0] == '.')
                    continue;
                char a2[4096], b2[4096];
                snprintf(a2, sizeof a2, "%s/%s", a, f->d_name);
                snprintf(b2, sizeof b2, "%s/%s", b, f->d_name);
                size_t l = strlen(f->d_name);
                if (l > 12 && strcmp(f->d_name + l - 12, ".safetensors") == 0)
                    ok = randomise(a2, b2, &rng);
                else
                    ok = copy_file(a2, b2);
            }
            if (d2)
                closedir(d2);
        } else {
            ok = copy_file(a, b);
        }
    }
    closedir(d);
    return ok;
}

static void remove_tree(const char *dir)
{
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

int main(void)
{
    const char *root = getenv("TS_SOURCE_ROOT");
    char model[1024];
    snprintf(model, sizeof model, "%s/models/togethershot-mini", root ? root : ".");
    if (getenv("TS_COLOUR_MODEL")) /* another model folder, for trying the test out */
        snprintf(model, sizeof model, "%s", getenv("TS_COLOUR_MODEL"));
    TS_RUN(check_hue_measure);

    double trained = pass_rate(model, "trained");
    TS_CHECK(trained >= PASS_FRACTION);

    char tmp[] = "/tmp/ts_untrained_XXXXXX";
    TS_CHECK(mkdtemp(tmp) != NULL);
    char copy[1100];
    snprintf(copy, sizeof copy, "%s/m", tmp);
    int made = make_untrained(model, copy);
    TS_CHECK(made);
    if (made) {
        double untrained = pass_rate(copy, "untrained");
        TS_CHECK(untrained >= 0 && untrained < PASS_FRACTION);
    }
    remove_tree(tmp);
    return ts_test_finish();
}
