#!/usr/bin/python3
"""Quick self-test of the sdref reference models.

Checks: parameter counts of the published SD 1.5 UNet (859,520,964), SD 2.1
UNet (865,910,724), VAE (83,653,863) and CLIP ViT-L text encoder
(123,060,480), built on the meta device so nothing is allocated; forward
shapes of tiny models; safetensors and diffusers-folder round trips in
f32/f16/bf16; the single-file name mapping against every tensor of the
published SD 1.5 / 2.1 layouts (from make_random_sd_ckpt.py, found at
$TS_MAKE_RANDOM_CKPT or /work/shared/tools/, skipped when absent) and a
single-file round trip; tokenizer basics; schedule values and samplers
(an oracle model must lead Euler and DPM++ 2M to x0; DPM++ 2M in the
x0 + sigma eps form must equal the VP-form update).

usage: /usr/bin/python3 -m tools.sdref.selftest   (from the repository root)
"""
import os
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:  # the test harness reads 77 as "skipped"
    print("skip: python3-torch and python3-numpy are needed")
    sys.exit(77)

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    __package__ = "tools.sdref"

from tools.sdref import layers as L  # noqa: E402
from tools.sdref import safetensors_io as st  # noqa: E402
from tools.sdref.clip import CLIPTextModel  # noqa: E402
from tools.sdref.unet import UNet2DConditionModel  # noqa: E402
from tools.sdref.vae import AutoencoderKL  # noqa: E402
from tools.sdref import diffusers_io  # noqa: E402
from tools.sdref import ldm_names as N  # noqa: E402
from tools.sdref import schedulers as S  # noqa: E402
from tools.sdref.tokenizer import CLIPTokenizer, train_bpe  # noqa: E402

MAKE_RANDOM = os.environ.get("TS_MAKE_RANDOM_CKPT", "/work/shared/tools/make_random_sd_ckpt.py")

SD15_UNET = {
    "in_channels": 4, "out_channels": 4, "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
    "layers_per_block": 2, "attention_head_dim": 8, "cross_attention_dim": 768,
    "norm_num_groups": 32, "norm_eps": 1e-5, "flip_sin_to_cos": True, "freq_shift": 0,
    "sample_size": 64,
}
SD21_UNET = dict(SD15_UNET, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
                 use_linear_projection=True, sample_size=96)
SD_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "layers_per_block": 2, "norm_num_groups": 32,
    "sample_size": 512, "scaling_factor": 0.18215,
}
SD15_CLIP = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
             "num_hidden_layers": 12, "num_attention_heads": 12,
             "max_position_embeddings": 77, "hidden_act": "quick_gelu"}

TINY_UNET = {
    "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1,
    "attention_head_dim": 2, "cross_attention_dim": 32, "norm_num_groups": 8, "sample_size": 8,
}
TINY_VAE = {"block_out_channels": [16, 32], "down_block_types": ["DownEncoderBlock2D"] * 2,
            "up_block_types": ["UpDecoderBlock2D"] * 2, "layers_per_block": 1,
            "norm_num_groups": 8, "sample_size": 16}
TINY_CLIP = {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
             "bos_token_id": 298, "eos_token_id": 299, "pad_token_id": 299}


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok   {what}")


def main():
    torch.manual_seed(0)
    with L.init_device("meta"):
        n_unet = L.count_params(UNet2DConditionModel(SD15_UNET))
        n_unet21 = L.count_params(UNet2DConditionModel(SD21_UNET))
        n_inpaint = L.count_params(UNet2DConditionModel(dict(SD15_UNET, in_channels=9)))
        n_vae = L.count_params(AutoencoderKL(SD_VAE))
        n_clip = L.count_params(CLIPTextModel(SD15_CLIP))
    check(n_unet == 859_520_964, f"SD 1.5 UNet parameters {n_unet:,} == 859,520,964")
    check(n_unet21 == 865_910_724, f"SD 2.1 UNet parameters {n_unet21:,} == 865,910,724")
    check(n_inpaint == 859_535_364, f"SD 1.5 inpainting UNet parameters {n_inpaint:,} == 859,535,364")
    check(n_vae == 83_653_863, f"SD VAE parameters {n_vae:,} == 83,653,863")
    check(n_clip == 123_060_480, f"SD 1.5 CLIP text parameters {n_clip:,} == 123,060,480")

    te, unet, vae = CLIPTextModel(TINY_CLIP), UNet2DConditionModel(TINY_UNET), \
        AutoencoderKL(TINY_VAE)
    ids = torch.tensor([[298, 5, 6, 7, 299] + [299] * 72])
    with torch.no_grad():
        o = te(ids, clip_skip=2)
        check(o["last_hidden_state"].shape == (1, 77, 32) and len(o["hidden_states"]) == 3,
              "CLIP shapes")
        x = torch.randn(2, 4, 8, 8)
        y = unet(x, torch.tensor(500), torch.randn(2, 77, 32))
        check(y.shape == (2, 4, 8, 8), "UNet shape (2,4,8,8)")
        y = unet(torch.randn(1, 4, 6, 10), 10, torch.randn(1, 5, 32))
        check(y.shape == (1, 4, 6, 10), "UNet odd-multiple shape (1,4,6,10)")
        img = vae.decode(torch.randn(1, 4, 8, 8))
        check(img.shape == (1, 3, 16, 16), "VAE decode shape (1,3,16,16)")
        mean, logvar = vae.encode(torch.randn(1, 3, 16, 16))
        check(mean.shape == (1, 4, 8, 8) and logvar.shape == (1, 4, 8, 8), "VAE encode shapes")

    with tempfile.TemporaryDirectory() as tmp:
        t = {"a": torch.randn(3, 4), "b": torch.randn(5).half(), "c": torch.randn(2, 2).bfloat16(),
             "d": torch.arange(4, dtype=torch.int64).reshape(1, 4), "e": torch.zeros(0)}
        p = os.path.join(tmp, "x.safetensors")
        st.save_file(t, p, {"k": "v"})
        r, meta = st.load_file(p, with_metadata=True)
        check(meta == {"k": "v"} and all(torch.equal(t[k], r[k]) and t[k].dtype == r[k].dtype
                                         for k in t), "safetensors round trip F32/F16/BF16/I64")
        tok = {"vocab": {"a</w>": 0, "<|startoftext|>": 1, "<|endoftext|>": 2},
               "merges": [], "pad_token": "<|endoftext|>"}
        for dt in ("f32", "f16", "bf16"):
            folder = os.path.join(tmp, dt)
            diffusers_io.save_pipeline(folder, te, unet, vae, tok,
                                       {"_class_name": "EulerDiscreteScheduler"}, dtype=dt)
            back = diffusers_io.load_pipeline(folder)
            same = True
            for a, b in ((te, back["text_encoder"]), (unet, back["unet"]), (vae, back["vae"])):
                sa, sb = a.state_dict(), b.state_dict()
                for k in sa:
                    ref = sa[k].to(diffusers_io.DTYPES[dt]).float()
                    same &= torch.equal(ref, sb[k])
            check(same, f"diffusers folder round trip ({dt})")
    check_names()
    check_single_file(te, unet, vae)
    check_tokenizer()
    check_schedulers()
    print("selftest passed")


def check_names():
    """Every tensor of the published SD 1.5 / 2.1 single-file layouts (as the
    random-checkpoint writer lays them out) maps to exactly one parameter of
    our models, with the same shape."""
    if not os.path.exists(MAKE_RANDOM):
        print(f"skip name check: {MAKE_RANDOM} not found")
        return
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_random_sd_ckpt", MAKE_RANDOM)
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    sd21_clip = dict(SD15_CLIP, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                     num_attention_heads=16, hidden_act="gelu")
    for kind, ucfg, tcfg, fam in (("sd15", SD15_UNET, SD15_CLIP, "clip"),
                                  ("sd21", SD21_UNET, sd21_clip, "openclip")):
        theirs = {k: list(s) for k, (_, s) in mk.build(kind).items()}
        with L.init_device("meta"):
            u, v, t = UNet2DConditionModel(ucfg), AutoencoderKL(SD_VAE), CLIPTextModel(tcfg)
            sched = {n: torch.empty(1000, device="meta") for n in N.SCHEDULE_BUFFERS}
            tp = torch.empty(1024, 1024, device="meta") if fam == "openclip" else None
            sd = N.to_single_file(t.state_dict(), u.state_dict(), v.state_dict(), ucfg, SD_VAE,
                                  fam, tp, sched)
        mine = {k: list(x.shape) for k, x in sd.items()}
        check(mine == theirs, f"{kind}: all {len(theirs)} original tensor names and shapes map")


def check_single_file(te, unet, vae):
    tiny_oc = dict(TINY_CLIP, hidden_act="gelu")
    te2 = CLIPTextModel(tiny_oc)
    for fam, t in (("clip", te), ("openclip", te2)):
        sd = N.to_single_file(t.state_dict(), unet.state_dict(), vae.state_dict(), TINY_UNET,
                              TINY_VAE, fam, torch.randn(32, 32) if fam == "openclip" else None)
        fam2, tsd, usd, vsd = N.from_single_file(sd, TINY_UNET, TINY_VAE)
        ok = fam2 == fam
        for a, b in ((t.state_dict(), tsd), (unet.state_dict(), usd), (vae.state_dict(), vsd)):
            ok &= set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
        check(ok, f"single-file round trip ({fam})")
    # penultimate-layer rule: a 2-layer OpenCLIP with drop_last_layers=1 equals clip skip 2
    sd = N.to_single_file(te2.state_dict(), unet.state_dict(), vae.state_dict(), TINY_UNET,
                          TINY_VAE, "openclip")
    _, tsd, _, _ = N.from_single_file(sd, TINY_UNET, TINY_VAE, drop_last_layers=1)
    short = CLIPTextModel(dict(tiny_oc, num_hidden_layers=1))
    short.load_state_dict_checked(tsd)
    ids = torch.tensor([[298, 3, 4, 299, 0, 0]])
    with torch.no_grad():
        a = short(ids)["last_hidden_state"]
        b = te2(ids, clip_skip=2)["skipped"]
    check(torch.allclose(a, b, atol=1e-6), "dropping the last OpenCLIP layer == clip skip 2")


def check_tokenizer():
    vocab, merges = train_bpe(["a photo of a cat", "a photograph of the cat"], 12)
    tok = CLIPTokenizer(vocab, merges)
    check(vocab["a</w>"] == 320 and vocab["<|endoftext|>"] == len(vocab) - 1,
          "CLIP vocabulary layout (a</w> = 320, EOS last)")
    ids = tok("A  photo, of a CAT!")
    check(len(ids) == 77 and ids[0] == tok.bos_id and tok.eos_id in ids, "BOS/EOS/padding to 77")
    check(tok.decode(tok.encode_raw("café 😀 x")).strip() == "café 😀 x", "byte-level round trip")
    long_ids = tok("cat " * 200)
    check(len(long_ids) == 77 and long_ids[-1] == tok.eos_id, "truncation keeps EOS last")


def check_schedulers():
    ac = S.alphas_cumprod()
    sig = S.train_sigmas(ac)
    check(abs(sig[-1] - 14.6146) < 1e-3 and abs(sig[0] - 0.0292) < 1e-3,
          "SD sigma range 0.0292 .. 14.6146")
    check(list(S.lcm_schedule(4)["timesteps"]) == [999, 759, 499, 259], "LCM 4-step timesteps")
    check(list(S.ddim_schedule(4)["timesteps"]) == [751, 501, 251, 1], "DDIM 4-step leading")
    check(list(S.spaced_timesteps(4, "trailing")) == [999, 749, 499, 249], "trailing spacing")
    # An oracle model that knows x0 makes every deterministic sampler land on x0.
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 4, 2, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(1, 4, 2, 2, generator=g, dtype=torch.float64)

    def oracle_ve(x_in, t):  # eps for x_in = x / sqrt(s^2+1), s = sigma(t)
        s = float(np.interp(t, np.arange(1000), sig)) if not float(t).is_integer() \
            else float(sig[int(t)])
        return (x_in * (s ** 2 + 1) ** 0.5 - x0) / s
    for name, fn, sch in (("euler", S.sample_euler, S.euler_schedule(10)),
                          ("dpm++2m karras", S.sample_dpmpp_2m,
                           S.dpm_schedule(10, {"use_karras_sigmas": True}))):
        if name.startswith("dpm"):
            # karras timesteps are rounded: give the oracle the exact sigma instead
            sigmas = sch["sigmas"]
            it = iter(range(len(sigmas)))

            def model(x_in, t, _it=it, _s=sigmas):
                s = _s[next(_it)]
                return (x_in * (s ** 2 + 1) ** 0.5 - x0) / s
        else:
            model = oracle_ve
        out = fn(model, noise, sch)
        check(torch.allclose(out, x0, atol=1e-9), f"{name} with an oracle model returns x0")
    # DPM++ 2M in our VE form equals the VP-form update (written separately here).
    sch = S.dpm_schedule(8)
    calls = []

    def lin_model(x_in, t):
        calls.append(t)
        return 0.3 * x_in + 0.01 * float(t) * noise
    ve = S.sample_dpmpp_2m(lin_model, noise, sch)
    xs, ms = noise.clone(), []
    sg = sch["sigmas"]
    for i, t in enumerate(sch["timesteps"]):
        a_s, s_s = 1 / (sg[i] ** 2 + 1) ** 0.5, sg[i] / (sg[i] ** 2 + 1) ** 0.5
        m = (xs - s_s * lin_model(xs, t)) / a_s
        ms.append(m)
        if sg[i + 1] == 0:
            xs = m
            break
        a_t, s_t = 1 / (sg[i + 1] ** 2 + 1) ** 0.5, sg[i + 1] / (sg[i + 1] ** 2 + 1) ** 0.5
        h = np.log(a_t / s_t) - np.log(a_s / s_s)
        if i == 0:
            xs = (s_t / s_s) * xs - a_t * (np.exp(-h) - 1) * m
        else:
            s1 = sg[i - 1]
            a1, sg1 = 1 / (s1 ** 2 + 1) ** 0.5, s1 / (s1 ** 2 + 1) ** 0.5
            r0 = (np.log(a_s / s_s) - np.log(a1 / sg1)) / h
            D1 = (ms[-1] - ms[-2]) / r0
            xs = (s_t / s_s) * xs - a_t * (np.exp(-h) - 1) * m - 0.5 * a_t * (np.exp(-h) - 1) * D1
    check(torch.allclose(ve, xs, atol=1e-9), "DPM++ 2M VE form == VP form")


if __name__ == "__main__":
    main()
