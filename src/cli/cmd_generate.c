/*
 * cmd_generate.c - `togethershot generate`: images from a prompt, and from
 * photos (img2img, inpainting, the together shot), written to files.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "ts_cli.h"
#include "ts_clock.h"
#include "ts_engine.h"
#include "ts_image.h"
#include "ts_limits.h"
#include "ts_together.h"

#define MAX_IMAGES   TS_GENERATE_MAX_IMAGES
#define MAX_PHOTOS   TS_TOGETHER_MAX_PHOTOS
#define OUT_PATH_MAX 4096

static void usage(FILE *to)
{
    fprintf(to,
            "usage: togethershot generate PROMPT -o OUT [options]\n"
            "\n"
            "Generates images from PROMPT with the built-in model (or --model).\n"
            "\n"
            "  -o, --output OUT       output file; the extension picks the format\n"
            "                         (.png, .jpg/.jpeg, .webp). With -n above 1, OUT\n"
            "                         is a pattern: a single %%d is replaced by 1..N\n"
            "                         (out-%%d.png), otherwise -1, -2, ... is inserted\n"
            "                         before the extension (out.png -> out-1.png)\n"
            "  -n, --count N          images to make, 1..%d (seeds SEED, SEED+1, ...)\n"
            "      --negative TEXT    what the image should not show\n"
            "      --image FILE       one: img2img from FILE (with --mask: inpainting);\n"
            "                         2..%d: the together shot (the people side by side,\n"
            "                         the scene around them painted from the prompt)\n"
            "      --mask FILE        white = repaint, black = keep (or transparency)\n"
            "      --strength S       0..1: how much to change the image (img2img\n"
            "                         default 0.75; inpainting and together shot 1.0)\n"
            "      --size WxH         output size (default: the model's native size).\n"
            "                         Sizes above the native size are generated at the\n"
            "                         native pixel count (same aspect) and upscaled;\n"
            "                         other sizes are rounded to what the model takes\n"
            "                         (the message says so)\n"
            "      --steps N          sampler steps, 1..150 (default: the model's)\n"
            "      --guidance G       classifier-free guidance, 0..50; <= 1 turns it off\n"
            "      --seed N           seed, 0..9223372036854775807 (default or -1: random;\n"
            "                         printed)\n"
            "      --sampler NAME     euler, euler_a, dpmpp_2m, dpmpp_2m_karras, ddim, lcm\n"
            "      --clip-skip N      use the text encoder's N-th layer from the end (0..48)\n"
            "      --philox           Philox noise in the layout GPU front ends use\n"
            "      --model PATH       a diffusers folder or a .safetensors checkpoint\n"
            "      --tokenizer DIR    CLIP tokenizer folder for single-file checkpoints\n"
            "      --threads N        CPU threads, 0..1024 (default 0: all cores)\n"
            "      --force-f32        never use bf16 kernels\n"
            "  -q, --quiet            no progress output\n"
            "  -h, --help             this text\n"
            "\n"
            "Environment (the command line wins): TOGETHERSHOT_MODEL, TOGETHERSHOT_STEPS,\n"
            "TOGETHERSHOT_GUIDANCE, TOGETHERSHOT_SAMPLER, TOGETHERSHOT_SIZE,\n"
            "TOGETHERSHOT_NEGATIVE, TOGETHERSHOT_CLIP_SKIP, TOGETHERSHOT_THREADS.\n"
            "\n"
            "Progress goes to stderr (a bar on a terminal, plain lines otherwise); the\n"
            "names of the files written go to stdout.\n"
            "exit codes: 0 ok, 1 failure, 2 bad usage, 3 refused by policy\n",
            MAX_IMAGES, MAX_PHOTOS);
}

/* ------------------------------------------------------------ parsing */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return 0;
    *out = v;
    return 1;
}

static int parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return 0;
    const char *p = end + 1;
    long b = strtol(p, &end, 10);
    if (end == p || *end || a < 8 || b < 8 || a > TS_GENERATE_SIDE_MAX * 8 ||
        b > TS_GENERATE_SIDE_MAX * 8)
        return 0;
    *w = (int)a;
    *h = (int)b;
    return 1;
}

/* The name of image i (0-based) for n images. */
static int output_name(const char *pattern, int i, int n, char *out, size_t cap)
{
    if (n == 1)
        return snprintf(out, cap, "%s", pattern) < (int)cap;
    const char *pct = strstr(pattern, "%d");
    if (pct) {
        if (snprintf(out, cap, "%.*s%d%s", (int)(pct - pattern), pattern, i + 1, pct + 2) >=
            (int)cap)
            return 0;
        return 1;
    }
    const char *dot = strrchr(pattern, '.');
    const char *slash = strrchr(pattern, '/');
    if (!dot || (slash && dot < slash))
        dot = pattern + strlen(pattern);
    return snprintf(out, cap, "%.*s-%d%s", (int)(dot - pattern), pattern, i + 1, dot) < (int)cap;
}

static ts_image_format format_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? ts_image_format_from_name(dot + 1) : TS_IMAGE_UNKNOWN;
}

/* ------------------------------------------------------------ progress */

typedef struct progress_state {
    int tty, quiet;
    int64_t start_ms;
} progress_state;

static int on_progress(void *user, int step, int total, const ts_image *preview)
{
    progress_state *ps = user;
    if (ps->quiet)
        return 0;
    double secs = (double)(ts_clock_mono_ms() - ps->start_ms) / 1000.0;
    if (ps->tty) {
        enum { WIDTH = 30 };
        int fill = total > 0 ? step * WIDTH / total : WIDTH;
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r[%s] step %d/%d  %.1fs", bar, step, total, secs);
        if (step == total)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %d/%d %.1fs\n", step, total, secs);
    }
    fflush(stderr);
    return 0;
}

/* ------------------------------------------------------------ the command */

enum {
    OPT_NEGATIVE = 256,
    OPT_IMAGE,
    OPT_MASK,
    OPT_STRENGTH,
    OPT_SIZE,
    OPT_STEPS,
    OPT_GUIDANCE,
    OPT_SEED,
    OPT_SAMPLER,
    OPT_CLIP_SKIP,
    OPT_MODEL,
    OPT_FORCE_F32,
    OPT_PHILOX,
    OPT_TOKENIZER,
    OPT_THREADS,
};

typedef struct request {
    const char *prompt, *negative, *out, *mask, *model, *tokenizer;
    const char *images[MAX_PHOTOS];
    int n_images, count, width, height, steps, clip_skip, threads, force_f32, philox, quiet;
    int have_seed, have_strength;
    double guidance, strength;
    uint64_t seed;
    ts_sampler sampler;
} request;

/* What an option takes, for the message about a bad value. */
static const char *allowed(int opt)
{
    static char size_rule[80], count_rule[48];
    switch (opt) {
    case 'n':
        snprintf(count_rule, sizeof count_rule, "a whole number from 1 to %d", MAX_IMAGES);
        return count_rule;
    case OPT_STRENGTH:
        return "a number from 0 to 1";
    case OPT_SIZE:
        snprintf(size_rule, sizeof size_rule, "WIDTHxHEIGHT, each side from 8 to %d (like 512x512)",
                 TS_GENERATE_SIDE_MAX * 8);
        return size_rule;
    case OPT_STEPS:
        return "a whole number from 1 to 150";
    case OPT_GUIDANCE:
        return "a number from 0 to 50";
    case OPT_SAMPLER:
        return "one of euler, euler_a, dpmpp_2m, dpmpp_2m_karras, ddim, lcm";
    case OPT_CLIP_SKIP:
        return "a whole number from 0 to 48";
    case OPT_THREADS:
        return "a whole number from 0 (all cores) to 1024";
    default:
        return "a valid value (see --help)";
    }
}

/* Applies one option value; returns 0 (after printing why) when it is bad. */
static int apply(request *r, int opt, const char *v, const char *from)
{
    long l;
    double d;
    switch (opt) {
    case 'o':
        r->out = v;
        return 1;
    case 'n':
        if (!parse_int(v, 1, MAX_IMAGES, &l))
            break;
        r->count = (int)l;
        return 1;
    case OPT_NEGATIVE:
        r->negative = v;
        return 1;
    case OPT_IMAGE:
        if (r->n_images >= MAX_PHOTOS) {
            fprintf(stderr, "togethershot generate: at most %d --image files\n", MAX_PHOTOS);
            return 0;
        }
        r->images[r->n_images++] = v;
        return 1;
    case OPT_MASK:
        r->mask = v;
        return 1;
    case OPT_STRENGTH:
        if (!parse_float(v, 0.0, 1.0, &d))
            break;
        r->strength = d;
        r->have_strength = 1;
        return 1;
    case OPT_SIZE:
        if (!parse_size(v, &r->width, &r->height))
            break;
        return 1;
    case OPT_STEPS:
        if (!parse_int(v, 1, 150, &l))
            break;
        r->steps = (int)l;
        return 1;
    case OPT_GUIDANCE:
        if (!parse_float(v, 0.0, TS_LIMITS_GUIDANCE_MAX, &d))
            break;
        r->guidance = d;
        return 1;
    case OPT_SEED: {
        /* The API's rule (ts_limits.h): 0 .. 2^63-1, or -1 for random. */
        char *end;
        errno = 0;
        long long s = strtoll(v, &end, 10);
        if (errno || end == v || *end || s < TS_LIMITS_SEED_RANDOM) {
            fprintf(stderr, "togethershot generate: invalid value '%s' for --seed: give %s\n", v,
                    TS_LIMITS_SEED_RULE);
            return 0;
        }
        r->seed = (uint64_t)s;
        r->have_seed = s != TS_LIMITS_SEED_RANDOM;
        return 1;
    }
    case OPT_SAMPLER:
        if (!ts_sampler_parse(v, &r->sampler))
            break;
        return 1;
    case OPT_CLIP_SKIP:
        if (!parse_int(v, 0, 48, &l))
            break;
        r->clip_skip = (int)l;
        return 1;
    case OPT_MODEL:
        r->model = v;
        return 1;
    case OPT_TOKENIZER:
        r->tokenizer = v;
        return 1;
    case OPT_THREADS:
        if (!parse_int(v, 0, 1024, &l))
            break;
        r->threads = (int)l;
        return 1;
    default:
        break;
    }
    fprintf(stderr, "togethershot generate: invalid value '%s' for %s%s: give %s\n", v,
            strlen(from) > 2 && from[0] != 'T' ? "--" : "", from, allowed(opt));
    return 0;
}

static int apply_env(request *r)
{
    static const struct {
        const char *name;
        int opt;
    } env[] = {
        {"TOGETHERSHOT_STEPS", OPT_STEPS},       {"TOGETHERSHOT_GUIDANCE", OPT_GUIDANCE},
        {"TOGETHERSHOT_SAMPLER", OPT_SAMPLER},   {"TOGETHERSHOT_SIZE", OPT_SIZE},
        {"TOGETHERSHOT_NEGATIVE", OPT_NEGATIVE}, {"TOGETHERSHOT_CLIP_SKIP", OPT_CLIP_SKIP},
        {"TOGETHERSHOT_THREADS", OPT_THREADS},
    };
    for (size_t i = 0; i < sizeof env / sizeof *env; i++) {
        const char *v = getenv(env[i].name);
        if (v && *v && !apply(r, env[i].opt, v, env[i].name))
            return 0;
    }
    return 1;
}

static int load_photo(const char *path, ts_image *img)
{
    ts_error err;
    ts_image_limits lim = ts_image_limits_default();
    if (ts_image_load_file(path, &lim, img, NULL, &err) != TS_OK) {
        /* ts_image_load_file's messages name the file already. */
        fprintf(stderr, "togethershot generate: %s\n", err.message);
        return 0;
    }
    return 1;
}

static int load_mask(const char *path, ts_image *mask)
{
    ts_error err;
    ts_image_limits lim = ts_image_limits_default();
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "togethershot generate: cannot open %s: %s\n", path, strerror(errno));
        return 0;
    }
    uint8_t *buf = malloc(lim.max_bytes);
    size_t n = buf ? fread(buf, 1, lim.max_bytes, f) : 0;
    fclose(f);
    ts_status st = buf ? ts_image_decode_mask(buf, n, &lim, mask, NULL, &err)
                       : ts_error_set(&err, TS_ERR_NOMEM, "out of memory");
    free(buf);
    if (st != TS_OK) {
        fprintf(stderr, "togethershot generate: %s: %s\n", path, err.message);
        return 0;
    }
    return 1;
}

int ts_cli_generate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'n'},
        {"negative", required_argument, NULL, OPT_NEGATIVE},
        {"image", required_argument, NULL, OPT_IMAGE},
        {"mask", required_argument, NULL, OPT_MASK},
        {"strength", required_argument, NULL, OPT_STRENGTH},
        {"size", required_argument, NULL, OPT_SIZE},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"guidance", required_argument, NULL, OPT_GUIDANCE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"clip-skip", required_argument, NULL, OPT_CLIP_SKIP},
        {"model", required_argument, NULL, OPT_MODEL},
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"force-f32", no_argument, NULL, OPT_FORCE_F32},
        {"philox", no_argument, NULL, OPT_PHILOX},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    request r;
    memset(&r, 0, sizeof r);
    r.count = 1;
    r.guidance = -1.0;
    r.sampler = TS_SAMPLER_DEFAULT;
    if (!apply_env(&r))
        return TS_EXIT_USAGE;

    optind = 1;
    opterr = 0;
    int c, li = -1;
    while ((li = -1, c = getopt_long(argc, argv, ":o:n:qh", longopts, &li)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return TS_EXIT_OK;
        } else if (c == 'q') {
            r.quiet = 1;
        } else if (c == OPT_FORCE_F32) {
            r.force_f32 = 1;
        } else if (c == OPT_PHILOX) {
            r.philox = 1;
        } else if (c == '?' || c == ':') {
            fprintf(stderr, "togethershot generate: %s '%s'\n\n",
                    c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            usage(stderr);
            return TS_EXIT_USAGE;
        } else if (!apply(&r, c, optarg, li >= 0 ? longopts[li].name : c == 'n' ? "-n" : "-o")) {
            return TS_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !r.out) {
        fprintf(stderr, "togethershot generate: give exactly one PROMPT and -o OUT\n\n");
        usage(stderr);
        return TS_EXIT_USAGE;
    }
    r.prompt = argv[optind];
    /* The prompt rules of the API (ts_limits), in its words. */
    {
        ts_limits lim;
        ts_limits_default(&lim);
        ts_error perr;
        if (ts_limits_check_prompt_text(&lim, "prompt", r.prompt, 1, &perr) != TS_OK ||
            (r.negative &&
             ts_limits_check_prompt_text(&lim, "negative prompt", r.negative, 0, &perr) != TS_OK)) {
            fprintf(stderr, "togethershot generate: %s\n", perr.message);
            return TS_EXIT_USAGE;
        }
    }
    if (r.mask && r.n_images != 1) {
        fprintf(stderr, "togethershot generate: --mask needs exactly one --image\n");
        return TS_EXIT_USAGE;
    }
    for (int i = 0; i < r.count; i++) {
        char name[OUT_PATH_MAX];
        if (!output_name(r.out, i, r.count, name, sizeof name) ||
            format_of(name) == TS_IMAGE_UNKNOWN || format_of(name) == TS_IMAGE_HEIC) {
            fprintf(stderr,
                    "togethershot generate: output '%s' must end in .png, .jpg, .jpeg or "
                    ".webp\n",
                    r.out);
            return TS_EXIT_USAGE;
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "togethershot generate: libsodium failed to start\n");
        return TS_EXIT_FAILURE;
    }
    if (!r.have_seed) /* below 2^53, as the service draws them */
        r.seed = ((uint64_t)randombytes_random() << 32 | randombytes_random()) &
                 TS_LIMITS_SEED_RANDOM_MAX;

    /* The model. */
    const char *model_path = r.model ? r.model : ts_cli_default_model();
    ts_model_options mo = {
        .force_f32 = r.force_f32, .threads = r.threads, .tokenizer_dir = r.tokenizer};
    ts_model *model = NULL;
    ts_error err;
    int rc = TS_EXIT_FAILURE;
    ts_image photos[MAX_PHOTOS] = {{0}}, canvas = {0}, mask = {0};
    ts_image outs[MAX_IMAGES] = {{0}};
    uint64_t seeds[MAX_IMAGES];
    int64_t t0 = ts_clock_mono_ms();
    if (ts_model_load(model_path, &mo, &model, &err) != TS_OK) {
        fprintf(stderr, "togethershot generate: cannot load the model: %s\n", err.message);
        goto done;
    }
    ts_model_info info;
    ts_model_get_info(model, &info);

    /* Size: generate at most at the native size, then upscale. */
    int want_w = r.width ? r.width : info.native_width;
    int want_h = r.height ? r.height : info.native_height;
    int gen_w = want_w, gen_h = want_h, upscale = 0;
    if (want_w > info.native_width || want_h > info.native_height) {
        /* The native pixel count at the requested aspect ratio. */
        double s = sqrt((double)info.native_width * info.native_height / want_w / want_h);
        if (s > 1.0)
            s = 1.0;
        gen_w = (int)(want_w * s + 0.5);
        gen_h = (int)(want_h * s + 0.5);
        upscale = 1;
    }
    ts_engine_round_size(model, &gen_w, &gen_h);
    if (!upscale && (gen_w != want_w || gen_h != want_h)) {
        fprintf(stderr, "note: %dx%d is not a size this model takes; generating %dx%d\n", want_w,
                want_h, gen_w, gen_h);
        want_w = gen_w;
        want_h = gen_h;
    }
    if (upscale)
        fprintf(stderr,
                "note: %dx%d is above the model's native %dx%d; generating %dx%d and "
                "upscaling\n",
                want_w, want_h, info.native_width, info.native_height, gen_w, gen_h);

    ts_gen_params p;
    ts_gen_params_default(&p);
    p.prompt = r.prompt;
    p.negative_prompt = r.negative;
    p.width = gen_w;
    p.height = gen_h;
    p.steps = r.steps;
    p.guidance = (float)r.guidance;
    p.seed = r.seed;
    p.sampler = r.sampler;
    p.clip_skip = r.clip_skip;
    p.philox_noise = r.philox;

    /* Photos: img2img, inpainting, or the together shot. */
    for (int i = 0; i < r.n_images; i++)
        if (!load_photo(r.images[i], &photos[i]))
            goto done;
    if (r.n_images == 1) {
        p.init_image = &photos[0];
        p.strength = r.have_strength ? (float)r.strength : r.mask ? 1.0f : 0.75f;
        if (r.mask) {
            if (!load_mask(r.mask, &mask))
                goto done;
            p.mask = &mask;
        }
    } else if (r.n_images > 1) {
        if (ts_together_compose(photos, r.n_images, gen_w, gen_h, &canvas, &mask, &err) != TS_OK) {
            fprintf(stderr, "togethershot generate: %s\n", err.message);
            goto done;
        }
        p.init_image = &canvas;
        p.mask = &mask;
        p.strength = r.have_strength ? (float)r.strength : 1.0f;
    }

    progress_state ps = {isatty(STDERR_FILENO), r.quiet, ts_clock_mono_ms()};
    ts_status st = ts_generate_n(model, &p, r.count, on_progress, &ps, outs, seeds, &err);
    if (st != TS_OK) {
        fprintf(stderr, "\ntogethershot generate: %s\n", err.message);
        rc = st == TS_ERR_ARG || st == TS_ERR_LIMIT ? TS_EXIT_USAGE : TS_EXIT_FAILURE;
        goto done;
    }

    int names_shown = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    for (int i = 0; i < r.count; i++) {
        char name[OUT_PATH_MAX];
        output_name(r.out, i, r.count, name, sizeof name);
        ts_image *img = &outs[i], big = {0};
        if (upscale) {
            if (ts_image_resize(img, want_w, want_h, &big, &err) != TS_OK) {
                fprintf(stderr, "togethershot generate: %s\n", err.message);
                goto done;
            }
            img = &big;
        }
        st = ts_image_save_file(img, name, format_of(name), 0, NULL, &err);
        ts_image_free(&big);
        if (st != TS_OK) {
            fprintf(stderr, "togethershot generate: %s\n", err.message);
            goto done;
        }
        printf("%s\n", name);
        fflush(stdout);
        /* On a terminal that shows both streams the name is on screen
         * already: the details follow it without repeating it. */
        if (!r.quiet && names_shown)
            fprintf(stderr, "  %dx%d, seed %" PRIu64 "\n", want_w, want_h, seeds[i]);
        else if (!r.quiet)
            fprintf(stderr, "wrote %s (%dx%d, seed %" PRIu64 ")\n", name, want_w, want_h, seeds[i]);
    }
    if (!r.quiet)
        fprintf(stderr, "done in %.1fs\n", (double)(ts_clock_mono_ms() - t0) / 1000.0);
    rc = TS_EXIT_OK;

done:
    for (int i = 0; i < MAX_IMAGES; i++)
        ts_image_free(&outs[i]);
    for (int i = 0; i < MAX_PHOTOS; i++)
        ts_image_free(&photos[i]);
    ts_image_free(&canvas);
    ts_image_free(&mask);
    ts_model_destroy(model);
    return rc;
}
