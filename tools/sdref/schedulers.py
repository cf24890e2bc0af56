"""Noise schedules and samplers, written from the published algorithms with
diffusers' scheduler semantics (the semantics of the scheduler_config.json
files that ship with the models).

All schedule arithmetic is float64 numpy (diffusers computes the betas and
alphas_cumprod in float32; the difference is about 1e-7 relative). Latent
updates are float32 torch unless the caller passes float64.

Conventions
  alphas_cumprod a_t, t = 0..T-1 (T = num_train_timesteps = 1000)
  sigma_t = sqrt((1 - a_t) / a_t)                  (the "VE" noise level)
  The k-diffusion form x = x0 + sigma * eps is used for Euler, Euler
  ancestral and DPM++ 2M; the model sees x / sqrt(sigma^2 + 1) at timestep t.
  DDIM and LCM work on x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps directly.

Model callable: model(x_in (B,C,H,W), t (python float)) -> model output
(B,C,H,W) of the configured prediction type ("epsilon" or "v_prediction").
With classifier-free guidance wrap the UNet with cfg_model().

Every sampler takes the initial noise (standard normal, unscaled) and, when
stochastic, the per-step noises explicitly, so another implementation can be
checked on identical inputs.
"""
import math

import numpy as np
import torch

SD_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
               "beta_schedule": "scaled_linear"}


# ----------------------------------------------------------------------------- schedule
def alphas_cumprod(cfg=None):
    """scaled_linear: betas = linspace(sqrt(b0), sqrt(b1), T)^2; a_t = prod(1 - betas[:t+1])."""
    c = dict(SD_SCHEDULE)
    c.update(cfg or {})
    T = int(c["num_train_timesteps"])
    if c["beta_schedule"] == "scaled_linear":
        betas = np.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, T, dtype=np.float64) ** 2
    elif c["beta_schedule"] == "linear":
        betas = np.linspace(c["beta_start"], c["beta_end"], T, dtype=np.float64)
    else:
        raise ValueError(f"unsupported beta_schedule {c['beta_schedule']}")
    return np.cumprod(1.0 - betas)


def train_sigmas(ac):
    return np.sqrt((1.0 - ac) / ac)


def spaced_timesteps(n, spacing, T=1000, steps_offset=0, integer=True):
    """Timesteps for n steps, descending, per diffusers' timestep_spacing.

    linspace: linspace(0, T-1, n) reversed (rounded to integers when integer)
    leading:  (arange(n) * (T // n)) reversed, + steps_offset
    trailing: round(arange(T, 0, -T/n)) - 1
    """
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, n, dtype=np.float64)[::-1].copy()
        if integer:
            ts = ts.round()
    elif spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round()[::-1].astype(np.float64) + steps_offset
    elif spacing == "trailing":
        ts = np.arange(T, 0, -T / n).round().astype(np.float64) - 1
    else:
        raise ValueError(f"unsupported timestep_spacing {spacing}")
    return ts


def sigma_to_t(sigma, log_sigmas):
    """Fractional timestep of a sigma by linear interpolation in log-sigma."""
    ls = math.log(max(sigma, 1e-10))
    # index of the last table entry whose log sigma <= ls
    low = int(np.sum(ls - log_sigmas >= 0)) - 1
    low = min(max(low, 0), len(log_sigmas) - 2)
    lo, hi = log_sigmas[low], log_sigmas[low + 1]
    w = min(max((lo - ls) / (lo - hi), 0.0), 1.0)
    return (1 - w) * low + w * (low + 1)


def karras_sigmas(sigma_min, sigma_max, n, rho=7.0):
    """Karras et al. (2022): (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho."""
    ramp = np.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def euler_schedule(n, cfg=None):
    """EulerDiscrete / EulerAncestralDiscrete schedule.

    cfg keys: timestep_spacing (default "linspace"), steps_offset (0),
    use_karras_sigmas (False). Returns dict(timesteps (n,) float, sigmas
    (n+1,) with a final 0, init_noise_sigma).

    Timesteps stay fractional for "linspace" (the model sees e.g. 946.58).
    sigmas = interp(timesteps, 0..T-1, train sigmas). With Karras sigmas the
    range is [sigmas[-1], sigmas[0]] OF THE SPACED SCHEDULE (diffusers'
    EulerDiscrete rule), and timesteps come from sigma_to_t.
    init_noise_sigma = sigma_max for linspace/trailing spacing and
    sqrt(sigma_max^2 + 1) for leading (diffusers' rule).
    """
    c = {"timestep_spacing": "linspace", "steps_offset": 0, "use_karras_sigmas": False}
    c.update(cfg or {})
    ac = alphas_cumprod(c)
    T = len(ac)
    s_all = train_sigmas(ac)
    ts = spaced_timesteps(n, c["timestep_spacing"], T, c["steps_offset"], integer=False)
    sig = np.interp(ts, np.arange(T), s_all)
    if c["use_karras_sigmas"]:
        sig = karras_sigmas(sig[-1], sig[0], n)
        ls = np.log(s_all)
        ts = np.array([sigma_to_t(s, ls) for s in sig])
    sig = np.concatenate([sig, [0.0]])
    smax = sig.max()
    init = smax if c["timestep_spacing"] in ("linspace", "trailing") else math.sqrt(smax ** 2 + 1)
    return {"timesteps": ts, "sigmas": sig, "init_noise_sigma": init}


def dpm_schedule(n, cfg=None):
    """DPMSolverMultistep schedule (dpmsolver++, final_sigmas_type "zero").

    cfg keys: timestep_spacing ("linspace"), steps_offset (0), use_karras_sigmas.
    Integer timesteps from n+1 points with the last dropped:
      linspace: round(linspace(0, T-1, n+1))[::-1][:-1]
      leading:  (arange(n+1) * (T // (n+1)))[::-1][:-1] + steps_offset
      trailing: round(arange(T, 0, -T/n)) - 1
    Karras: range [sigma(t=0), sigma(t=T-1)] of the FULL training table
    (unlike EulerDiscrete), timesteps = round(sigma_to_t(sigma)).
    sigmas end with 0. The initial latent is noise * sqrt(sigma_0^2 + 1) in the
    x0 + sigma*eps form (diffusers samples unit noise in the VP form).
    """
    c = {"timestep_spacing": "linspace", "steps_offset": 0, "use_karras_sigmas": False}
    c.update(cfg or {})
    ac = alphas_cumprod(c)
    T = len(ac)
    s_all = train_sigmas(ac)
    sp = c["timestep_spacing"]
    if sp == "linspace":
        ts = np.linspace(0, T - 1, n + 1).round()[::-1][:-1].astype(np.float64)
    elif sp == "leading":
        ts = (np.arange(0, n + 1) * (T // (n + 1))).round()[::-1][:-1].astype(np.float64) + \
            c["steps_offset"]
    elif sp == "trailing":
        ts = np.arange(T, 0, -T / n).round().astype(np.float64) - 1
    else:
        raise ValueError(f"unsupported timestep_spacing {sp}")
    if c["use_karras_sigmas"]:
        sig = karras_sigmas(s_all[0], s_all[-1], n)
        ls = np.log(s_all)
        ts = np.array([round(sigma_to_t(s, ls)) for s in sig], dtype=np.float64)
    else:
        sig = np.interp(ts, np.arange(T), s_all)
    sig = np.concatenate([sig, [0.0]])
    return {"timesteps": ts, "sigmas": sig, "init_noise_sigma": math.sqrt(sig[0] ** 2 + 1)}


def ddim_schedule(n, cfg=None):
    """DDIM: integer timesteps by spacing ("leading" + steps_offset as SD ships);
    the previous timestep of t is t - T // n; below 0 it uses final_alpha_cumprod
    (a_0 when set_alpha_to_one is false, as SD ships; else 1)."""
    c = {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False}
    c.update(cfg or {})
    ac = alphas_cumprod(c)
    T = len(ac)
    ts = spaced_timesteps(n, c["timestep_spacing"], T, c["steps_offset"], integer=True)
    final = 1.0 if c["set_alpha_to_one"] else ac[0]
    prev = ts - T // n
    a_t = ac[ts.astype(np.int64)]
    a_prev = np.array([ac[int(p)] if p >= 0 else final for p in prev])
    return {"timesteps": ts, "prev_timesteps": prev, "alphas": a_t, "alphas_prev": a_prev,
            "init_noise_sigma": 1.0}


def lcm_schedule(n, cfg=None):
    """LCM: the distillation schedule (k = T // original_inference_steps,
    origin = k*[1..orig] - 1) reversed, sampled at floor(linspace(0, orig, n,
    endpoint=False)). Boundary scalings with sigma_data 0.5 and timestep_scaling 10."""
    c = {"original_inference_steps": 50, "timestep_scaling": 10.0, "set_alpha_to_one": True}
    c.update(cfg or {})
    ac = alphas_cumprod(c)
    T = len(ac)
    orig = int(c["original_inference_steps"])
    k = T // orig
    origin = (np.arange(1, orig + 1) * k - 1)[::-1]
    idx = np.floor(np.linspace(0, len(origin), num=n, endpoint=False)).astype(np.int64)
    ts = origin[idx].astype(np.float64)
    final = 1.0 if c["set_alpha_to_one"] else ac[0]
    a_t = ac[ts.astype(np.int64)]
    a_prev = np.array([ac[int(ts[i + 1])] if i + 1 < n else a_t[i] for i in range(n)])
    st = ts * c["timestep_scaling"]
    c_skip = 0.25 / (st ** 2 + 0.25)
    c_out = st / np.sqrt(st ** 2 + 0.25)
    del final  # the last step returns the denoised sample; a_prev of it is unused
    return {"timesteps": ts, "alphas": a_t, "alphas_prev": a_prev, "c_skip": c_skip,
            "c_out": c_out, "init_noise_sigma": 1.0}


# ----------------------------------------------------------------------------- img2img
def img2img_schedule(sched, strength):
    """diffusers' img2img rule: run only the last min(int(n * strength), n) steps.

    Returns (schedule, start): the schedule cut at index start (sigmas keep
    their trailing 0) with init_noise_sigma 1, because the starting latent is
    made by add_noise_ve / add_noise_vp at the first kept step instead."""
    n = len(sched["timesteps"])
    keep = min(int(n * strength), n)
    start = max(n - keep, 0)
    out = {k: (v[start:] if isinstance(v, np.ndarray) else v) for k, v in sched.items()}
    out["init_noise_sigma"] = 1.0
    return out, start


def add_noise_ve(x0, noise, sigma):
    """Noised latent in the x0 + sigma * eps form (Euler, Euler a, DPM++)."""
    return x0 + noise * sigma


def add_noise_vp(x0, noise, a_t):
    """Noised latent sqrt(a) x0 + sqrt(1 - a) eps (DDIM, LCM)."""
    return math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * noise


# ----------------------------------------------------------------------------- guidance
def cfg_model(unet, cond, uncond, guidance):
    """Classifier-free guidance: out = u + g (c - u), the UNet run once on the
    batch [uncond; cond] (order as diffusers). cond/uncond: (B, T, D)."""
    ctx = torch.cat([uncond, cond], dim=0)

    def model(x, t):
        out = unet(torch.cat([x, x], dim=0), torch.tensor(float(t)), ctx)
        u, c = out.chunk(2, dim=0)
        return u + guidance * (c - u)
    return model


def _x0_from_ve(out, x, sigma, prediction):
    """Denoised estimate from a model output in the x0 + sigma*eps form."""
    if prediction == "epsilon":
        return x - sigma * out
    if prediction == "v_prediction":
        return out * (-sigma / math.sqrt(sigma ** 2 + 1)) + x / (sigma ** 2 + 1)
    raise ValueError(f"unsupported prediction_type {prediction}")


def _ve_denoise(model, x, sigma, t, prediction):
    out = model(x / math.sqrt(sigma ** 2 + 1), t)
    return _x0_from_ve(out, x, sigma, prediction)


# ----------------------------------------------------------------------------- samplers
def _report(callback, i, x, denoised):
    """callback(i, x_after_step_i, denoised_estimate_of_step_i), if given."""
    if callback is not None:
        callback(i, x, denoised)


def sample_euler(model, noise, sched, prediction="epsilon", callback=None):
    """Euler (s_churn 0): x <- x + (x - x0)/sigma * (sigma_next - sigma)."""
    sig, ts = sched["sigmas"], sched["timesteps"]
    x = noise * sched["init_noise_sigma"]
    for i in range(len(ts)):
        x0 = _ve_denoise(model, x, sig[i], ts[i], prediction)
        d = (x - x0) / sig[i]
        x = x + d * (sig[i + 1] - sig[i])
        _report(callback, i, x, x0)
    return x


def sample_euler_ancestral(model, noise, step_noises, sched, prediction="epsilon",
                           callback=None):
    """Euler ancestral (eta 1): step to sigma_down deterministically, then add
    step_noises[i] * sigma_up, with
      sigma_up = sqrt(s_next^2 (s^2 - s_next^2) / s^2), sigma_down = sqrt(s_next^2 - sigma_up^2).
    step_noises: list of len(timesteps) standard-normal tensors (the last one
    is used too, with sigma_up = 0 at the final step, as diffusers does)."""
    sig, ts = sched["sigmas"], sched["timesteps"]
    x = noise * sched["init_noise_sigma"]
    for i in range(len(ts)):
        s, s_next = sig[i], sig[i + 1]
        x0 = _ve_denoise(model, x, s, ts[i], prediction)
        up = math.sqrt(s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2)
        down = math.sqrt(s_next ** 2 - up ** 2)
        d = (x - x0) / s
        x = x + d * (down - s)
        x = x + step_noises[i] * up
        _report(callback, i, x, x0)
    return x


def sample_dpmpp_2m(model, noise, sched, prediction="epsilon", callback=None):
    """DPM-Solver++(2M), midpoint form, first order on the first step and on the
    last step (final sigma 0). In lambda = -log(sigma):
      h = lambda_next - lambda; x <- (s_next/s) x - expm1(-h) D
      D = x0 on first/last step, else x0 + (x0 - x0_prev) / (2 r), r = h_prev / h.
    (Identical to diffusers' VP-form update once x is divided by sqrt(s^2+1).)"""
    sig, ts = sched["sigmas"], sched["timesteps"]
    x = noise * sched["init_noise_sigma"]
    prev_x0, h_prev = None, None
    for i in range(len(ts)):
        s, s_next = sig[i], sig[i + 1]
        x0 = _ve_denoise(model, x, s, ts[i], prediction)
        if s_next == 0:
            x = x0
            _report(callback, i, x, x0)
            break
        h = math.log(s) - math.log(s_next)
        if prev_x0 is None:
            D = x0
        else:
            r = h_prev / h
            D = x0 + (x0 - prev_x0) / (2 * r)
        x = (s_next / s) * x - math.expm1(-h) * D
        prev_x0, h_prev = x0, h
        _report(callback, i, x, x0)
    return x


def _eps_x0_vp(out, x, a_t, prediction):
    sa, sb = math.sqrt(a_t), math.sqrt(1 - a_t)
    if prediction == "epsilon":
        return out, (x - sb * out) / sa
    if prediction == "v_prediction":
        return sa * out + sb * x, sa * x - sb * out
    raise ValueError(f"unsupported prediction_type {prediction}")


def sample_ddim(model, noise, sched, prediction="epsilon", callback=None):
    """DDIM, eta 0: x0, eps from the model; x <- sqrt(a_prev) x0 + sqrt(1 - a_prev) eps.
    The model sees x unscaled at the integer timestep."""
    x = noise * sched["init_noise_sigma"]
    for i, t in enumerate(sched["timesteps"]):
        eps, x0 = _eps_x0_vp(model(x, t), x, sched["alphas"][i], prediction)
        ap = sched["alphas_prev"][i]
        x = math.sqrt(ap) * x0 + math.sqrt(1 - ap) * eps
        _report(callback, i, x, x0)
    return x


def sample_lcm(model, noise, step_noises, sched, prediction="epsilon", callback=None):
    """LCM multistep: denoised = c_out x0 + c_skip x; then, except after the last
    step, x <- sqrt(a_prev) denoised + sqrt(1 - a_prev) step_noises[i].
    Returns the final denoised latent. step_noises: n - 1 tensors."""
    x = noise * sched["init_noise_sigma"]
    n = len(sched["timesteps"])
    for i, t in enumerate(sched["timesteps"]):
        _, x0 = _eps_x0_vp(model(x, t), x, sched["alphas"][i], prediction)
        den = sched["c_out"][i] * x0 + sched["c_skip"][i] * x
        if i == n - 1:
            _report(callback, i, den, den)
            return den
        ap = sched["alphas_prev"][i]
        x = math.sqrt(ap) * den + math.sqrt(1 - ap) * step_noises[i]
        _report(callback, i, x, den)
    return x
