/*
 * sampler_test.c - schedules, sampler steps and noise.
 *
 * Independent checks:
 *   - timesteps worked out by hand from diffusers' spacing rules;
 *   - sigmas against a plain double-precision recomputation of the beta
 *     schedule written here;
 *   - whole sampler runs with the exact denoiser of a point-mass data
 *     distribution (all data equal to mu): every sampler must end at mu,
 *     whatever the noise, because each step's x0 estimate is exactly mu;
 *   - Philox-4x32-10 against the published Random123 known answers;
 *   - the Gaussian generator's moments.
 * When $TS_FIXTURES/engine/ holds the reference implementation's scheduler
 * goldens (sampler_golden.json), they are compared too.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ts_rng.h"
#include "ts_sampler.h"
#include "ts_test.h"

/* ------------------------------------------------------------ reference table */

static double ref_ac[1000];

static void ref_table(void)
{
    double prod = 1.0;
    for (int t = 0; t < 1000; t++) {
        double b = sqrt(0.00085) + (sqrt(0.012) - sqrt(0.00085)) * t / 999.0;
        prod *= 1.0 - b * b;
        ref_ac[t] = prod;
    }
}

static double ref_sigma(double t)
{
    int lo = (int)floor(t);
    if (lo >= 999)
        return sqrt((1 - ref_ac[999]) / ref_ac[999]);
    double w = t - lo;
    double s0 = sqrt((1 - ref_ac[lo]) / ref_ac[lo]),
           s1 = sqrt((1 - ref_ac[lo + 1]) / ref_ac[lo + 1]);
    return s0 + w * (s1 - s0);
}

static ts_schedule_config config(ts_spacing spacing, int offset)
{
    ts_schedule_config c;
    ts_schedule_config_default(&c);
    c.spacing = spacing;
    c.steps_offset = offset;
    return c;
}

static void check_timesteps(const ts_schedule *s, const double *want, int n)
{
    TS_CHECK_INT_EQ(s->steps, n);
    for (int i = 0; i < n; i++)
        TS_CHECK_NEAR(s->timesteps[i], want[i], 1e-3);
}

static void test_timesteps(void)
{
    ts_schedule s;
    ts_error err;
    ts_schedule_config lead = config(TS_SPACING_LEADING, 1);

    /* Euler, leading, 20 steps: 1000 // 20 = 50; (19 - i) * 50 + 1. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_EULER, 20, &s, &err), TS_OK);
    double want20[20];
    for (int i = 0; i < 20; i++)
        want20[i] = (19 - i) * 50 + 1;
    check_timesteps(&s, want20, 20);
    for (int i = 0; i < 20; i++)
        TS_CHECK_NEAR(s.sigmas[i], ref_sigma(want20[i]), 1e-4 * ref_sigma(want20[i]));
    TS_CHECK_NEAR(s.sigmas[20], 0.0, 0.0);
    /* leading: init sigma is sqrt(sigma_max^2 + 1). */
    TS_CHECK_NEAR(s.init_noise_sigma, sqrt(ref_sigma(951) * ref_sigma(951) + 1), 1e-3);

    /* DPM++ 2M, leading, 20 steps: 1000 // 21 = 47; (20 - i) * 47 + 1. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_DPMPP_2M, 20, &s, &err), TS_OK);
    for (int i = 0; i < 20; i++)
        want20[i] = (20 - i) * 47 + 1;
    check_timesteps(&s, want20, 20);

    /* Trailing, 4 steps (SD-Turbo style): round(1000 - 250 i) - 1. */
    ts_schedule_config trail = config(TS_SPACING_TRAILING, 0);
    TS_CHECK_INT_EQ(ts_schedule_make(&trail, TS_SAMPLER_EULER, 4, &s, &err), TS_OK);
    check_timesteps(&s, (double[]){999, 749, 499, 249}, 4);
    TS_CHECK_NEAR(s.init_noise_sigma, ref_sigma(999), 1e-3);
    TS_CHECK_INT_EQ(ts_schedule_make(&trail, TS_SAMPLER_EULER, 1, &s, &err), TS_OK);
    check_timesteps(&s, (double[]){999}, 1);

    /* Euler linspace keeps fractions: 999, 499.5, 0. */
    ts_schedule_config lin = config(TS_SPACING_LINSPACE, 0);
    TS_CHECK_INT_EQ(ts_schedule_make(&lin, TS_SAMPLER_EULER, 3, &s, &err), TS_OK);
    check_timesteps(&s, (double[]){999, 499.5, 0}, 3);
    TS_CHECK_NEAR(s.sigmas[1], ref_sigma(499.5), 1e-4 * ref_sigma(499.5));
    /* DDIM linspace rounds: 999, 500 (499.5 rounds to even), 0. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lin, TS_SAMPLER_DDIM, 3, &s, &err), TS_OK);
    check_timesteps(&s, (double[]){999, 500, 0}, 3);

    /* DDIM leading, 10 steps: the last step goes to alphas_cumprod[0]
     * (set_alpha_to_one false), every other to the next timestep. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_DDIM, 10, &s, &err), TS_OK);
    TS_CHECK_NEAR(s.timesteps[0], 901, 0);
    TS_CHECK_NEAR(s.alpha_next[0], ref_ac[801], 1e-5);
    TS_CHECK_NEAR(s.alpha_next[9], ref_ac[0], 1e-6);

    /* LCM, 4 steps of 50: k = 20; indices 0, 12, 25, 37 -> 999, 759, 499, 259. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_LCM, 4, &s, &err), TS_OK);
    check_timesteps(&s, (double[]){999, 759, 499, 259}, 4);

    /* Karras: the first sigma is the table's largest, descending to the smallest. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_DPMPP_2M_KARRAS, 10, &s, &err), TS_OK);
    TS_CHECK_NEAR(s.sigmas[0], ref_sigma(999), 1e-3);
    TS_CHECK_NEAR(s.sigmas[9], ref_sigma(0), 1e-4);
    TS_CHECK_NEAR(s.timesteps[0], 999, 0);
    TS_CHECK_NEAR(s.timesteps[9], 0, 0);
    for (int i = 1; i < 10; i++)
        TS_CHECK(s.sigmas[i] < s.sigmas[i - 1]);

    /* Bad counts are refused. */
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_EULER, 0, &s, &err), TS_ERR_ARG);
    TS_CHECK_INT_EQ(ts_schedule_make(&lead, TS_SAMPLER_EULER, 1000, &s, &err), TS_ERR_ARG);
}

/* ------------------------------------------------------------ whole runs */

/* The exact denoiser for data that always equals mu: given the VP input
 * x_in = sqrt(a) x0 + sqrt(1 - a) eps at timestep t, eps = (x_in - sqrt(a) mu)
 * / sqrt(1 - a); v = sqrt(a) eps - sqrt(1 - a) mu. */
static void point_mass_model(const float *x_in, double t, int v, const float *mu, float *out,
                             size_t n)
{
    double sg = ref_sigma(t);
    double a = 1.0 / (1.0 + sg * sg);
    for (size_t k = 0; k < n; k++) {
        double eps = (x_in[k] - sqrt(a) * mu[k]) / sqrt(1 - a);
        out[k] = (float)(v ? sqrt(a) * eps - sqrt(1 - a) * mu[k] : eps);
    }
}

static double run_to_end(ts_sampler kind, ts_spacing spacing, int steps, int v)
{
    enum { N = 256 };
    ts_schedule_config c = config(spacing, spacing == TS_SPACING_LEADING ? 1 : 0);
    c.prediction_v = v;
    ts_schedule s;
    ts_error err;
    if (ts_schedule_make(&c, kind, steps, &s, &err) != TS_OK)
        return 1e9;
    float mu[N], x[N], noise[N], x_in[N], out[N], step_noise[N];
    ts_rng r;
    ts_rng_seed(&r, 7, 0);
    ts_rng_randn(&r, noise, N);
    for (int k = 0; k < N; k++)
        mu[k] = (float)sin(k * 0.37) * 0.8f;
    ts_schedule_start(&s, noise, x, N);
    ts_sampler_state st;
    ts_sampler_state_init(&st, &s, N, &err);
    for (int i = 0; i < s.steps; i++) {
        for (int k = 0; k < N; k++)
            x_in[k] = x[k] * s.input_scale[i];
        point_mass_model(x_in, s.timesteps[i], v, mu, out, N);
        ts_rng_randn(&r, step_noise, N);
        ts_sampler_step(&st, &s, i, x, out, step_noise);
    }
    ts_sampler_state_free(&st);
    double worst = 0;
    for (int k = 0; k < N; k++)
        worst = fmax(worst, fabs(x[k] - mu[k]));
    return worst;
}

static void test_point_mass_runs(void)
{
    for (int v = 0; v <= 1; v++) {
        /* Each x0 estimate is exactly mu, so these land on mu. */
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_EULER, TS_SPACING_LEADING, 20, v), 0, 1e-3);
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_EULER, TS_SPACING_LINSPACE, 7, v), 0, 1e-3);
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_EULER_A, TS_SPACING_TRAILING, 4, v), 0, 1e-3);
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_DPMPP_2M, TS_SPACING_LEADING, 20, v), 0, 1e-3);
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_DPMPP_2M, TS_SPACING_TRAILING, 1, v), 0, 1e-3);
        /* Karras timesteps are rounded, so the denoiser sees a slightly
         * different level than the sampler assumes: close, not exact. */
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_DPMPP_2M_KARRAS, TS_SPACING_LEADING, 12, v), 0, 0.05);
        /* DDIM stops at alphas_cumprod[0]: sqrt(1 - 0.99915) ~ 0.03 of noise. */
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_DDIM, TS_SPACING_LEADING, 10, v), 0, 0.15);
        /* LCM's boundary scaling leaves c_skip ~ 1e-5 of x. */
        TS_CHECK_NEAR(run_to_end(TS_SAMPLER_LCM, TS_SPACING_LEADING, 4, v), 0, 1e-2);
    }
}

static void test_add_noise(void)
{
    ts_schedule_config c = config(TS_SPACING_LEADING, 1);
    ts_schedule s;
    ts_error err;
    float x0[3] = {1, -2, 0.5f}, noise[3] = {0.3f, 1, -1}, out[3];
    TS_CHECK_INT_EQ(ts_schedule_make(&c, TS_SAMPLER_EULER, 10, &s, &err), TS_OK);
    ts_schedule_add_noise(&s, 3, x0, noise, out, 3);
    TS_CHECK_NEAR(out[1], -2 + s.sigmas[3] * 1.0, 1e-5);
    ts_schedule_add_noise(&s, 10, x0, noise, out, 3);
    TS_CHECK(memcmp(out, x0, sizeof x0) == 0);
    TS_CHECK_INT_EQ(ts_schedule_make(&c, TS_SAMPLER_DDIM, 10, &s, &err), TS_OK);
    ts_schedule_add_noise(&s, 0, x0, noise, out, 3);
    TS_CHECK_NEAR(out[0], sqrt(ref_ac[901]) * 1 + sqrt(1 - ref_ac[901]) * 0.3, 1e-4);
}

static void test_config_file(void)
{
    char path[] = "/tmp/ts_sched_XXXXXX";
    int fd = mkstemp(path);
    TS_CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"use_karras_sigmas\": true,"
               " \"timestep_spacing\": \"trailing\", \"prediction_type\": \"v_prediction\","
               " \"beta_schedule\": \"scaled_linear\", \"steps_offset\": 0}");
    fclose(f);
    ts_schedule_config c;
    ts_schedule_config_default(&c);
    ts_error err;
    TS_CHECK_INT_EQ(ts_schedule_config_load(path, &c, &err), TS_OK);
    TS_CHECK_INT_EQ(c.default_sampler, TS_SAMPLER_DPMPP_2M_KARRAS);
    TS_CHECK_INT_EQ(c.spacing, TS_SPACING_TRAILING);
    TS_CHECK_INT_EQ(c.prediction_v, 1);
    f = fopen(path, "w");
    fprintf(f, "{\"beta_schedule\": \"squaredcos_cap_v2\"}");
    fclose(f);
    TS_CHECK_INT_EQ(ts_schedule_config_load(path, &c, &err), TS_ERR_UNSUPPORTED);
    f = fopen(path, "w");
    fprintf(f, "{\"num_train_timesteps\": 5000000}");
    fclose(f);
    ts_schedule_config_default(&c);
    TS_CHECK_INT_EQ(ts_schedule_config_load(path, &c, &err), TS_ERR_FORMAT);
    f = fopen(path, "w");
    fprintf(f, "not json");
    fclose(f);
    TS_CHECK_INT_EQ(ts_schedule_config_load(path, &c, &err), TS_ERR_FORMAT);
    remove(path);

    ts_sampler k;
    TS_CHECK(ts_sampler_parse("dpmpp_2m_karras", &k) && k == TS_SAMPLER_DPMPP_2M_KARRAS);
    TS_CHECK(!ts_sampler_parse("plms", &k));
}

/* ------------------------------------------------------------ noise */

static void test_philox_known_answers(void)
{
    /* Random123's published philox4x32-10 answers. */
    uint32_t out[4];
    ts_philox4x32_10((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0}, out);
    TS_CHECK_INT_EQ(out[0], 0x6627e8d5u);
    TS_CHECK_INT_EQ(out[1], 0xe169c58du);
    TS_CHECK_INT_EQ(out[2], 0xbc57ac4cu);
    TS_CHECK_INT_EQ(out[3], 0x9b00dbd8u);
    ts_philox4x32_10((uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                     (uint32_t[]){0xffffffffu, 0xffffffffu}, out);
    TS_CHECK_INT_EQ(out[0], 0x408f276du);
    TS_CHECK_INT_EQ(out[1], 0x41c83b0eu);
    TS_CHECK_INT_EQ(out[2], 0xa20bc7c6u);
    TS_CHECK_INT_EQ(out[3], 0x6d5451fdu);
    ts_philox4x32_10((uint32_t[]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                     (uint32_t[]){0xa4093822u, 0x299f31d0u}, out);
    TS_CHECK_INT_EQ(out[0], 0xd16cfe09u);
    TS_CHECK_INT_EQ(out[1], 0x94fdccebu);
    TS_CHECK_INT_EQ(out[2], 0x5001e420u);
    TS_CHECK_INT_EQ(out[3], 0x24126ea1u);
}

static void moments(int philox)
{
    enum { N = 200001 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    ts_rng r1, r2;
    ts_rng_seed(&r1, 1234, philox);
    ts_rng_seed(&r2, 1234, philox);
    ts_rng_randn(&r1, a, N);
    ts_rng_randn(&r2, b, N);
    TS_CHECK(memcmp(a, b, N * sizeof(float)) == 0);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++)
        m += a[i];
    m /= N;
    for (int i = 0; i < N; i++)
        v += (a[i] - m) * (a[i] - m);
    v /= N;
    TS_CHECK_NEAR(m, 0.0, 0.01);
    TS_CHECK_NEAR(v, 1.0, 0.02);
    ts_rng_seed(&r2, 1235, philox);
    ts_rng_randn(&r2, b, N);
    TS_CHECK(memcmp(a, b, N * sizeof(float)) != 0);
    free(a);
    free(b);
}

static void test_noise_moments(void)
{
    moments(0);
    moments(1);
}

/* ------------------------------------------------------------ goldens */

static void check_array(const char *name, const char *field, json_t *arr, const float *f,
                        const double *d, int n, double rel)
{
    TS_CHECK_INT_EQ((int)json_array_size(arr), n);
    int bad = 0;
    for (int i = 0; i < n && i < (int)json_array_size(arr); i++) {
        double want = json_number_value(json_array_get(arr, (size_t)i));
        double got = f ? f[i] : d[i];
        if (!(fabs(got - want) <= rel * fabs(want) + 1e-6) && !bad++)
            fprintf(stderr, "  %s.%s[%d]: got %.9g want %.9g\n", name, field, i, got, want);
    }
    TS_CHECK_INT_EQ(bad, 0);
}

/* The reference implementation's schedules (tools/sdref/schedulers.py),
 * with its defaults per scheduler: Euler and DPM "linspace" + offset 0,
 * DDIM "leading" + offset 1. */
static void test_golden_schedules(void)
{
    const char *fx = getenv("TS_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/engine/golden/schedules.json", fx ? fx : "tests/fixtures");
    json_t *root = json_load_file(path, 0, NULL);
    TS_CHECK(root != NULL); /* written by tools/fixtures/make_engine_fixtures.py */
    if (!root)
        return;
    const char *name;
    json_t *c;
    int cases = 0;
    json_object_foreach(root, name, c)
    {
        if (!json_is_object(c))
            continue;
        const char *kind = json_string_value(json_object_get(c, "scheduler"));
        json_t *cfg = json_object_get(c, "config");
        int karras = json_is_true(json_object_get(cfg, "use_karras_sigmas"));
        if (strcmp(kind, "euler") == 0 && karras)
            continue; /* Euler with Karras sigmas is not offered */
        ts_schedule_config sc;
        ts_schedule_config_default(&sc);
        int ddim = strcmp(kind, "ddim") == 0;
        sc.spacing = ddim ? TS_SPACING_LEADING : TS_SPACING_LINSPACE;
        sc.steps_offset = ddim ? 1 : 0;
        json_t *v = json_object_get(cfg, "timestep_spacing");
        if (v)
            sc.spacing = strcmp(json_string_value(v), "leading") == 0    ? TS_SPACING_LEADING
                         : strcmp(json_string_value(v), "trailing") == 0 ? TS_SPACING_TRAILING
                                                                         : TS_SPACING_LINSPACE;
        if ((v = json_object_get(cfg, "steps_offset")))
            sc.steps_offset = (int)json_integer_value(v);
        ts_sampler sampler = strcmp(kind, "euler") == 0 ? TS_SAMPLER_EULER
                             : strcmp(kind, "dpm") == 0
                                 ? (karras ? TS_SAMPLER_DPMPP_2M_KARRAS : TS_SAMPLER_DPMPP_2M)
                             : ddim ? TS_SAMPLER_DDIM
                                    : TS_SAMPLER_LCM;
        int steps = (int)json_integer_value(json_object_get(c, "steps"));
        ts_schedule s;
        ts_error err;
        TS_CHECK_INT_EQ(ts_schedule_make(&sc, sampler, steps, &s, &err), TS_OK);
        check_array(name, "timesteps", json_object_get(c, "timesteps"), s.timesteps, NULL, steps,
                    1e-6);
        if (sampler == TS_SAMPLER_EULER || sampler == TS_SAMPLER_DPMPP_2M ||
            sampler == TS_SAMPLER_DPMPP_2M_KARRAS)
            check_array(name, "sigmas", json_object_get(c, "sigmas"), s.sigmas, NULL, steps + 1,
                        1e-4);
        if (sampler == TS_SAMPLER_EULER)
            TS_CHECK_NEAR(s.init_noise_sigma,
                          json_number_value(json_object_get(c, "init_noise_sigma")), 1e-3);
        if (ddim || sampler == TS_SAMPLER_LCM) {
            check_array(name, "alphas", json_object_get(c, "alphas"), NULL, s.alpha_t, steps, 1e-5);
            check_array(name, "alphas_prev", json_object_get(c, "alphas_prev"), NULL, s.alpha_next,
                        steps, 1e-5);
        }
        if (sampler == TS_SAMPLER_LCM) {
            check_array(name, "c_skip", json_object_get(c, "c_skip"), NULL, s.lcm_c_skip, steps,
                        1e-4);
            check_array(name, "c_out", json_object_get(c, "c_out"), NULL, s.lcm_c_out, steps, 1e-5);
        }
        cases++;
    }
    TS_CHECK(cases >= 10);
    json_decref(root);
}

int main(void)
{
    ref_table();
    TS_RUN(test_timesteps);
    TS_RUN(test_point_mass_runs);
    TS_RUN(test_add_noise);
    TS_RUN(test_config_file);
    TS_RUN(test_philox_known_answers);
    TS_RUN(test_noise_moments);
    TS_RUN(test_golden_schedules);
    return ts_test_finish();
}
