/*
 * ts_sampler.c - schedules and sampler steps (see ts_sampler.h).
 *
 * Every formula follows the diffusers scheduler of the same name, with the
 * table of training noise levels computed in double:
 *   betas          scaled_linear: linspace(sqrt(b0), sqrt(b1), N)^2; linear: linspace(b0, b1, N)
 *   alphas_cumprod ac[t] = prod_{s<=t} (1 - beta_s)
 *   sigma(t)       sqrt((1 - ac[t]) / ac[t]), linearly interpolated between
 *                  integer t (Euler with "linspace" spacing uses fractional t)
 */
#include "ts_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void ts_schedule_config_default(ts_schedule_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = 0.00085;
    cfg->beta_end = 0.012;
    cfg->beta_scaled_linear = 1;
    cfg->spacing = TS_SPACING_LEADING;
    cfg->steps_offset = 1;
    cfg->prediction_v = 0;
    cfg->set_alpha_to_one = 0;
    cfg->lcm_original_steps = 50;
    cfg->lcm_timestep_scaling = 10.0;
    cfg->default_sampler = TS_SAMPLER_EULER;
}

ts_status ts_schedule_config_load(const char *path, ts_schedule_config *cfg, ts_error *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ts_error_set(err, TS_ERR_FORMAT, "%s is not a JSON object (line %d: %s)", path,
                            jerr.line, jerr.text);
    }
    ts_status st = TS_OK;
    json_t *v;
    if ((v = json_object_get(root, "num_train_timesteps")) && json_is_integer(v))
        cfg->num_train_timesteps = (int)json_integer_value(v);
    if ((v = json_object_get(root, "beta_start")) && json_is_number(v))
        cfg->beta_start = json_number_value(v);
    if ((v = json_object_get(root, "beta_end")) && json_is_number(v))
        cfg->beta_end = json_number_value(v);
    if ((v = json_object_get(root, "steps_offset")) && json_is_integer(v))
        cfg->steps_offset = (int)json_integer_value(v);
    if ((v = json_object_get(root, "set_alpha_to_one")) && json_is_boolean(v))
        cfg->set_alpha_to_one = json_is_true(v);
    if ((v = json_object_get(root, "original_inference_steps")) && json_is_integer(v))
        cfg->lcm_original_steps = (int)json_integer_value(v);
    if ((v = json_object_get(root, "timestep_scaling")) && json_is_number(v))
        cfg->lcm_timestep_scaling = json_number_value(v);

    if ((v = json_object_get(root, "beta_schedule")) && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "scaled_linear") == 0)
            cfg->beta_scaled_linear = 1;
        else if (strcmp(s, "linear") == 0)
            cfg->beta_scaled_linear = 0;
        else
            st = ts_error_set(
                err, TS_ERR_UNSUPPORTED,
                "%s: beta_schedule \"%.40s\" is not supported (scaled_linear, linear)", path, s);
    }
    if (st == TS_OK && (v = json_object_get(root, "timestep_spacing")) && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "leading") == 0)
            cfg->spacing = TS_SPACING_LEADING;
        else if (strcmp(s, "trailing") == 0)
            cfg->spacing = TS_SPACING_TRAILING;
        else if (strcmp(s, "linspace") == 0)
            cfg->spacing = TS_SPACING_LINSPACE;
        else
            st = ts_error_set(err, TS_ERR_UNSUPPORTED,
                              "%s: timestep_spacing \"%.40s\" is not supported", path, s);
    }
    if (st == TS_OK && (v = json_object_get(root, "prediction_type")) && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "epsilon") == 0)
            cfg->prediction_v = 0;
        else if (strcmp(s, "v_prediction") == 0)
            cfg->prediction_v = 1;
        else
            st = ts_error_set(err, TS_ERR_UNSUPPORTED,
                              "%s: prediction_type \"%.40s\" is not supported (epsilon, "
                              "v_prediction)",
                              path, s);
    }
    if (st == TS_OK && (v = json_object_get(root, "_class_name")) && json_is_string(v)) {
        const char *s = json_string_value(v);
        json_t *karras = json_object_get(root, "use_karras_sigmas");
        if (strcmp(s, "EulerAncestralDiscreteScheduler") == 0)
            cfg->default_sampler = TS_SAMPLER_EULER_A;
        else if (strcmp(s, "DPMSolverMultistepScheduler") == 0)
            cfg->default_sampler =
                json_is_true(karras) ? TS_SAMPLER_DPMPP_2M_KARRAS : TS_SAMPLER_DPMPP_2M;
        else if (strcmp(s, "DDIMScheduler") == 0)
            cfg->default_sampler = TS_SAMPLER_DDIM;
        else if (strcmp(s, "LCMScheduler") == 0)
            cfg->default_sampler = TS_SAMPLER_LCM;
        else
            /* Euler, and the ones we do not implement (PNDM, LMS, ...): Euler
             * is the closest general-purpose choice. */
            cfg->default_sampler = TS_SAMPLER_EULER;
    }
    json_decref(root);
    if (st != TS_OK)
        return st;

    if (cfg->num_train_timesteps < 2 || cfg->num_train_timesteps > TS_SCHEDULE_MAX_TRAIN ||
        !(cfg->beta_start > 0.0) || !(cfg->beta_end > cfg->beta_start) || cfg->beta_end >= 1.0 ||
        cfg->steps_offset < 0 || cfg->steps_offset >= cfg->num_train_timesteps ||
        cfg->lcm_original_steps < 1 || cfg->lcm_original_steps > cfg->num_train_timesteps)
        return ts_error_set(err, TS_ERR_FORMAT,
                            "%s: num_train_timesteps, beta_start/beta_end, steps_offset or "
                            "original_inference_steps is out of range",
                            path);
    return TS_OK;
}

int ts_sampler_is_stochastic(ts_sampler kind)
{
    return kind == TS_SAMPLER_EULER_A || kind == TS_SAMPLER_LCM;
}

/* ------------------------------------------------------------ tables */

static void alphas_cumprod(const ts_schedule_config *cfg, double *ac)
{
    int n = cfg->num_train_timesteps;
    float prod = 1.0f;
    for (int t = 0; t < n; t++) {
        double f = (double)t / (double)(n - 1), beta;
        if (cfg->beta_scaled_linear) {
            double b = sqrt(cfg->beta_start) + f * (sqrt(cfg->beta_end) - sqrt(cfg->beta_start));
            beta = b * b;
        } else {
            beta = cfg->beta_start + f * (cfg->beta_end - cfg->beta_start);
        }
        /* diffusers keeps betas and the running product in float32. */
        prod = prod * (1.0f - (float)beta);
        ac[t] = (double)prod;
    }
}

static double sigma_at(const double *ac, int n, double t)
{
    if (t <= 0)
        return sqrt((1 - ac[0]) / ac[0]);
    if (t >= n - 1)
        return sqrt((1 - ac[n - 1]) / ac[n - 1]);
    int lo = (int)floor(t);
    double w = t - lo;
    double s0 = sqrt((1 - ac[lo]) / ac[lo]), s1 = sqrt((1 - ac[lo + 1]) / ac[lo + 1]);
    return s0 + w * (s1 - s0);
}

/* diffusers' _sigma_to_t: interpolation of t in log-sigma. */
static double sigma_to_t(const double *ac, int n, double sigma)
{
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int t = 0; t < n; t++)
        if (log(sqrt((1 - ac[t]) / ac[t])) <= ls)
            low = t;
    if (low > n - 2)
        low = n - 2;
    double l0 = log(sqrt((1 - ac[low]) / ac[low]));
    double l1 = log(sqrt((1 - ac[low + 1]) / ac[low + 1]));
    double w = (l0 - ls) / (l0 - l1);
    if (w < 0)
        w = 0;
    if (w > 1)
        w = 1;
    return (1 - w) * low + w * (low + 1);
}

/* Timesteps, descending, for the Euler/DDIM family (steps values) and the
 * DPM-Solver family (which spaces steps + 1 points and drops the last). */
static void spaced_timesteps(const ts_schedule_config *cfg, int steps, int dpm, int fractional,
                             double *ts)
{
    int n = cfg->num_train_timesteps;
    switch (cfg->spacing) {
    case TS_SPACING_LINSPACE:
        for (int i = 0; i < steps; i++) {
            int m = dpm ? steps + 1 : steps;
            double v = m > 1 ? (double)(n - 1) * (double)(m - 1 - i) / (double)(m - 1) : 0.0;
            /* Euler keeps the fractional values; DPM and DDIM round them. */
            ts[i] = fractional ? v : nearbyint(v);
        }
        break;
    case TS_SPACING_LEADING: {
        int ratio = n / (dpm ? steps + 1 : steps);
        int m = dpm ? steps + 1 : steps;
        for (int i = 0; i < steps; i++)
            ts[i] = (double)((m - 1 - i) * ratio + cfg->steps_offset);
        break;
    }
    case TS_SPACING_TRAILING: {
        double ratio = (double)n / (double)steps;
        for (int i = 0; i < steps; i++)
            ts[i] = nearbyint((double)n - i * ratio) - 1.0;
        break;
    }
    }
}

ts_status ts_schedule_make(const ts_schedule_config *cfg, ts_sampler kind, int steps,
                           ts_schedule *s, ts_error *err)
{
    memset(s, 0, sizeof(*s));
    if (steps < 1 || steps > TS_SCHEDULE_MAX_STEPS)
        return ts_error_set(err, TS_ERR_ARG, "steps must be 1..%d, not %d", TS_SCHEDULE_MAX_STEPS,
                            steps);
    if (kind == TS_SAMPLER_DEFAULT)
        kind = cfg->default_sampler;
    int n = cfg->num_train_timesteps;
    if (n < 2 || n > TS_SCHEDULE_MAX_TRAIN)
        return ts_error_set(err, TS_ERR_ARG, "num_train_timesteps %d is outside 2..%d", n,
                            TS_SCHEDULE_MAX_TRAIN);
    double *ac = malloc((size_t)n * sizeof(*ac));
    if (!ac)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the noise schedule");
    alphas_cumprod(cfg, ac);
    s->kind = kind;
    s->steps = steps;
    s->prediction_v = cfg->prediction_v;
    s->train_steps = n;
    double ts[TS_SCHEDULE_MAX_STEPS];

    switch (kind) {
    case TS_SAMPLER_EULER:
    case TS_SAMPLER_EULER_A: {
        spaced_timesteps(cfg, steps, 0, 1, ts);
        double max_sigma = 0;
        for (int i = 0; i < steps; i++) {
            if (ts[i] > n - 1)
                ts[i] = n - 1;
            s->timesteps[i] = (float)ts[i];
            s->sigmas[i] = (float)sigma_at(ac, n, ts[i]);
            if (s->sigmas[i] > max_sigma)
                max_sigma = s->sigmas[i];
            s->input_scale[i] = (float)(1.0 / sqrt((double)s->sigmas[i] * s->sigmas[i] + 1.0));
        }
        s->sigmas[steps] = 0.0f;
        s->init_noise_sigma = cfg->spacing == TS_SPACING_LEADING
                                  ? (float)sqrt(max_sigma * max_sigma + 1.0)
                                  : (float)max_sigma;
        break;
    }
    case TS_SAMPLER_DPMPP_2M:
    case TS_SAMPLER_DPMPP_2M_KARRAS:
        if (kind == TS_SAMPLER_DPMPP_2M_KARRAS) {
            /* Karras et al. rho = 7 between the table's extreme sigmas. */
            double smin = sqrt((1 - ac[0]) / ac[0]), smax = sqrt((1 - ac[n - 1]) / ac[n - 1]);
            double lo = pow(smin, 1.0 / 7.0), hi = pow(smax, 1.0 / 7.0);
            for (int i = 0; i < steps; i++) {
                double ramp = steps > 1 ? (double)i / (double)(steps - 1) : 0.0;
                double sg = pow(hi + ramp * (lo - hi), 7.0);
                s->sigmas[i] = (float)sg;
                s->timesteps[i] = (float)nearbyint(sigma_to_t(ac, n, sg));
            }
        } else {
            spaced_timesteps(cfg, steps, 1, 0, ts);
            for (int i = 0; i < steps; i++) {
                if (ts[i] > n - 1)
                    ts[i] = n - 1;
                s->timesteps[i] = (float)ts[i];
                s->sigmas[i] = (float)sigma_at(ac, n, ts[i]);
            }
        }
        s->sigmas[steps] = 0.0f;
        for (int i = 0; i < steps; i++) {
            s->input_scale[i] = 1.0f;
            s->alpha_t[i] = 1.0 / ((double)s->sigmas[i] * s->sigmas[i] + 1.0);
        }
        s->init_noise_sigma = 1.0f;
        break;
    case TS_SAMPLER_DDIM: {
        spaced_timesteps(cfg, steps, 0, 0, ts);
        int ratio = n / steps;
        double final = cfg->set_alpha_to_one ? 1.0 : ac[0];
        for (int i = 0; i < steps; i++) {
            int t = (int)ts[i];
            if (t > n - 1)
                t = n - 1;
            int prev = t - ratio;
            s->timesteps[i] = (float)t;
            s->alpha_t[i] = ac[t];
            s->alpha_next[i] = prev >= 0 ? ac[prev] : final;
            s->sigmas[i] = (float)sqrt((1 - ac[t]) / ac[t]);
            s->input_scale[i] = 1.0f;
        }
        s->init_noise_sigma = 1.0f;
        break;
    }
    case TS_SAMPLER_LCM: {
        int orig = cfg->lcm_original_steps;
        int k = n / orig;
        if (steps > orig) {
            free(ac);
            return ts_error_set(err, TS_ERR_ARG, "LCM takes at most %d steps with this model",
                                orig);
        }
        for (int i = 0; i < steps; i++) {
            /* origin[j] = (j + 1) * k - 1, read from the end at evenly spaced
             * indices floor(i * orig / steps). */
            int idx = (int)floor((double)i * (double)orig / (double)steps);
            int t = (orig - idx) * k - 1;
            s->timesteps[i] = (float)t;
            s->alpha_t[i] = ac[t];
            s->sigmas[i] = (float)sqrt((1 - ac[t]) / ac[t]);
            s->input_scale[i] = 1.0f;
            double scaled = t * cfg->lcm_timestep_scaling;
            s->lcm_c_skip[i] = 0.25 / (scaled * scaled + 0.25);
            s->lcm_c_out[i] = scaled / sqrt(scaled * scaled + 0.25);
        }
        for (int i = 0; i < steps; i++)
            s->alpha_next[i] = i + 1 < steps ? s->alpha_t[i + 1] : s->alpha_t[i];
        s->init_noise_sigma = 1.0f;
        break;
    }
    default:
        free(ac);
        return ts_error_set(err, TS_ERR_ARG, "unknown sampler %d", (int)kind);
    }
    free(ac);
    return TS_OK;
}

static int sigma_space(ts_sampler kind)
{
    return kind == TS_SAMPLER_EULER || kind == TS_SAMPLER_EULER_A;
}

void ts_schedule_add_noise(const ts_schedule *s, int i, const float *x0, const float *noise,
                           float *out, size_t n)
{
    if (i >= s->steps) {
        memmove(out, x0, n * sizeof(*out));
        return;
    }
    if (sigma_space(s->kind)) {
        float sg = s->sigmas[i];
        for (size_t k = 0; k < n; k++)
            out[k] = x0[k] + sg * noise[k];
        return;
    }
    float a = (float)sqrt(s->alpha_t[i]), b = (float)sqrt(1.0 - s->alpha_t[i]);
    for (size_t k = 0; k < n; k++)
        out[k] = a * x0[k] + b * noise[k];
}

void ts_schedule_start(const ts_schedule *s, const float *noise, float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        x[k] = noise[k] * s->init_noise_sigma;
}

ts_status ts_sampler_state_init(ts_sampler_state *st, const ts_schedule *s, size_t n, ts_error *err)
{
    memset(st, 0, sizeof(*st));
    st->n = n;
    if (s->kind == TS_SAMPLER_DPMPP_2M || s->kind == TS_SAMPLER_DPMPP_2M_KARRAS) {
        st->prev_x0 = calloc(n, sizeof(float));
        if (!st->prev_x0)
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the sampler");
    }
    return TS_OK;
}

void ts_sampler_state_free(ts_sampler_state *st)
{
    free(st->prev_x0);
    memset(st, 0, sizeof(*st));
}

/* ------------------------------------------------------------ the steps */

/* x0 estimate in sigma space from the raw model output. */
static float denoised_sigma(int v, float x, float out, float sigma)
{
    if (!v)
        return x - sigma * out;
    float s2 = sigma * sigma + 1.0f;
    return out * (-sigma / sqrtf(s2)) + x / s2;
}

static void step_euler(const ts_schedule *s, int i, float *x, const float *out, const float *noise,
                       size_t n)
{
    float sigma = s->sigmas[i], next = s->sigmas[i + 1];
    float dt = next - sigma, up = 0.0f;
    if (s->kind == TS_SAMPLER_EULER_A) {
        double from2 = (double)sigma * sigma, to2 = (double)next * next;
        up = (float)sqrt(to2 * (from2 - to2) / from2);
        float down = (float)sqrt(to2 - (double)up * up);
        dt = down - sigma;
    }
    for (size_t k = 0; k < n; k++) {
        float x0 = denoised_sigma(s->prediction_v, x[k], out[k], sigma);
        float d = (x[k] - x0) / sigma;
        x[k] = x[k] + d * dt;
        if (up > 0.0f)
            x[k] += noise[k] * up;
    }
}

static void step_dpmpp_2m(ts_sampler_state *st, const ts_schedule *s, int i, float *x,
                          const float *out, size_t n)
{
    /* VP quantities from k-sigmas: alpha = 1/sqrt(sigma^2+1), sigma_vp = sigma*alpha. */
    double ks = s->sigmas[i], kt = s->sigmas[i + 1];
    double alpha_s = 1.0 / sqrt(ks * ks + 1.0), sigma_s = ks * alpha_s;
    double alpha_t = 1.0 / sqrt(kt * kt + 1.0), sigma_t = kt * alpha_t;
    int first_order = (i == 0) || (i == s->steps - 1) || !st->have_prev;

    /* Data prediction (dpmsolver++): x0 from the model output. */
    float *m0 = st->prev_x0; /* reused below; keep the old one while computing */
    for (size_t k = 0; k < n; k++) {
        float x0 = s->prediction_v ? (float)(alpha_s * x[k] - sigma_s * out[k])
                                   : (float)((x[k] - sigma_s * out[k]) / alpha_s);
        float prev = m0[k];
        float xt;
        if (kt == 0.0) {
            xt = x0; /* lambda_t = +inf: the step lands on the estimate */
        } else {
            double lambda_s = log(alpha_s) - log(sigma_s), lambda_t = log(alpha_t) - log(sigma_t);
            double h = lambda_t - lambda_s;
            double em1 = exp(-h) - 1.0;
            if (first_order) {
                xt = (float)((sigma_t / sigma_s) * x[k] - alpha_t * em1 * x0);
            } else {
                double kp = s->sigmas[i - 1];
                double alpha_p = 1.0 / sqrt(kp * kp + 1.0), sigma_p = kp * alpha_p;
                double lambda_p = log(alpha_p) - log(sigma_p);
                double r0 = (lambda_s - lambda_p) / h;
                double d1 = (1.0 / r0) * ((double)x0 - prev);
                xt = (float)((sigma_t / sigma_s) * x[k] - alpha_t * em1 * x0 -
                             0.5 * alpha_t * em1 * d1);
            }
        }
        m0[k] = x0;
        x[k] = xt;
    }
    st->have_prev = 1;
}

static void step_ddim(const ts_schedule *s, int i, float *x, const float *out, size_t n)
{
    double a = s->alpha_t[i], ap = s->alpha_next[i];
    double sa = sqrt(a), sb = sqrt(1.0 - a), spa = sqrt(ap), spb = sqrt(1.0 - ap);
    for (size_t k = 0; k < n; k++) {
        double x0, eps;
        if (s->prediction_v) {
            x0 = sa * x[k] - sb * out[k];
            eps = sa * out[k] + sb * x[k];
        } else {
            x0 = (x[k] - sb * out[k]) / sa;
            eps = out[k];
        }
        x[k] = (float)(spa * x0 + spb * eps);
    }
}

static void step_lcm(const ts_schedule *s, int i, float *x, const float *out, const float *noise,
                     size_t n)
{
    double a = s->alpha_t[i], ap = s->alpha_next[i];
    double sa = sqrt(a), sb = sqrt(1.0 - a);
    double c_skip = s->lcm_c_skip[i], c_out = s->lcm_c_out[i];
    int last = i == s->steps - 1;
    for (size_t k = 0; k < n; k++) {
        double x0 = s->prediction_v ? sa * x[k] - sb * out[k] : (x[k] - sb * out[k]) / sa;
        double den = c_out * x0 + c_skip * x[k];
        x[k] = last ? (float)den : (float)(sqrt(ap) * den + sqrt(1.0 - ap) * noise[k]);
    }
}

void ts_sampler_step(ts_sampler_state *st, const ts_schedule *s, int i, float *x,
                     const float *model_out, const float *noise)
{
    switch (s->kind) {
    case TS_SAMPLER_EULER:
    case TS_SAMPLER_EULER_A:
        step_euler(s, i, x, model_out, noise, st->n);
        break;
    case TS_SAMPLER_DPMPP_2M:
    case TS_SAMPLER_DPMPP_2M_KARRAS:
        step_dpmpp_2m(st, s, i, x, model_out, st->n);
        break;
    case TS_SAMPLER_DDIM:
        step_ddim(s, i, x, model_out, st->n);
        break;
    case TS_SAMPLER_LCM:
        step_lcm(s, i, x, model_out, noise, st->n);
        break;
    default:
        break;
    }
}

int ts_sampler_parse(const char *name, ts_sampler *out)
{
    static const struct {
        const char *name;
        ts_sampler kind;
    } names[] = {
        {"default", TS_SAMPLER_DEFAULT},
        {"euler", TS_SAMPLER_EULER},
        {"euler_a", TS_SAMPLER_EULER_A},
        {"dpmpp_2m", TS_SAMPLER_DPMPP_2M},
        {"dpmpp_2m_karras", TS_SAMPLER_DPMPP_2M_KARRAS},
        {"ddim", TS_SAMPLER_DDIM},
        {"lcm", TS_SAMPLER_LCM},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (name && strcmp(name, names[i].name) == 0) {
            *out = names[i].kind;
            return 1;
        }
    return 0;
}
