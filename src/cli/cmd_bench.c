/*
 * cmd_bench.c - `togethershot bench`: time each part of the engine on one
 * model and print the figures (never pass/fail).
 *
 * Measured, in order: model load; the text encoder on one 77-token window;
 * one UNet evaluation at batch 1 and at batch 2 (the guidance batch); one
 * VAE decode; a whole image (default 20 steps, guidance 7.5, so batch 2);
 * a one-step image without guidance (the SD-Turbo way of sampling); the
 * process's peak resident memory. With --gflop-* figures (FLOPs of each
 * part, e.g. from a FLOP counter) it also prints achieved GFLOP/s.
 * bench/engine.sh runs it on the built-in model and on a full-size SD 1.5
 * shaped checkpoint.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sodium.h>

#include "ts_cli.h"
#include "ts_clock.h"
#include "ts_engine.h"
#include "ts_model.h"
#include "ts_prompt.h"
#include "ts_rng.h"

static void usage(FILE *to)
{
    fprintf(to, "usage: togethershot bench [options]\n"
                "\n"
                "Times the engine's parts on one model and prints the figures.\n"
                "\n"
                "  --model PATH       model folder or .safetensors (default: the built-in one)\n"
                "  --tokenizer DIR    CLIP tokenizer folder for single-file checkpoints\n"
                "  --size WxH         image size, each side 8..16384 (default: the model's\n"
                "                     native size)\n"
                "  --steps N          steps of the whole image, 1..150 (default 20)\n"
                "  --reps N           repetitions of each part, 1..20 (default 2; the first\n"
                "                     includes one-time kernel preparation)\n"
                "  --threads N        CPU threads, 0..1024 (default 0: all cores)\n"
                "  --skip-image       skip the whole 20-step image (the slow part)\n"
                "  --estimate         no whole images: print their time as the sum of\n"
                "                     the measured parts (for slow machines)\n"
                "  --gflop-clip G, --gflop-unet G, --gflop-unet2 G, --gflop-vae G\n"
                "                     FLOPs (in GFLOP) of each part, to print GFLOP/s\n"
                "\n"
                "exit codes: 0 ok, 1 failure, 2 bad usage\n");
}

/* Bad values are named with what is allowed; 0 after printing why. */
static int bench_int(const char *flag, const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr,
                "togethershot bench: invalid value '%s' for --%s: give a whole number from %ld "
                "to %ld\n",
                v, flag, lo, hi);
        return 0;
    }
    *out = (int)x;
    return 1;
}

static int bench_gflop(const char *flag, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= 0 && x <= 1e9)) {
        fprintf(stderr,
                "togethershot bench: invalid value '%s' for --%s: give the part's GFLOP, a "
                "number from 0 to 1e9\n",
                v, flag);
        return 0;
    }
    *out = x;
    return 1;
}

static int bench_size(const char *v, int *w, int *h)
{
    char *end;
    errno = 0;
    long a = strtol(v, &end, 10), b = 0;
    int ok = !errno && end != v && (*end == 'x' || *end == 'X');
    if (ok) {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        ok = !errno && end != p && *end == '\0';
    }
    long max = (long)TS_GENERATE_SIDE_MAX * 8;
    if (!ok || a < 8 || b < 8 || a > max || b > max) {
        fprintf(stderr,
                "togethershot bench: invalid value '%s' for --size: give WIDTHxHEIGHT, each "
                "side from 8 to %ld (like 512x512)\n",
                v, max);
        return 0;
    }
    *w = (int)a;
    *h = (int)b;
    return 1;
}

static double now_s(void)
{
    return (double)ts_clock_mono_ms() / 1000.0;
}

/* CPU seconds used by the whole process (all threads): on a shared machine
 * this says what the work cost when wall time says what it took. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* t: wall seconds per repetition; cpu: CPU seconds of the best one. */
static double report(const char *what, const double *t, const double *cpu, int reps, double gflop)
{
    int best = 0;
    for (int i = 1; i < reps; i++)
        best = t[i] < t[best] ? i : best;
    printf("%-34s first %8.3f s  best %8.3f s  cpu %8.3f s", what, t[0], t[best], cpu[best]);
    if (gflop > 0)
        printf("  %6.1f GFLOP/s wall, %6.1f per cpu-s (%.1f GFLOP)", gflop / t[best],
               gflop / cpu[best], gflop);
    printf("\n");
    fflush(stdout);
    return t[best];
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int ts_cli_bench(int argc, char **argv)
{
    enum {
        O_MODEL = 256,
        O_TOK,
        O_SIZE,
        O_STEPS,
        O_REPS,
        O_THREADS,
        O_SKIP,
        O_GC,
        O_GU,
        O_GU2,
        O_GV,
        O_EST
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"tokenizer", required_argument, NULL, O_TOK},
        {"size", required_argument, NULL, O_SIZE},
        {"steps", required_argument, NULL, O_STEPS},
        {"reps", required_argument, NULL, O_REPS},
        {"threads", required_argument, NULL, O_THREADS},
        {"skip-image", no_argument, NULL, O_SKIP},
        {"estimate", no_argument, NULL, O_EST},
        {"gflop-clip", required_argument, NULL, O_GC},
        {"gflop-unet", required_argument, NULL, O_GU},
        {"gflop-unet2", required_argument, NULL, O_GU2},
        {"gflop-vae", required_argument, NULL, O_GV},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL, *tok = NULL;
    int width = 0, height = 0, steps = 20, reps = 2, threads = 0, skip_image = 0, estimate = 0;
    double g_clip = 0, g_unet = 0, g_unet2 = 0, g_vae = 0;
    optind = 1;
    opterr = 0;
    int c, li;
    while ((li = -1, c = getopt_long(argc, argv, ":h", longopts, &li)) != -1) {
        const char *flag = li >= 0 ? longopts[li].name : "";
        int ok = 1;
        switch (c) {
        case 'h':
            usage(stdout);
            return TS_EXIT_OK;
        case O_MODEL:
            model_path = optarg;
            break;
        case O_TOK:
            tok = optarg;
            break;
        case O_SIZE:
            ok = bench_size(optarg, &width, &height);
            break;
        case O_STEPS:
            ok = bench_int(flag, optarg, 1, 150, &steps);
            break;
        case O_REPS:
            ok = bench_int(flag, optarg, 1, 20, &reps);
            break;
        case O_THREADS:
            ok = bench_int(flag, optarg, 0, 1024, &threads);
            break;
        case O_SKIP:
            skip_image = 1;
            break;
        case O_EST:
            estimate = 1;
            break;
        case O_GC:
        case O_GU:
        case O_GU2:
        case O_GV:
            ok = bench_gflop(flag, optarg,
                             c == O_GC    ? &g_clip
                             : c == O_GU  ? &g_unet
                             : c == O_GU2 ? &g_unet2
                                          : &g_vae);
            break;
        case ':':
            fprintf(stderr, "togethershot bench: missing value for '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return TS_EXIT_USAGE;
        default:
            fprintf(stderr, "togethershot bench: unknown option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return TS_EXIT_USAGE;
        }
        if (!ok)
            return TS_EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr,
                "togethershot bench: unexpected argument '%s' (bench takes only options)\n\n",
                argv[optind]);
        usage(stderr);
        return TS_EXIT_USAGE;
    }
    if (sodium_init() < 0)
        return TS_EXIT_FAILURE;
    if (!model_path)
        model_path = ts_cli_default_model();

    ts_error err;
    ts_model_options mo = {.threads = threads, .tokenizer_dir = tok};
    ts_model *m = NULL;
    double t0 = now_s();
    if (ts_model_load(model_path, &mo, &m, &err) != TS_OK) {
        fprintf(stderr, "togethershot bench: cannot load the model: %s\n", err.message);
        return TS_EXIT_FAILURE;
    }
    double t_load = now_s() - t0;
    ts_model_info info;
    ts_model_get_info(m, &info);
    if (!width) {
        width = info.native_width;
        height = info.native_height;
    }
    ts_engine_round_size(m, &width, &height);
    int lh = height / info.vae_scale, lw = width / info.vae_scale;
    int C = info.latent_channels, T = m->clip_cfg.max_positions, D = m->clip_cfg.hidden;
    printf("model %s (%s), %dx%d pixels, latent %dx%dx%d, load %.2f s\n", model_path, info.family,
           width, height, C, lh, lw, t_load);
    fflush(stdout);

    int rc = TS_EXIT_FAILURE;
    size_t nlat = (size_t)C * lh * lw;
    float *x = malloc(2 * (size_t)info.unet_in_channels * lh * lw * sizeof(float));
    float *out = malloc(2 * nlat * sizeof(float));
    float *ctx = malloc(2 * (size_t)T * D * sizeof(float));
    float *img = malloc(3 * (size_t)width * height * sizeof(float));
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    double t[20], tc[20];
    if (!x || !out || !ctx || !img || !ids)
        goto done;
    ts_rng rng;
    ts_rng_seed(&rng, 1, 0);
    ts_rng_randn(&rng, x, 2 * (size_t)info.unet_in_channels * lh * lw);
    ts_prompt_tokens pt;
    if (ts_prompt_tokenize(m->tok, "a red heart on a wooden table", T, &pt, &err) != TS_OK)
        goto fail;
    memcpy(ids, pt.ids[0], (size_t)T * sizeof(int32_t));

    for (int r = 0; r < reps; r++) {
        double s = now_s(), sc = cpu_s();
        if (ts_clip_encode(m->clip, ids, 0, ctx, &err) != TS_OK)
            goto fail;
        t[r] = now_s() - s;
        tc[r] = cpu_s() - sc;
    }
    memcpy(ctx + (size_t)T * D, ctx, (size_t)T * D * sizeof(float));
    double t_clip = report("text encoder (77 tokens)", t, tc, reps, g_clip);

    double t_unet[3] = {0, 0, 0};
    for (int b = 1; b <= 2; b++) {
        for (int r = 0; r < reps; r++) {
            double s = now_s(), sc = cpu_s();
            if (ts_unet_forward(m->unet, x, b, lh, lw, 500.0f, ctx, T, out, &err) != TS_OK)
                goto fail;
            t[r] = now_s() - s;
            tc[r] = cpu_s() - sc;
        }
        char what[64];
        snprintf(what, sizeof what, "unet %dx%d batch %d", width, height, b);
        t_unet[b] = report(what, t, tc, reps, b == 1 ? g_unet : g_unet2);
    }

    for (int r = 0; r < reps; r++) {
        double s = now_s(), sc = cpu_s();
        if (ts_vae_decode(m->vae, x, lh, lw, img, &err) != TS_OK)
            goto fail;
        t[r] = now_s() - s;
        tc[r] = cpu_s() - sc;
    }
    char what[64];
    snprintf(what, sizeof what, "vae decode %dx%d", width, height);
    double t_vae = report(what, t, tc, reps, g_vae);

    if (estimate) {
        /* Sums of the parts measured above, for machines where a whole run
         * takes too long: two text encodings, the UNet per step, one decode. */
        printf("%-34s %8.1f s (estimated: 2 x text + %d x unet batch 2 + vae)\n",
               "whole image, guidance", 2 * t_clip + steps * t_unet[2] + t_vae, steps);
        printf("%-34s %8.1f s (estimated: text + unet batch 1 + vae)\n",
               "one-step image, no guidance", t_clip + t_unet[1] + t_vae);
        printf("peak resident memory %.0f MiB\n", peak_rss_mib());
        rc = TS_EXIT_OK;
        goto done;
    }

    ts_gen_params p;
    ts_gen_params_default(&p);
    p.prompt = "a red heart on a wooden table";
    p.width = width;
    p.height = height;
    p.seed = 1;
    ts_image im = {0};
    if (!skip_image) {
        p.steps = steps;
        p.guidance = 7.5f;
        double s = now_s(), sc = cpu_s();
        if (ts_generate(m, &p, NULL, NULL, &im, &err) != TS_OK)
            goto fail;
        double whole = now_s() - s, whole_c = cpu_s() - sc;
        ts_image_free(&im);
        snprintf(what, sizeof what, "whole image, %d steps, guidance", steps);
        report(what, &whole, &whole_c, 1, 0);
    }
    p.steps = 1;
    p.guidance = 0.0f;
    p.sampler = TS_SAMPLER_EULER;
    double s = now_s(), sc = cpu_s();
    if (ts_generate(m, &p, NULL, NULL, &im, &err) != TS_OK)
        goto fail;
    double one = now_s() - s, one_c = cpu_s() - sc;
    ts_image_free(&im);
    report("one-step image, no guidance", &one, &one_c, 1, 0);
    printf("peak resident memory %.0f MiB\n", peak_rss_mib());
    rc = TS_EXIT_OK;
    goto done;

fail:
    fprintf(stderr, "togethershot bench: %s\n", err.message);
done:
    free(x);
    free(out);
    free(ctx);
    free(img);
    free(ids);
    ts_model_destroy(m);
    return rc;
}
