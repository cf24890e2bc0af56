#!/usr/bin/python3
"""Trains the text encoder and the UNet of the built-in model, jointly, from scratch.

The VAE is frozen (tools/train/train_vae.py runs first); its latents of the
whole data set are computed once (mean and std) and a fresh sample
z = mean + std * noise is drawn each time a picture is used, multiplied by
the VAE's scaling factor so latents have unit variance.

Objective: epsilon prediction under SD's scaled_linear schedule (betas from
0.00085 to 0.012, 1000 steps), MSE weighted by min(SNR, 5) / SNR (the
min-SNR weighting, which converges markedly faster for short runs). One
caption in ten is replaced by the empty caption so classifier-free guidance
works. Pictures whose name pairs a colour with a simple object (hearts,
circles, squares, apples, stars, ...) are drawn more often: they are the
prompts the product's own checks use, and the model is small.

An exponential moving average of the weights (decay 0.999) is kept and is
what the export writes.

Resumable: rerunning the same command continues from the last checkpoint.
--until HH:MM (UTC) stops cleanly at that time (after saving).
Usage (from the repository root):
  /usr/bin/python3 tools/train/train_unet.py --steps 100000 --until 18:05
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.use_fast_blas()

import torch  # noqa: E402
# Hue of each colour word in the emoji pictures (degrees): the anchors of the
# product's colour check, kept in one place with its measure.
from vae_colours import NAMED as HUE_OF  # noqa: E402

TEXT_CONFIG = {
    "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5, "projection_dim": 128, "initializer_range": 0.02,
    "initializer_factor": 1.0, "attention_dropout": 0.0, "dropout": 0.0,
}
UNET_CONFIG = {
    "in_channels": 4, "out_channels": 4, "sample_size": 16,
    "block_out_channels": [32, 64, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 1, "attention_head_dim": 2, "cross_attention_dim": 128,
    "norm_num_groups": 4, "norm_eps": 1e-5, "use_linear_projection": False,
    "flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu", "center_input_sample": False,
    "downsample_padding": 1, "mid_block_scale_factor": 1, "upcast_attention": False,
}
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white",
           "pink")
SHAPES = ("heart", "circle", "square", "apple", "star", "diamond", "triangle", "book")


def schedule():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0)


def record_weight(rec, heavy=8.0):
    words = rec["name"].split()
    if any(w in COLOURS for w in words) and any(s in rec["name"] for s in SHAPES):
        return heavy
    if rec["colour"] or any(w in COLOURS for w in words):
        return 2.0
    return 1.0




def recolour(images, records):
    """Recoloured copies of the simple colour-named shapes, with their captions.

    Each picture whose name is one colour word of HUE_OF plus a simple shape
    ("green heart", "large blue diamond") is copied once per other colour
    word with its hue turned (HSV hue shift; white, grey and black pixels
    keep their look) and the colour word of every caption replaced. The emoji
    set has each shape in only some colours, and one picture per pair; the
    copies give the text encoder the same shape in every colour, which is
    what binds the colour word to the hue.
    -> uint8 images (M, S, S, 3), records (list of dicts)."""
    import re
    import numpy as np
    from PIL import Image
    out_img, out_rec = [], []
    for img, rec in zip(images, records):
        words = rec["name"].split()
        named = [w for w in words if w in HUE_OF]
        if len(named) != 1 or "light" in words or not any(s in rec["name"] for s in SHAPES):
            continue
        src = named[0]
        pat = re.compile(r"\b%s\b" % src)
        hsv = np.array(Image.fromarray(img).convert("HSV"))
        for dst in HUE_OF:
            if dst == src:
                continue
            shift = round((HUE_OF[dst] - HUE_OF[src]) / 360.0 * 256)
            h = hsv.copy()
            h[..., 0] = ((h[..., 0].astype(np.int32) + shift) % 256).astype(np.uint8)
            out_img.append(np.array(Image.fromarray(h, "HSV").convert("RGB")))
            caps = [pat.sub(dst, c) for c in rec["captions"]]
            # "a orange ..." -> "an orange ...": the article follows the word.
            caps = [re.sub(r"\ba (?=[aeiou])", "an ", re.sub(r"\ban (?=[^aeiou])", "a ", c))
                    for c in caps]
            out_rec.append(dict(rec, name=pat.sub(dst, rec["name"]), colour=dst,
                                captions=caps, recoloured=True))
    if not out_img:
        return np.zeros((0,) + images.shape[1:], np.uint8), []
    return np.stack(out_img), out_rec


def encode_latents(vae, data, scale):
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(data), 64):
            m, lv = vae.encode(data[i:i + 64])
            means.append(m * scale)
            stds.append(torch.exp(0.5 * lv) * scale)
    return torch.cat(means), torch.cat(stds)


def build(text_vocab, tok):
    from tools.sdref.clip import CLIPTextModel
    from tools.sdref.unet import UNet2DConditionModel
    tc = dict(TEXT_CONFIG, vocab_size=text_vocab, bos_token_id=tok.bos, eos_token_id=tok.eos,
              pad_token_id=tok.eos)
    te = CLIPTextModel(tc)
    unet = UNet2DConditionModel(UNET_CONFIG)
    # Transformers' CLIP init: normal(0.02) embeddings; zero-init of the UNet's
    # output conv so training starts from "predict zero noise".
    with torch.no_grad():
        for n, p in te.named_parameters():
            if "embedding" in n:
                p.normal_(0.0, 0.02)
        unet.conv_out.weight.zero_()
        unet.conv_out.bias.zero_()
    return te, unet


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tools/data/work/emoji64")
    ap.add_argument("--vae", default="tools/train/work/vae/final.pt")
    ap.add_argument("--tokenizer", default="tools/train/work/tokenizer")
    ap.add_argument("--work", default="tools/train/work/unet")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--until", default="", help="HH:MM UTC to stop at")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--drop", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--bench", type=int, default=0, help="time N steps and exit")
    ap.add_argument("--recolour", type=float, default=0.0,
                    help="draw weight of recoloured copies of the colour-named shapes "
                         "(0: none; see recolour())")
    ap.add_argument("--init", default="",
                    help="ckpt.pt of an earlier run: start from its averaged (EMA) weights, "
                         "with a fresh optimiser and step count (for a retrained VAE whose "
                         "latent space moved only a little)")
    ap.add_argument("--high-t", type=float, default=0.0,
                    help="share of timesteps drawn from [500, 1000) only")
    ap.add_argument("--heavy", type=float, default=8.0,
                    help="how much more often colour + simple-object pictures are drawn")
    ap.add_argument("--latent-noise", type=float, default=1.0,
                    help="latents are mean + this * std * noise (see train_vae --latent-noise)")
    args = ap.parse_args()

    common.setup(args.seed)
    import bpe
    import fastops
    fastops.install()
    from tools.sdref.vae import AutoencoderKL
    from tools.sdref import layers as L

    os.makedirs(args.work, exist_ok=True)
    tok = bpe.Tokenizer(args.tokenizer)
    images, records = common.load_dataset(args.data)
    data = common.to_tensor(images)

    vst = torch.load(args.vae)
    vae = AutoencoderKL(vst["config"])
    vae.load_state_dict(vst["model"])
    vae.eval()
    lat_path = os.path.join(args.work, "latents.pt")
    scale = vst["config"]["scaling_factor"]
    if "latents" in vst:
        lat_mean, lat_std = (t * scale for t in vst["latents"])
    elif os.path.exists(lat_path):
        lat_mean, lat_std = torch.load(lat_path)
    else:
        lat_mean, lat_std = encode_latents(vae, data, vst["config"]["scaling_factor"])
        torch.save((lat_mean, lat_std), lat_path)
    if args.recolour > 0:
        ex_img, ex_rec = recolour(images, records)
        if len(ex_rec):
            ex_mean, ex_std = encode_latents(vae, common.to_tensor(ex_img), scale)
            lat_mean, lat_std = torch.cat([lat_mean, ex_mean]), torch.cat([lat_std, ex_std])
            records = records + ex_rec
        print("%d recoloured copies" % len(ex_rec), flush=True)
    del vae

    # Every caption tokenised once; index 0 of each row is the empty caption.
    caps = [r["captions"] for r in records]
    empty = torch.tensor(tok.encode(""))
    cap_ids = [torch.tensor([tok.encode(c) for c in cs]) for cs in caps]
    weights = torch.tensor([args.recolour if r.get("recoloured") else
                            record_weight(r, args.heavy) for r in records])

    te, unet = build(len(tok.vocab), tok)
    params = list(te.parameters()) + list(unet.parameters())
    print("text encoder %d params, unet %d params, %d pictures, %d heavy-weighted" %
          (L.count_params(te), L.count_params(unet), len(records), int((weights > 4).sum())),
          flush=True)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    ck = os.path.join(args.work, "ckpt.pt")
    resume = os.path.exists(ck) and not args.bench
    if args.init and not resume:  # a resumed run loads its own weights below
        st = torch.load(args.init)
        with torch.no_grad():
            for p, e in zip(params, st["ema"]):
                p.copy_(e)
        print("started from the averaged weights of", args.init, flush=True)
    ema = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(args.seed)
    ac = schedule().float()
    step = 0
    if resume:
        st = torch.load(ck)
        te.load_state_dict(st["te"])
        unet.load_state_dict(st["unet"])
        opt.load_state_dict(st["opt"])
        ema = st["ema"]
        gen.set_state(st["gen"])
        step = st["step"]
        print("resumed at step", step, flush=True)
    log = None if args.bench else common.CsvLog(os.path.join(args.work, "loss.csv"),
                                                ["step", "seconds", "loss", "mse", "lr"])
    until = common.parse_until(args.until)
    unet = unet.to(memory_format=torch.channels_last)

    def save():
        common.save_ckpt(ck, te=te.state_dict(), unet=unet.state_dict(), opt=opt.state_dict(),
                         ema=ema, gen=gen.get_state(), step=step, text_config=te.config,
                         unet_config=UNET_CONFIG, vae_path=args.vae)

    t0, start, run_loss = time.time(), step, None
    while step < args.steps:
        B = args.batch
        idx = torch.multinomial(weights, B, replacement=True, generator=gen)
        ids = []
        drop = torch.rand(B, generator=gen) < args.drop
        for j, i in enumerate(idx.tolist()):
            if drop[j]:
                ids.append(empty)
            else:
                c = cap_ids[i]
                ids.append(c[torch.randint(0, len(c), (1,), generator=gen).item()])
        ids = torch.stack(ids)
        z0 = lat_mean[idx] + args.latent_noise * lat_std[idx] * \
            torch.randn(lat_mean[idx].shape, generator=gen)
        t = torch.randint(0, 1000, (B,), generator=gen)
        if args.high_t > 0:
            # Colour and layout are decided at high noise: draw a share of the
            # timesteps from the upper half only.
            hi = torch.rand(B, generator=gen) < args.high_t
            t = torch.where(hi, 500 + t // 2, t)
        noise = torch.randn(z0.shape, generator=gen)
        a = ac[t].view(B, 1, 1, 1)
        zt = (a.sqrt() * z0 + (1 - a).sqrt() * noise).contiguous(memory_format=torch.channels_last)
        snr = ac[t] / (1 - ac[t])
        w = torch.clamp(snr, max=5.0) / snr

        warm = min(1.0, (step + 1) / 50)
        lr = args.lr * warm
        for g in opt.param_groups:
            g["lr"] = lr
        ctx = te(ids)["last_hidden_state"]
        pred = unet(zt, t, ctx)
        per = ((pred.float() - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (per * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        d = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if log:
            log.row(step, round(time.time() - t0, 2), loss.item(), per.mean().item(), lr)
        if step % 10 == 0 or args.bench:
            print("step %d %.2fs/step loss %.4f (avg %.4f)" %
                  (step, (time.time() - t0) / (step - start), loss.item(), run_loss), flush=True)
        if args.bench and step - start >= args.bench:
            return
        stop = until is not None and time.time() >= until
        if step % args.ckpt_every == 0 or step == args.steps or stop:
            save()
        if stop:
            print("stopping at step %d (time limit)" % step, flush=True)
            break
    save()


if __name__ == "__main__":
    main()
