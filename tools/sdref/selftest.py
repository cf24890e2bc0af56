#!/usr/bin/python3
"""Quick self-test of the sdref reference models.

Checks: parameter counts of the published SD 1.5 UNet (859,520,964) and VAE
(83,653,863) and CLIP ViT-L text encoder (123,060,480), built on the meta
device so nothing is allocated; forward shapes of tiny models; a diffusers
folder save/load round trip in f32/f16/bf16; safetensors round trip.

usage: /usr/bin/python3 -m tools.sdref.selftest   (from the repository root)
"""
import os
import sys
import tempfile

import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    __package__ = "tools.sdref"

from tools.sdref import layers as L  # noqa: E402
from tools.sdref import safetensors_io as st  # noqa: E402
from tools.sdref.clip import CLIPTextModel  # noqa: E402
from tools.sdref.unet import UNet2DConditionModel  # noqa: E402
from tools.sdref.vae import AutoencoderKL  # noqa: E402
from tools.sdref import diffusers_io  # noqa: E402

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
        n_vae = L.count_params(AutoencoderKL(SD_VAE))
        n_clip = L.count_params(CLIPTextModel(SD15_CLIP))
    check(n_unet == 859_520_964, f"SD 1.5 UNet parameters {n_unet:,} == 859,520,964")
    check(n_unet21 == 865_910_724, f"SD 2.1 UNet parameters {n_unet21:,} == 865,910,724")
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
    print("selftest passed")


if __name__ == "__main__":
    main()
