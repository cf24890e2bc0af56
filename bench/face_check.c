/*
 * face_check.c - how long the portrait-rights face check takes on a large
 * photo: detection (SSD at 512 x 512), then landmarks and a descriptor for
 * every face found. Decoding is not part of the check (the service checks
 * pictures it has decoded anyway); its cost is printed once for scale.
 *
 *     face_check [PHOTO] [WIDTH HEIGHT]
 *
 * Defaults: face-api's demo photo sample1.jpg scaled to 4000 x 3000
 * (12 megapixels). FACE_CHECK_RUNS (default 9) sets the runs per thread
 * count. Prints, for 1 and 2 threads, best and median wall time of the full
 * check and of detection alone, their CPU time, and what else ran meanwhile
 * (load average, and the time the hypervisor gave the CPUs to other
 * machines), so one command on a quiet machine gives every figure
 * docs/BENCHMARKS.md quotes. Never passes or fails on time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ts_face.h"
#include "ts_image.h"

#define RUNS_DEFAULT 9
#define RUNS_MAX     101

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the whole process: with other programs on the machine it
 * shows the work itself, where wall time shows the wait too. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Total and stolen CPU time of the machine so far, in clock ticks, from
 * /proc/stat (Linux); 0 when unknown. Steal is time a virtual CPU was
 * ready to run but the hypervisor ran something else: wall time the load
 * average does not show. */
static void cpu_ticks(unsigned long long *total, unsigned long long *steal)
{
    *total = *steal = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    unsigned long long v[8] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *steal = v[7];
    }
    fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double load_now(void)
{
    double load[1] = {0};
    return getloadavg(load, 1) == 1 ? load[0] : -1.0;
}

/* Decoding the photo as a quality-90 JPEG, best of three (for scale only). */
static void print_decode_cost(const ts_image *img)
{
    ts_error err;
    uint8_t *jpeg = NULL;
    size_t len = 0;
    if (ts_image_encode(img, TS_IMAGE_JPEG, 90, NULL, &jpeg, &len, &err) != TS_OK) {
        printf("decode: could not encode the photo as JPEG (%s)\n", err.message);
        return;
    }
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        ts_image out = {0};
        double t0 = now_ms();
        ts_status st = ts_image_decode(jpeg, len, NULL, &out, NULL, &err);
        double t = now_ms() - t0;
        ts_image_free(&out);
        if (st != TS_OK) {
            printf("decode: %s\n", err.message);
            break;
        }
        best = t < best ? t : best;
    }
    if (best < 1e30)
        printf("decode of the photo as a %.1f MB JPEG (not part of the check): best %.1f ms\n",
               len / 1e6, best);
    ts_image_buffer_free(jpeg, len);
}

int main(int argc, char **argv)
{
    const char *photo =
        argc > 1 ? argv[1] : TS_SOURCE_ROOT "/node_modules/@vladmandic/face-api/demo/sample1.jpg";
    int w = argc > 3 ? atoi(argv[2]) : 4000, h = argc > 3 ? atoi(argv[3]) : 3000;
    const char *models_dir = getenv("TOGETHERSHOT_FACE_MODELS");
    if (!models_dir)
        models_dir = TS_SOURCE_ROOT "/models/face";
    const char *runs_env = getenv("FACE_CHECK_RUNS");
    int runs = runs_env ? atoi(runs_env) : RUNS_DEFAULT;
    if (runs < 1 || runs > RUNS_MAX) {
        fprintf(stderr, "face_check: FACE_CHECK_RUNS must be 1 to %d\n", RUNS_MAX);
        return 2;
    }

    ts_error err;
    ts_image src = {0}, img = {0};
    ts_face_models *m = NULL;
    if (ts_image_load_file(photo, NULL, &src, NULL, &err) != TS_OK ||
        ts_image_resize(&src, w, h, &img, &err) != TS_OK ||
        ts_face_models_load(models_dir, &m, &err) != TS_OK) {
        fprintf(stderr, "face_check: %s\n", err.message);
        return 1;
    }
    ts_image_free(&src);

    static ts_face faces[TS_FACE_MAX];
    /* What else is running matters on a shared machine: say so. */
    printf("load average when starting: %.2f on %ld CPUs\n", load_now(),
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("face check of a %dx%d photo (%.1f MP), %s kernels, %d runs each\n", w, h,
           w * (double)h / 1e6, ts_face_ops_have_avx2() ? "AVX2+FMA" : "generic", runs);
    print_decode_cost(&img);

    static double t[RUNS_MAX], t_detect[RUNS_MAX], cpu[RUNS_MAX], cpu_detect[RUNS_MAX];
    for (int threads = 1; threads <= 2; threads++) {
        int n = 0;
        unsigned long long tot0, steal0, tot1, steal1;
        cpu_ticks(&tot0, &steal0);
        for (int r = 0; r < runs; r++) {
            ts_face_options o = ts_face_options_default();
            o.threads = threads;
            o.describe = 0;
            double t0 = now_ms(), c0 = cpu_ms();
            if (ts_face_detect(m, &img, &o, faces, TS_FACE_MAX, &n, &err) != TS_OK) {
                fprintf(stderr, "face_check: %s\n", err.message);
                return 1;
            }
            t_detect[r] = now_ms() - t0;
            cpu_detect[r] = cpu_ms() - c0;
            o.describe = 1;
            t0 = now_ms();
            c0 = cpu_ms();
            if (ts_face_detect(m, &img, &o, faces, TS_FACE_MAX, &n, &err) != TS_OK) {
                fprintf(stderr, "face_check: %s\n", err.message);
                return 1;
            }
            t[r] = now_ms() - t0;
            cpu[r] = cpu_ms() - c0;
            ts_face_wipe(faces, n);
        }
        cpu_ticks(&tot1, &steal1);
        qsort(t, (size_t)runs, sizeof t[0], cmp_double);
        qsort(t_detect, (size_t)runs, sizeof t[0], cmp_double);
        qsort(cpu, (size_t)runs, sizeof t[0], cmp_double);
        qsort(cpu_detect, (size_t)runs, sizeof t[0], cmp_double);
        printf("threads %d: %d faces\n", threads, n);
        printf("  full check       best %6.1f ms, median %6.1f ms (CPU time best %6.1f ms)\n", t[0],
               t[runs / 2], cpu[0]);
        printf("  detection alone  best %6.1f ms, median %6.1f ms (CPU time best %6.1f ms)\n",
               t_detect[0], t_detect[runs / 2], cpu_detect[0]);
        printf("  landmarks and descriptors (full - detection, medians) %.1f ms\n",
               t[runs / 2] - t_detect[runs / 2]);
        if (tot1 > tot0)
            printf("  meanwhile: load average %.2f, CPU time stolen by the hypervisor %.1f%%\n",
                   load_now(), 100.0 * (double)(steal1 - steal0) / (double)(tot1 - tot0));
    }
    ts_face_models_free(m);
    ts_image_free(&img);
    return 0;
}
