/*
 * ts_sampler.h - noise schedules and the sampler steps (Euler, Euler
 * ancestral, DPM++ 2M, DPM++ 2M Karras, DDIM with eta 0, LCM), following the
 * semantics of diffusers' scheduler_config.json.
 *
 * Two spaces are in use, as in diffusers:
 *   - sigma space (Euler, Euler a): x = x0 + sigma * eps; the UNet sees
 *     x / sqrt(sigma^2 + 1); starting noise is scaled by init_noise_sigma.
 *   - alpha space (DPM++, DDIM, LCM): x = sqrt(ac) * x0 + sqrt(1 - ac) * eps;
 *     the UNet sees x as is; starting noise has scale 1.
 * The schedule hides the difference: input_scale[i] multiplies the latent
 * before the UNet, ts_schedule_add_noise noises a clean latent to the level
 * at the start of step i, and ts_sampler_step advances one step.
 *
 *     ts_schedule s;
 *     ts_schedule_make(&cfg, TS_SAMPLER_EULER, 20, &s, &err);
 *     ts_sampler_state st;
 *     ts_sampler_state_init(&st, &s, n, &err);
 *     for x = noise * s.init_noise_sigma; i in 0..s.steps:
 *         model(x * s.input_scale[i], s.timesteps[i]) -> out
 *         ts_sampler_step(&st, &s, i, x, out, step_noise);
 *     ts_sampler_state_free(&st);
 */
#ifndef TS_SAMPLER_H
#define TS_SAMPLER_H

#include <stddef.h>

#include "ts_engine.h"
#include "ts_error.h"

#define TS_SCHEDULE_MAX_STEPS 150
#define TS_SCHEDULE_MAX_TRAIN 4000

typedef enum ts_spacing {
    TS_SPACING_LEADING = 0,
    TS_SPACING_TRAILING,
    TS_SPACING_LINSPACE,
} ts_spacing;

typedef struct ts_schedule_config {
    int num_train_timesteps; /* 1000 */
    double beta_start;       /* 0.00085 */
    double beta_end;         /* 0.012 */
    int beta_scaled_linear;  /* 1: "scaled_linear", 0: "linear" */
    ts_spacing spacing;
    int steps_offset;
    int prediction_v;            /* 1: "v_prediction" */
    int set_alpha_to_one;        /* DDIM's final step target */
    int lcm_original_steps;      /* LCM: original_inference_steps (50) */
    double lcm_timestep_scaling; /* LCM: 10 */
    ts_sampler default_sampler;  /* from _class_name (and use_karras_sigmas) */
} ts_schedule_config;

/* SD 1.5's values with timestep_spacing "leading", steps_offset 1, Euler. */
void ts_schedule_config_default(ts_schedule_config *cfg);

/* Reads scheduler_config.json over the defaults. Unknown keys are ignored;
 * a known key with a value we cannot honour (beta_schedule
 * "squaredcos_cap_v2", prediction_type "sample") is TS_ERR_UNSUPPORTED. */
ts_status ts_schedule_config_load(const char *path, ts_schedule_config *cfg, ts_error *err);

typedef struct ts_schedule {
    ts_sampler kind; /* never TS_SAMPLER_DEFAULT */
    int steps;
    int prediction_v;
    int train_steps;
    float init_noise_sigma;
    float timesteps[TS_SCHEDULE_MAX_STEPS];   /* the UNet's timestep at step i */
    float input_scale[TS_SCHEDULE_MAX_STEPS]; /* multiplies x before the UNet */
    float sigmas[TS_SCHEDULE_MAX_STEPS + 1];  /* sigma space level at step i; last 0 */
    double alpha_t[TS_SCHEDULE_MAX_STEPS];    /* alpha space: alpha_cumprod at step i */
    double alpha_next[TS_SCHEDULE_MAX_STEPS]; /* DDIM, LCM: the level step i moves to */
    double lcm_c_skip[TS_SCHEDULE_MAX_STEPS], lcm_c_out[TS_SCHEDULE_MAX_STEPS];
} ts_schedule;

/* Builds the schedule for a sampler and step count (1..TS_SCHEDULE_MAX_STEPS). */
ts_status ts_schedule_make(const ts_schedule_config *cfg, ts_sampler kind, int steps,
                           ts_schedule *out, ts_error *err);

/* 1 when the sampler draws fresh noise inside its steps (Euler a, LCM). */
int ts_sampler_is_stochastic(ts_sampler kind);

/* out = x0 noised to the level at the start of step i (i == steps: x0). */
void ts_schedule_add_noise(const ts_schedule *s, int i, const float *x0, const float *noise,
                           float *out, size_t n);

/* Starting latent for a full run: noise scaled for step 0. */
void ts_schedule_start(const ts_schedule *s, const float *noise, float *x, size_t n);

typedef struct ts_sampler_state {
    size_t n;
    float *prev_x0; /* DPM++ 2M: the previous step's denoised estimate */
    int have_prev;
} ts_sampler_state;

ts_status ts_sampler_state_init(ts_sampler_state *st, const ts_schedule *s, size_t n,
                                ts_error *err);
void ts_sampler_state_free(ts_sampler_state *st);

/* Advances x (n values) by step i given the UNet's (guided) output for it.
 * noise: n standard normal values for stochastic samplers, else ignored. */
void ts_sampler_step(ts_sampler_state *st, const ts_schedule *s, int i, float *x,
                     const float *model_out, const float *noise);

#endif
