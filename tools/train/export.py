#!/usr/bin/python3
"""Writes the trained model as a diffusers-format folder (f16 weights).

Reads the VAE (tools/train/work/vae/final.pt), the text encoder and UNet
checkpoint (tools/train/work/unet/ckpt.pt; the moving-average weights are the
ones exported) and the tokenizer, and writes, through tools/sdref's own
writer, exactly the layout SD 1.5 ships in:
  model_index.json, text_encoder/, tokenizer/, unet/, vae/, scheduler/
plus togethershot.json (native size and the recommended sampler settings).

Usage (from the repository root):
  /usr/bin/python3 tools/train/export.py --out models/togethershot-mini
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402

SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "trained_betas": None, "prediction_type": "epsilon",
    "timestep_spacing": "linspace", "steps_offset": 0, "interpolation_type": "linear",
    "use_karras_sigmas": False,
}
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 4.0


def load_models(unet_ckpt, vae_final):
    from tools.sdref.clip import CLIPTextModel
    from tools.sdref.unet import UNet2DConditionModel
    from tools.sdref.vae import AutoencoderKL
    st = torch.load(unet_ckpt)
    te = CLIPTextModel(st["text_config"])
    unet = UNet2DConditionModel(st["unet_config"])
    te.load_state_dict(st["te"])
    unet.load_state_dict(st["unet"])
    # The moving average holds the parameters in the training order: text
    # encoder first, then the UNet (see train_unet.py).
    params = list(te.parameters()) + list(unet.parameters())
    assert len(params) == len(st["ema"])
    with torch.no_grad():
        for p, e in zip(params, st["ema"]):
            p.copy_(e)
    vst = torch.load(vae_final)
    vae = AutoencoderKL(vst["config"])
    vae.load_state_dict(vst["model"])
    for m in (te, unet, vae):
        m.eval()
    return te, unet, vae, st["step"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unet", default="tools/train/work/unet/ckpt.pt")
    ap.add_argument("--vae", default="tools/train/work/vae/final.pt")
    ap.add_argument("--tokenizer", default="tools/train/work/tokenizer")
    ap.add_argument("--out", default="models/togethershot-mini")
    ap.add_argument("--dtype", default="f16")
    args = ap.parse_args()
    common.setup(0)
    from tools.sdref import diffusers_io

    te, unet, vae, step = load_models(args.unet, args.vae)
    with open(os.path.join(args.tokenizer, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(args.tokenizer, "merges.txt"), encoding="utf-8") as f:
        merges = [ln for ln in f.read().split("\n")[1:] if ln]
    diffusers_io.save_pipeline(args.out, te, unet, vae, {"vocab": vocab, "merges": merges},
                               SCHEDULER, dtype=args.dtype)
    meta = {
        "name": "togethershot-mini", "family": "togethershot-mini",
        "native_width": 64, "native_height": 64,
        "default_steps": DEFAULT_STEPS, "default_guidance": DEFAULT_GUIDANCE,
        "scheduler": SCHEDULER["_class_name"],
        "training_steps": step,
        "licence_of_training_data": "Noto Color Emoji (SIL OFL 1.1), CLDR annotations "
                                    "(Unicode License)",
    }
    with open(os.path.join(args.out, "togethershot.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    total = 0
    for root, _, files in os.walk(args.out):
        for fn in files:
            if fn.endswith(".safetensors"):
                total += os.path.getsize(os.path.join(root, fn))
    print("exported step %d to %s: weights %.2f MB" % (step, args.out, total / 1e6))


if __name__ == "__main__":
    main()
