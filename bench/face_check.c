/*
 * face_check.c - how long the portrait-rights face check takes on a large
 * photo: decode is not timed; detection (SSD at 512 x 512), landmarks and a
 * descriptor for every face found are.
 *
 *     face_check [PHOTO] [WIDTH HEIGHT]
 *
 * Defaults: face-api's demo photo sample1.jpg scaled to 4000 x 3000
 * (12 megapixels). Prints the best and median of several runs for 1 and 2
 * threads. Never passes or fails on time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ts_face.h"
#include "ts_image.h"

#define RUNS 7

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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *photo =
        argc > 1 ? argv[1] : TS_SOURCE_ROOT "/node_modules/@vladmandic/face-api/demo/sample1.jpg";
    int w = argc > 3 ? atoi(argv[2]) : 4000, h = argc > 3 ? atoi(argv[3]) : 3000;
    const char *models_dir = getenv("TOGETHERSHOT_FACE_MODELS");
    if (!models_dir)
        models_dir = TS_SOURCE_ROOT "/models/face";

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
    double load[1] = {0};
    if (getloadavg(load, 1) == 1)
        printf("load average when starting: %.2f on %ld CPUs\n", load[0],
               sysconf(_SC_NPROCESSORS_ONLN));
    printf("face check of a %dx%d photo (%.1f MP), %s kernels\n", w, h, w * (double)h / 1e6,
           ts_face_ops_have_avx2() ? "AVX2+FMA" : "generic");
    for (int threads = 1; threads <= 2; threads++) {
        double t[RUNS], t_detect[RUNS], cpu[RUNS];
        int n = 0;
        for (int r = 0; r < RUNS; r++) {
            ts_face_options o = ts_face_options_default();
            o.threads = threads;
            o.describe = 0;
            double t0 = now_ms();
            ts_face_detect(m, &img, &o, faces, TS_FACE_MAX, &n, &err);
            t_detect[r] = now_ms() - t0;
            o.describe = 1;
            t0 = now_ms();
            double c0 = cpu_ms();
            if (ts_face_detect(m, &img, &o, faces, TS_FACE_MAX, &n, &err) != TS_OK) {
                fprintf(stderr, "face_check: %s\n", err.message);
                return 1;
            }
            t[r] = now_ms() - t0;
            cpu[r] = cpu_ms() - c0;
            ts_face_wipe(faces, n);
        }
        qsort(t, RUNS, sizeof t[0], cmp_double);
        qsort(t_detect, RUNS, sizeof t[0], cmp_double);
        qsort(cpu, RUNS, sizeof t[0], cmp_double);
        printf("threads %d: %d faces; full check best %.1f ms, median %.1f ms (CPU time best "
               "%.1f ms); detection alone best %.1f ms, median %.1f ms\n",
               threads, n, t[0], t[RUNS / 2], cpu[0], t_detect[0], t_detect[RUNS / 2]);
    }
    ts_face_models_free(m);
    ts_image_free(&img);
    return 0;
}
